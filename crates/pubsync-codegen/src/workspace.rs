//! The packages whose definition files codegen reads, and the order it merges them in.
//!
//! Definitions come from every package of the workspace's dependency graph that has a
//! `schema/` or `transfer/` folder next to its manifest: pubsync's own crates and the core
//! modules a shop depends on, then the shop's own module crates. The merge order is the
//! original's: core before project (dependencies before workspace members), and within each,
//! a package after every package it depends on, ties broken by name. A later declaration of a
//! table or transfer extends the earlier one, so a project-level file overrides a core one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// One package with definition files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name, e.g. `pubsync-hello`.
    pub name: String,
    /// The directory of its manifest.
    pub dir: PathBuf,
    /// How its files are named in messages and generated headers: the directory relative to
    /// the workspace root for a member (`crates/shop-product`, empty for the root package),
    /// the package name for a dependency, whose location differs between machines.
    pub display: String,
    /// Whether the package is a workspace member, whose generated files codegen writes.
    /// Dependencies are read only.
    pub member: bool,
    /// Every definition package it depends on, directly or through others.
    pub depends_on: BTreeSet<String>,
}

impl Package {
    /// A path inside the package as named in messages: `<display>/<relative>`.
    pub fn display_path(&self, relative: &str) -> String {
        if self.display.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.display)
        }
    }
}

/// The definition packages of the workspace at `root`, in merge order, from `cargo metadata`
/// (`cargo` is the program to run, usually the `CARGO` the caller was started by).
pub fn discover(root: &Path, cargo: &std::ffi::OsStr) -> Result<Vec<Package>, Error> {
    let manifest = root.join("Cargo.toml");
    // Every feature: a module behind a feature is still the workspace's.
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--all-features",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|source| Error::Io {
            path: PathBuf::from(cargo),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::Metadata(format!(
            "`cargo metadata` failed for {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| Error::Metadata(format!("unreadable `cargo metadata` output: {error}")))?;
    let workspace_root = metadata["workspace_root"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.to_path_buf());
    from_metadata(&metadata, &workspace_root)
}

/// The definition packages described by `cargo metadata` output, in merge order.
fn from_metadata(metadata: &serde_json::Value, root: &Path) -> Result<Vec<Package>, Error> {
    let missing = |what: &str| Error::Metadata(format!("`cargo metadata` output has no {what}"));
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .ok_or_else(|| missing("workspace_members"))?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    // id → (name, directory)
    let mut packages: BTreeMap<&str, (&str, PathBuf)> = BTreeMap::new();
    for package in metadata["packages"]
        .as_array()
        .ok_or_else(|| missing("packages"))?
    {
        let (Some(id), Some(name), Some(manifest)) = (
            package["id"].as_str(),
            package["name"].as_str(),
            package["manifest_path"].as_str(),
        ) else {
            return Err(missing("package id, name or manifest_path"));
        };
        let dir = Path::new(manifest)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        packages.insert(id, (name, dir));
    }
    // Normal dependencies only: dev-dependencies may point back at the package.
    let mut dependencies: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(id) = node["id"].as_str() else {
            continue;
        };
        let deps = node["deps"].as_array().into_iter().flatten().filter(|dep| {
            dep["dep_kinds"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind["kind"].is_null()))
        });
        dependencies.insert(id, deps.filter_map(|dep| dep["pkg"].as_str()).collect());
    }

    let mut found = Vec::new();
    for (id, (name, dir)) in &packages {
        if !has_definitions(dir) {
            continue;
        }
        let member = members.contains(id);
        let display = if member {
            dir.strip_prefix(root)
                .map(|relative| relative.to_string_lossy().replace('\\', "/"))
                .unwrap_or_else(|_| (*name).to_owned())
        } else {
            (*name).to_owned()
        };
        let mut depends_on = BTreeSet::new();
        let mut pending: Vec<&str> = dependencies.get(id).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(dependency) = pending.pop() {
            if !seen.insert(dependency) {
                continue;
            }
            if let Some((dependency_name, dependency_dir)) = packages.get(dependency)
                && has_definitions(dependency_dir)
            {
                depends_on.insert((*dependency_name).to_owned());
            }
            pending.extend(dependencies.get(dependency).into_iter().flatten());
        }
        found.push(Package {
            name: (*name).to_owned(),
            dir: dir.clone(),
            display,
            member,
            depends_on,
        });
    }
    Ok(merge_order(found))
}

fn has_definitions(dir: &Path) -> bool {
    dir.join("schema").is_dir() || dir.join("transfer").is_dir()
}

/// `packages` in merge order: dependencies before members, every package after the
/// packages it depends on, ties by name.
pub fn merge_order(mut packages: Vec<Package>) -> Vec<Package> {
    let mut ordered: Vec<Package> = Vec::with_capacity(packages.len());
    while !packages.is_empty() {
        let ready = |package: &Package| {
            package
                .depends_on
                .iter()
                .all(|dependency| !packages.iter().any(|other| &other.name == dependency))
        };
        let next = packages
            .iter()
            .enumerate()
            .filter(|(_, package)| ready(package))
            .min_by(|(_, a), (_, b)| (a.member, &a.name).cmp(&(b.member, &b.name)))
            .map_or(0, |(index, _)| index);
        ordered.push(packages.remove(next));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, member: bool, depends_on: &[&str]) -> Package {
        Package {
            name: name.into(),
            dir: PathBuf::from(name),
            display: name.into(),
            member,
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    fn names(packages: &[Package]) -> Vec<&str> {
        packages.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn core_before_project_and_dependencies_before_dependents() {
        let ordered = merge_order(vec![
            package("a-overrides", true, &["z-product", "pubsync-hello"]),
            package("z-product", true, &["pubsync-backend"]),
            package("pubsync-hello", false, &["pubsync-backend"]),
            package("pubsync-backend", false, &[]),
            package("b-unrelated", true, &[]),
        ]);
        assert_eq!(
            names(&ordered),
            [
                "pubsync-backend",
                "pubsync-hello",
                "b-unrelated",
                "z-product",
                "a-overrides"
            ]
        );
    }

    #[test]
    fn members_are_named_relative_to_the_root_dependencies_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, folder) in [
            ("crates/product", "schema"),
            ("", "transfer"),
            ("vendor/hello", "schema"),
        ] {
            std::fs::create_dir_all(root.join(path).join(folder)).unwrap();
        }
        std::fs::create_dir_all(root.join("crates/plain")).unwrap();
        let manifest = |path: &str| root.join(path).join("Cargo.toml").display().to_string();
        let metadata = serde_json::json!({
            "workspace_members": ["shop", "product", "plain"],
            "packages": [
                {"id": "shop", "name": "shop", "manifest_path": manifest("")},
                {"id": "product", "name": "shop-product", "manifest_path": manifest("crates/product")},
                {"id": "plain", "name": "plain", "manifest_path": manifest("crates/plain")},
                {"id": "hello", "name": "pubsync-hello", "manifest_path": manifest("vendor/hello")},
            ],
            "resolve": {"nodes": [
                {"id": "shop", "deps": [
                    {"pkg": "product", "dep_kinds": [{"kind": null}]},
                    {"pkg": "plain", "dep_kinds": [{"kind": "dev"}]},
                ]},
                {"id": "product", "deps": [{"pkg": "plain", "dep_kinds": [{"kind": null}]}]},
                {"id": "plain", "deps": [{"pkg": "hello", "dep_kinds": [{"kind": null}]}]},
                {"id": "hello", "deps": []},
            ]},
        });
        let packages = from_metadata(&metadata, root).unwrap();
        assert_eq!(names(&packages), ["pubsync-hello", "shop-product", "shop"]);
        let displays: Vec<&str> = packages.iter().map(|p| p.display.as_str()).collect();
        assert_eq!(displays, ["pubsync-hello", "crates/product", ""]);
        assert!(!packages[0].member && packages[1].member);
        // Through `plain`, which has no definitions itself.
        assert!(packages[1].depends_on.contains("pubsync-hello"));
        assert!(packages[2].depends_on.contains("shop-product"));
        assert_eq!(
            packages[2].display_path("schema/x.schema.xml"),
            "schema/x.schema.xml"
        );
    }
}

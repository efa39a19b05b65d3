//! `cargo xtask system-packages`: the Debian packages that building every feature needs,
//! checked with `dpkg` and installed with `apt-get` when some are missing.
//!
//! The embedded default (SQLite, bundled) builds with a Rust toolchain alone; the server
//! backends link system libraries: libpq for PostgreSQL, the MariaDB/MySQL client library
//! (LGPL, rather than the GPL bundle), OpenSSL for `rediss://`, found through pkg-config. The
//! `sqlite3` shell is what the README's tour and some tests drive the embedded database with,
//! and the `openssl` command makes the TLS tests' certificates.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

/// What building and testing with every feature needs, as Debian names it.
pub(crate) const PACKAGES: &[Package] = &[
    Package {
        name: "sqlite3",
        why: "the sqlite3 shell of the tour and the tests",
    },
    Package {
        name: "default-libmysqlclient-dev",
        why: "MySQL/MariaDB support (mysqlclient-sys)",
    },
    Package {
        name: "libpq-dev",
        why: "PostgreSQL support (pq-sys)",
    },
    Package {
        name: "libssl-dev",
        why: "TLS to Redis (openssl-sys)",
    },
    Package {
        name: "pkg-config",
        why: "finding the libraries above",
    },
    Package {
        name: "openssl",
        why: "the test CA of the TLS tests (the openssl command)",
    },
];

/// One system package and what needs it.
pub(crate) struct Package {
    pub(crate) name: &'static str,
    pub(crate) why: &'static str,
}

const USAGE: &str = "usage: cargo xtask system-packages [--check]

installs the Debian packages that building every feature needs, when missing (apt-get, as
root); --check installs nothing and fails when any is missing";

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    match args {
        [] => ensure().map(|()| ExitCode::SUCCESS),
        [flag] if flag == "--check" => {
            let missing = missing_packages()?;
            if missing.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("{}", describe(&missing));
            Ok(ExitCode::FAILURE)
        }
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("unexpected arguments {args:?}\n\n{USAGE}"),
    }
}

/// Installs what is missing, or says exactly what to install where it cannot.
pub(crate) fn ensure() -> Result<()> {
    let missing = missing_packages()?;
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|package| package.name).collect();
    if !is_root() || !on_path("apt-get") {
        bail!(
            "{}\ninstall them (as root: apt-get install -y {}) and run this again",
            describe(&missing),
            names.join(" ")
        );
    }
    eprintln!("installing {}", names.join(" "));
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .context("running apt-get update")?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(&names)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .context("running apt-get install")?;
    if !install.success() {
        bail!("apt-get install {} failed ({install})", names.join(" "));
    }
    let still = missing_packages()?;
    if !still.is_empty() {
        bail!("after apt-get install: {}", describe(&still));
    }
    Ok(())
}

/// The packages `dpkg` does not know as installed.
fn missing_packages() -> Result<Vec<&'static Package>> {
    if !on_path("dpkg") {
        bail!(
            "dpkg is not on PATH: this is not a Debian-like system; install the equivalents of {} yourself",
            PACKAGES
                .iter()
                .map(|package| package.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut missing = Vec::new();
    for package in PACKAGES {
        // `dpkg-query -W -f='${Status}'` prints "install ok installed" for an installed one.
        let output = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package.name])
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running dpkg-query for {}", package.name))?;
        let status = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !status.ends_with(" installed") {
            missing.push(package);
        }
    }
    Ok(missing)
}

fn describe(missing: &[&Package]) -> String {
    let lines: Vec<String> = missing
        .iter()
        .map(|package| format!("  {}: {}", package.name, package.why))
        .collect();
    format!("missing system packages:\n{}", lines.join("\n"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

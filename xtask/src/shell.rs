//! `cargo xtask shell-integration [DIR]`: writes the `pubsync` binary's completion scripts
//! (`pubsync.bash`, `_pubsync` for zsh, `pubsync.fish`, `pubsync.elv`, `_pubsync.ps1`) and its
//! man page (`pubsync.1`) into DIR (default `target/shell`), by running the binary's own
//! `completions` and `man` commands, so they always match its command line.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Each shell clap_complete knows, and the file its script goes to.
const SCRIPTS: &[(&str, &str)] = &[
    ("bash", "pubsync.bash"),
    ("zsh", "_pubsync"),
    ("fish", "pubsync.fish"),
    ("elvish", "pubsync.elv"),
    ("powershell", "_pubsync.ps1"),
];

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    let root = crate::workspace_root();
    let dir = match args {
        [] => root.join("target/shell"),
        [dir] if !dir.starts_with('-') => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask shell-integration [DIR]"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let outputs = SCRIPTS
        .iter()
        .map(|(shell, file)| (vec!["completions", *shell], *file))
        .chain([(vec!["man"], "pubsync.1")]);
    for (command, file) in outputs {
        let output = Command::new(&cargo)
            .current_dir(&root)
            .args(["run", "--quiet", "--package", "pubsync-cli", "--"])
            .args(&command)
            .output()
            .with_context(|| format!("running pubsync {}", command.join(" ")))?;
        if !output.status.success() {
            bail!(
                "pubsync {} failed: {}",
                command.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let path = dir.join(file);
        std::fs::write(&path, &output.stdout)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

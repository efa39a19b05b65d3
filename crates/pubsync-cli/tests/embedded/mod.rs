//! What the tests of the embedded default share: a working directory with its
//! `pubsync.toml`, the binary and the `sqlite3` shell run in it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pubsync.toml"), config).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pubsync"));
        command
            .args(args)
            .current_dir(self.path())
            .env("PUBSYNC_LOG", "warn");
        for var in [
            "PUBSYNC_DATABASE_URL",
            "PUBSYNC_QUEUE_URL",
            "PUBSYNC_STORAGE_URL",
        ] {
            command.env_remove(var);
        }
        command
    }

    pub fn pubsync(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pubsync")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.pubsync(args);
        assert!(
            output.status.success(),
            "pubsync {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The stored value of `key`, or `None` when `storage:get` exits 1 with nothing on stdout.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        let output = self.pubsync(&["storage:get", key]);
        match output.status.code() {
            Some(0) => {
                let stdout = String::from_utf8(output.stdout).unwrap();
                assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout:?}");
                Some(serde_json::from_str(&stdout).unwrap())
            }
            Some(1) => {
                assert!(
                    output.stdout.is_empty(),
                    "nothing on stdout for an absent key"
                );
                None
            }
            _ => panic!(
                "storage:get {key}: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    pub fn work(&self) {
        self.ok(&["queue:worker:start", "--stop-when-empty"]);
    }

    /// Runs `sql` in the sqlite3 shell on the default database file.
    pub fn sqlite(&self, sql: &str) -> String {
        let output = Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"]) // wait for the worker's write lock instead of failing
            .arg(self.path().join("pubsync.db"))
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("the sqlite3 shell is installed (.ci/run installs it)");
        assert!(
            output.status.success(),
            "sqlite3 {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

/// Kills the child when dropped, so a failing test leaves no worker behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn message(name: &str, message: Option<&str>) -> Option<serde_json::Value> {
    Some(serde_json::json!({ "name": name, "message": message }))
}

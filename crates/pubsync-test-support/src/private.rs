//! Servers of a test's own, on free ports under a directory of the test's: for tests that
//! stop, restart or kill a server, or need one set up differently (TLS), and so must never
//! touch the shared ones. Each is stopped (a PostgreSQL cluster dropped) when dropped, also
//! when the test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::TestCa;
use crate::unique_name;

/// A port nothing listens on now.
///
/// # Panics
/// When the loopback interface refuses to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a free loopback port")
        .port()
}

/// Waits up to `timeout` for `ready`.
fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A `redis-server` of the test's own.
#[derive(Debug)]
pub struct PrivateRedis {
    dir: PathBuf,
    port: u16,
    tls: Option<TestCa>,
    persistent: bool,
}

impl PrivateRedis {
    /// Starts one in `dir`: with `persistent`, an append-only file keeps its data across
    /// restarts; without, a restart loses everything. With `tls`, it listens only for TLS,
    /// with `tls`'s server certificate, and asks no client certificate.
    ///
    /// # Panics
    /// When it does not answer within 10 s.
    pub fn start(dir: &Path, tls: Option<&TestCa>, persistent: bool) -> Self {
        let redis = Self {
            dir: dir.to_owned(),
            port: free_port(),
            tls: tls.cloned(),
            persistent,
        };
        redis.launch();
        redis
    }

    /// The URL: `redis://127.0.0.1:<port>/0`, or `rediss://localhost:<port>/0` with TLS.
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("rediss://localhost:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn launch(&self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--daemonize", "yes", "--save", ""])
            .args(["--appendonly", if self.persistent { "yes" } else { "no" }])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.pid_file())
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        match &self.tls {
            Some(ca) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&ca.server_cert)
                .arg("--tls-key-file")
                .arg(&ca.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&ca.ca_cert)
                .args(["--tls-auth-clients", "no"]),
            None => command.args(["--port", &self.port.to_string()]),
        };
        assert!(succeeds(&mut command), "starting redis-server: {command:?}");
        assert!(
            wait_until(Duration::from_secs(10), || self.answers()),
            "the private Redis on port {} does not answer (see {})",
            self.port,
            self.dir.join("redis.log").display()
        );
    }

    fn answers(&self) -> bool {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = &self.tls {
            command.arg("--tls").arg("--cacert").arg(&ca.ca_cert);
        }
        command
            .arg("ping")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "PONG")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    fn signal(&self, signal: &str) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = succeeds(Command::new("kill").args([signal, pid.trim()]));
        }
    }

    /// Stops it (`SIGTERM`) and waits until the port is closed.
    pub fn stop(&self) {
        self.signal("-TERM");
        wait_until(Duration::from_secs(10), || !self.answers());
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Kills it (`SIGKILL`): no last write to disk.
    pub fn kill(&self) {
        self.signal("-KILL");
        wait_until(Duration::from_secs(10), || !self.answers());
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Starts it again, on the same port, with the same settings.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }

    /// Stops it and starts it again without its files: everything it held is gone, as after
    /// a restart without persistence or a replaced node.
    pub fn restart_losing_data(&self) {
        self.kill();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("appendonly") || name == "dump.rdb" {
                    let path = entry.path();
                    let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                }
            }
        }
        self.launch();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A RabbitMQ node of the test's own (it takes 10–20 s to start).
#[derive(Debug)]
pub struct PrivateRabbit {
    node: String,
    port: u16,
    tls_port: Option<u16>,
    ca: Option<TestCa>,
}

impl PrivateRabbit {
    /// Starts a node in `dir`, listening on a free port, and with `tls` also on a TLS port
    /// with `tls`'s server certificate (no client certificate asked).
    ///
    /// # Panics
    /// When it has not started within 60 s.
    pub fn start(dir: &Path, tls: Option<&TestCa>) -> Self {
        // The server runs as the `rabbitmq` user: it must reach `dir` (a temporary directory
        // is the test's alone) and write in a directory of its own there.
        let node_dir = dir.join(unique_name("rabbitmq"));
        std::fs::create_dir(&node_dir).expect("creating the node's directory");
        for (path, mode) in [(dir, "755"), (node_dir.as_path(), "777")] {
            assert!(
                succeeds(Command::new("chmod").arg(mode).arg(path)),
                "chmod {mode} {}",
                path.display()
            );
        }
        let dir = node_dir.as_path();
        let rabbit = Self {
            node: format!("{}@localhost", unique_name("pubsync")),
            port: free_port(),
            tls_port: tls.map(|_| free_port()),
            ca: tls.cloned(),
        };
        let mut config = format!(
            "listeners.tcp.local = 127.0.0.1:{}\nloopback_users = none\n",
            rabbit.port
        );
        if let (Some(ca), Some(port)) = (tls, rabbit.tls_port) {
            config.push_str(&format!(
                "listeners.ssl.local = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ca.ca_cert.display(),
                ca.server_cert.display(),
                ca.server_key.display()
            ));
        }
        std::fs::write(dir.join("rabbitmq.conf"), config).expect("writing rabbitmq.conf");
        std::fs::write(dir.join("plugins"), "[].\n").expect("writing the plugins file");
        let mut command = Command::new("rabbitmq-server");
        command
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &rabbit.node)
            .env("RABBITMQ_NODE_PORT", rabbit.port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"));
        assert!(succeeds(&mut command), "starting rabbitmq-server");
        assert!(
            rabbit.await_startup(),
            "the private RabbitMQ node {} did not start (see {})",
            rabbit.node,
            dir.join("log").display()
        );
        rabbit
    }

    fn ctl(&self, args: &[&str]) -> bool {
        succeeds(
            Command::new("rabbitmqctl")
                .args(["-n", &self.node])
                .args(args),
        )
    }

    fn await_startup(&self) -> bool {
        wait_until(Duration::from_secs(60), || {
            self.ctl(&["await_startup", "--timeout", "5"])
        }) && wait_until(Duration::from_secs(20), || {
            crate::reachable(&format!("amqp://127.0.0.1:{}", self.port))
        })
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `amqps://guest:guest@localhost:<tls port>/%2f?cacertfile=<the test CA>`, when it was
    /// started with TLS.
    pub fn tls_url(&self) -> Option<String> {
        let (port, ca) = (self.tls_port?, self.ca.as_ref()?);
        Some(format!(
            "amqps://guest:guest@localhost:{port}/%2f?cacertfile={}",
            ca.ca_cert.display()
        ))
    }

    /// Stops the broker application (the node stays up) until [`start_app`](Self::start_app).
    pub fn stop_app(&self) {
        assert!(self.ctl(&["stop_app"]), "stopping the RabbitMQ application");
    }

    /// Starts the broker application again and waits until it accepts connections.
    pub fn start_app(&self) {
        assert!(
            self.ctl(&["start_app"]),
            "starting the RabbitMQ application"
        );
        assert!(self.await_startup(), "RabbitMQ did not come back");
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
    }
}

/// A PostgreSQL 15 cluster of the test's own (`pg_createcluster`), trust auth, on a free port.
#[derive(Debug)]
pub struct PrivatePostgres {
    name: String,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts a cluster with a database `test`.
    ///
    /// # Panics
    /// When the cluster cannot be created or does not start within 30 s.
    pub fn start() -> Self {
        let postgres = Self {
            name: unique_name("pubsync"),
            port: free_port(),
        };
        let port = postgres.port.to_string();
        assert!(
            succeeds(Command::new("pg_createcluster").args([
                "15",
                &postgres.name,
                "--port",
                &port,
                "--",
                "--auth=trust"
            ])),
            "pg_createcluster 15 {}",
            postgres.name
        );
        postgres.start_again();
        assert!(
            succeeds(Command::new("psql").args([
                &postgres.admin_url(),
                "-qc",
                "CREATE DATABASE test"
            ])),
            "creating the database test"
        );
        postgres
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `postgres://postgres@127.0.0.1:<port>/test`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    fn answers(&self) -> bool {
        succeeds(Command::new("pg_isready").args(["-h", "127.0.0.1", "-p", &self.port.to_string()]))
    }

    /// Starts the stopped (or crashed) cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        assert!(
            succeeds(Command::new("pg_ctlcluster").args(["15", &self.name, "start"])),
            "pg_ctlcluster 15 {} start",
            self.name
        );
        assert!(
            wait_until(Duration::from_secs(30), || self.answers()),
            "the private PostgreSQL on port {} does not answer",
            self.port
        );
    }

    /// Stops it the way a crash does (`-m immediate`: no checkpoint, connections cut).
    pub fn crash(&self) {
        let _ = succeeds(Command::new("pg_ctlcluster").args([
            "15",
            &self.name,
            "stop",
            "-m",
            "immediate",
        ]));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = succeeds(Command::new("pg_dropcluster").args(["--stop", "15", &self.name]));
    }
}

//! `cargo xtask test`: the whole test suite on a fresh machine. It installs the system
//! packages the server backends link (see [`crate::system`]), says which test servers it
//! cannot reach, then runs every test of the workspace and of `examples/shop` (a workspace of
//! its own), with every feature.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result};

/// The test servers: the variable that overrides each one's URL, and its default address.
const SERVERS: &[(&str, &str, &str)] = &[
    ("PostgreSQL", "PUBSYNC_TEST_POSTGRES_URL", "127.0.0.1:5432"),
    ("MySQL/MariaDB", "PUBSYNC_TEST_MYSQL_URL", "127.0.0.1:3306"),
    ("Redis", "PUBSYNC_TEST_REDIS_URL", "127.0.0.1:6379"),
    ("RabbitMQ", "PUBSYNC_TEST_AMQP_URL", "127.0.0.1:5672"),
];

/// Runs the suite; `args` go to both `cargo test` runs (after `--`, to the test binaries).
pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!(
            "usage: cargo xtask test [-- TEST-ARGS]\n\n\
             installs the system packages when missing, then runs cargo test --workspace\n\
             --all-features here and in examples/shop; TEST-ARGS go to the test binaries"
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::system::ensure()?;
    report_unreachable_servers();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::workspace_root();
    let test_args: &[String] = match args.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => args,
    };
    for dir in [root.clone(), root.join("examples/shop")] {
        let status = Command::new(&cargo)
            .current_dir(&dir)
            // Every test binary runs, so one failure does not hide the others.
            .args([
                "test",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
                "--",
            ])
            .args(test_args)
            .status()
            .with_context(|| format!("running cargo test in {}", dir.display()))?;
        if !status.success() {
            eprintln!("tests failed in {} ({status})", dir.display());
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Names the default test servers that do not answer: their tests skip loudly, or fail when
/// `CI` is set. A server whose URL is given in the environment is left to its tests.
fn report_unreachable_servers() {
    for (name, variable, address) in SERVERS {
        if std::env::var_os(variable).is_some() {
            continue;
        }
        let reachable = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .is_some_and(|address: SocketAddr| {
                TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
            });
        if !reachable {
            eprintln!(
                "note: {name} does not answer on {address} (set {variable} to use another): its tests skip, or fail under CI=true"
            );
        }
    }
}

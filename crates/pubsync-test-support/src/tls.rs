//! A certificate authority of the test's own, made with the `openssl` command line, and a
//! server certificate it signed for `localhost` and `127.0.0.1`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a test CA, in a directory of the test's.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA's certificate (PEM): what a client trusts.
    pub ca_cert: PathBuf,
    /// The server's certificate (PEM), for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// The server's private key (PEM, unencrypted).
    pub server_key: PathBuf,
}

impl TestCa {
    /// Makes a CA and a server certificate in `dir`.
    ///
    /// # Panics
    /// When `openssl` fails or is not installed.
    pub fn create(dir: &Path) -> Self {
        let path = |name: &str| dir.join(name);
        let ca = Self {
            ca_cert: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
        };
        let (ca_key, csr, extensions) = (path("ca.key"), path("server.csr"), path("server.ext"));
        std::fs::write(
            &extensions,
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             extendedKeyUsage = serverAuth\n\
             basicConstraints = CA:FALSE\n",
        )
        .expect("writing the certificate extensions");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=pubsync test CA",
                "-keyout",
            ],
            &[&ca_key],
            &["-out"],
            &[&ca.ca_cert],
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ],
            &[&ca.server_key],
            &["-out"],
            &[&csr],
        );
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca.ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&extensions)
            .arg("-out")
            .arg(&ca.server_cert));
        // The servers may run as another user than the test.
        for file in [&ca.ca_cert, &ca.server_cert, &ca.server_key] {
            let _ = Command::new("chmod").arg("644").arg(file).status();
        }
        ca
    }
}

fn openssl(before: &[&str], first: &[&Path], middle: &[&str], second: &[&Path]) {
    run(Command::new("openssl")
        .args(before)
        .args(first)
        .args(middle)
        .args(second));
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .expect("openssl is installed (it comes with the base image)");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

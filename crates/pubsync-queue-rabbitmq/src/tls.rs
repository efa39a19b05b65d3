//! TLS for `amqps://`: the rustls client configuration amqprs connects with, built from the
//! URL's [`TlsSettings`] each time a connection is opened (so a renewed certificate file is
//! read at the next reconnect). rustls runs on the ring provider.

use std::path::Path;
use std::sync::Arc;

use amqprs::tls::TlsAdaptor;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

use crate::RabbitQueueError;
use crate::address::TlsSettings;

/// The TLS adaptor of a connection to `host` with `settings`.
pub(crate) fn adaptor(host: &str, settings: &TlsSettings) -> Result<TlsAdaptor, RabbitQueueError> {
    let mut roots = RootCertStore::empty();
    match &settings.ca_cert_file {
        Some(path) => {
            for certificate in certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| tls(format!("cacertfile {}: {error}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| tls(error.to_string()))?
        .with_root_certificates(roots);
    let config = match (&settings.cert_file, &settings.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|error| tls(format!("keyfile {}: {error}", key_file.display())))?;
            builder
                .with_client_auth_cert(certificates(cert_file)?, key)
                .map_err(|error| tls(format!("certfile {}: {error}", cert_file.display())))?
        }
        _ => builder.with_no_client_auth(),
    };
    let domain = settings
        .server_name
        .clone()
        .unwrap_or_else(|| host.to_owned());
    Ok(TlsAdaptor::new(
        TlsConnector::from(Arc::new(config)),
        domain,
    ))
}

/// The certificates of the PEM file `path`; none is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, RabbitQueueError> {
    let read = |error: rustls_pki_types::pem::Error| tls(format!("{}: {error}", path.display()));
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certificates.is_empty() {
        return Err(tls(format!("{}: no certificate in it", path.display())));
    }
    Ok(certificates)
}

fn tls(reason: String) -> RabbitQueueError {
    RabbitQueueError::Tls(reason)
}

//! The rustls client configuration of an MQTT source: server verification against the
//! configured CA, optional client certificate. Built with the `ring` provider explicitly, so it
//! does not depend on which crypto provider other crates of the process enable.

use crate::config::MqttTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {detail}", .path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The files are fine one by one but do not make a configuration (e.g. key and certificate
    /// do not match, or only one of them is given).
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, detail: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::File {
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Builds the client configuration described by `tls`, reading its files now.
pub(crate) fn client_config(tls: &MqttTls) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(&tls.ca_file)? {
        roots
            .add(ca)
            .map_err(|e| file_error(&tls.ca_file, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Invalid(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                TlsSetupError::Invalid(format!(
                    "client certificate and key do not make a configuration: {e}"
                ))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsSetupError::Invalid(
                "give both client_cert_file and client_key_file, or neither".into(),
            ));
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = MqttTls {
            ca_file: dir.path().join("nope.pem"),
            client_cert_file: None,
            client_key_file: None,
        };
        let e = client_config(&missing).expect_err("missing");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let e = client_config(&MqttTls {
            ca_file: empty,
            client_cert_file: None,
            client_key_file: None,
        })
        .expect_err("empty");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}

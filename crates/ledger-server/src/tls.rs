//! TLS for `serve --tls-cert FILE --tls-key FILE`: rustls with the ring provider, TLS 1.2 and
//! 1.3 only, HTTP/1.1 (ALPN `http/1.1`). The certificate file may hold a chain. The current
//! configuration sits behind a lock so SIGHUP can load new files for new connections while
//! open ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the certificate chain and its key are read from (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not fit together: {0}")]
    Config(rustls::Error),
}

/// The TLS configuration new connections get.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl Tls {
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let config = server_config(&files)?;
        Ok(Tls { files, current: RwLock::new(config) })
    }

    /// Reads the files again; on an error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), reason: reason.to_string() }
}

fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(&files.cert, e))?;
    if certs.is_empty() {
        return Err(file_error(&files.cert, "no PEM certificate in the file"));
    }
    // The error never quotes the key file's contents.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|_| file_error(&files.key, "no PEM private key in the file"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

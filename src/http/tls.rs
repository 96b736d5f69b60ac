//! HTTPS for the listener: a rustls server configuration from PEM files (TLS 1.2 and
//! 1.3 only, HTTP/1.1 by ALPN), optionally requiring client certificates signed by
//! `client_ca_file` (mutual TLS), and reloaded without a restart when the files change
//! (polled every `reload_ms`) or on SIGHUP. A reload that fails keeps the configuration
//! in use and says why in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// The files a configuration is built from.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// The configuration in use, swapped whole on reload.
pub struct Reloading {
    files: Files,
    current: RwLock<TlsAcceptor>,
    /// Modification times of the files the current configuration came from.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(files: &Files) -> Result<TlsAcceptor, String> {
    let read = |what: &str, path: &Path| format!("{what} {}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", read("server.tls.cert_file", &files.cert)))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate",
            read("server.tls.cert_file", &files.cert)
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", read("server.tls.key_file", &files.key)))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("{}: {e}", read("server.tls.client_ca_file", ca)))?
            {
                let cert =
                    cert.map_err(|e| format!("{}: {e}", read("server.tls.client_ca_file", ca)))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", read("server.tls.client_ca_file", ca)))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|e| format!("{}: {e}", read("server.tls.client_ca_file", ca)))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn stamps(files: &Files) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

impl Reloading {
    /// `None` when TLS is off (`server.tls.cert_file` empty); an error names the file.
    pub fn open(settings: &TlsSettings) -> Result<Option<Arc<Self>>, String> {
        if settings.cert_file.is_empty() {
            return Ok(None);
        }
        let files = Files {
            cert: PathBuf::from(&settings.cert_file),
            key: PathBuf::from(&settings.key_file),
            client_ca: (!settings.client_ca_file.is_empty())
                .then(|| PathBuf::from(&settings.client_ca_file)),
        };
        let stamps = Mutex::new(stamps(&files));
        let acceptor = load(&files)?;
        Ok(Some(Arc::new(Self {
            files,
            current: RwLock::new(acceptor),
            stamps,
        })))
    }

    /// The acceptor for a new connection (connections keep the one they began with).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads when a file changed (or `force`); returns whether it swapped.
    fn reload(&self, force: bool) -> bool {
        let now = stamps(&self.files);
        let mut seen = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if !force && *seen == now {
            return false;
        }
        *seen = now;
        match load(&self.files) {
            Ok(acceptor) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
                tracing::info!("reloaded the TLS certificate");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; keeping the certificate in use");
                false
            }
        }
    }

    /// Watches the files every `every`, and reloads on SIGHUP, until the process ends.
    pub fn watch(self: Arc<Self>, every: Duration) {
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let forced = match hup.as_mut() {
                    Some(h) => tokio::select! {
                        _ = h.recv() => true,
                        () = tokio::time::sleep(every) => false,
                    },
                    None => {
                        tokio::time::sleep(every).await;
                        false
                    }
                };
                #[cfg(not(unix))]
                let forced = {
                    tokio::time::sleep(every).await;
                    false
                };
                let this = self.clone();
                let _ = tokio::task::spawn_blocking(move || this.reload(forced)).await;
            }
        });
    }
}

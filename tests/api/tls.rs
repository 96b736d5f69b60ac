//! HTTPS on the API port: a handshake with a test CA (certificates made here with
//! `rcgen`), mutual TLS accepted with a certificate from the configured client CA and
//! refused without one or with another CA's, the certificate reloaded without a restart
//! when its file changes, and the plain admin port for probes and metrics.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ragbrain::config::Millis;
use ragbrain::config::Settings;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls;

use crate::helpers::spawn_app_with;

/// A CA that signs certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate for `names`, signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, names: &[&str], client: bool) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

struct Files {
    dir: PathBuf,
    mtls: bool,
}

static FILES: OnceLock<Files> = OnceLock::new();

fn path(name: &str) -> String {
    FILES.get().unwrap().dir.join(name).display().to_string()
}

fn with_tls(s: &mut Settings) {
    let files = FILES.get().unwrap();
    s.server.tls.cert_file = path("server.pem");
    s.server.tls.key_file = path("server.key");
    if files.mtls {
        s.server.tls.client_ca_file = path("clients-ca.pem");
    }
    s.server.tls.reload_ms = Millis::new(100);
    s.server.admin_port = crate::helpers::free_port();
}

/// A TLS client trusting `ca_pem`, with a client certificate when given: the
/// handshake's outcome and the certificate the server presented.
async fn handshake(
    port: u16,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    // TLS 1.3 reports a refused client certificate after the handshake: a request shows
    // whether the server took the connection.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    if answer.starts_with("HTTP/1.1 200") {
        Ok(presented)
    } else {
        Err(format!("no answer: {answer:?}"))
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn write(dir: &Path, name: &str, text: &str) {
    // Written aside and renamed, as a certificate manager replaces a file.
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[tokio::test]
async fn https_with_client_certificates_and_reload_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("test server CA");
    let clients_ca = ca("test clients CA");
    let stranger_ca = ca("someone else's CA");
    let (cert, key) = leaf(&server_ca, &["localhost"], false);
    write(dir.path(), "server.pem", &cert);
    write(dir.path(), "server.key", &key);
    write(dir.path(), "clients-ca.pem", &clients_ca.pem);
    FILES
        .set(Files {
            dir: dir.path().to_path_buf(),
            mtls: true,
        })
        .ok()
        .unwrap();
    let app = spawn_app_with(with_tls).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let client = leaf(&clients_ca, &["service-a"], true);
    let stranger = leaf(&stranger_ca, &["intruder"], true);

    // A client with a certificate from the clients' CA is served.
    let presented = handshake(port, &server_ca.pem, Some((&client.0, &client.1)))
        .await
        .expect("mutual TLS with a client certificate");
    assert_eq!(presented, der_of(&cert));
    // Without a certificate, or with another CA's, the connection is refused.
    assert!(handshake(port, &server_ca.pem, None).await.is_err());
    assert!(
        handshake(port, &server_ca.pem, Some((&stranger.0, &stranger.1)))
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health/live"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // The certificate is replaced on disk: new connections get it, no restart.
    let (renewed, renewed_key) = leaf(&server_ca, &["localhost"], false);
    write(dir.path(), "server.key", &renewed_key);
    write(dir.path(), "server.pem", &renewed);
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(der) = handshake(port, &server_ca.pem, Some((&client.0, &client.1))).await
            && der == der_of(&renewed)
        {
            reloaded = true;
            break;
        }
    }
    assert!(
        reloaded,
        "the renewed certificate was not served within 5 s"
    );
    // A broken file keeps the certificate in use.
    write(dir.path(), "server.pem", "not a certificate");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let der = handshake(port, &server_ca.pem, Some((&client.0, &client.1)))
        .await
        .unwrap();
    assert_eq!(der, der_of(&renewed));

    // Probes and Prometheus use the plain admin port, which serves nothing else.
    let admin = app.admin_port.expect("admin port");
    let base = format!("http://127.0.0.1:{admin}");
    let http = reqwest::Client::new();
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = http
        .get(format!("{base}/vectors/collections/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

//! TLS on every hop of the suite: what a service serves, and the calls it makes to the other
//! services (rustls on ring).
//!
//! A service is given a certificate, its key and the CA bundle it trusts as files — the
//! `tls.crt`, `tls.key` and `ca.crt` of a cert-manager secret mounted into the pod — under
//! `server.tls` of its configuration (`REDRESS_SERVER__TLS__DIR=/etc/redress/tls`, or each file
//! on its own). The files are checked every `reload_interval_ms` and a renewed certificate is
//! used for the next connection, without a restart; a file that cannot be read or parsed is
//! logged and the previous certificate stays in use.
//!
//! The same files serve both directions: the certificate is what the service presents to its
//! callers and, as a client certificate, to the services it calls; the CA verifies the
//! services it calls and, with `client_auth`, its callers (mutual TLS).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The certificate file of a cert-manager secret.
pub const CERT_FILE: &str = "tls.crt";
/// The private key file of a cert-manager secret.
pub const KEY_FILE: &str = "tls.key";
/// The CA bundle file of a cert-manager secret.
pub const CA_FILE: &str = "ca.crt";
/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 is the only protocol the suite speaks.
const ALPN_H2: &[u8] = b"h2";

/// Where a service finds its certificate, key and trusted CA, and whether it requires client
/// certificates. With neither `dir` nor `cert_file` set, the service serves plaintext (h2c).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// A directory holding `tls.crt`, `tls.key` and (optionally) `ca.crt`: a mounted
    /// cert-manager secret. The `*_file` settings override single files.
    pub dir: String,
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA certificates trusted for peers: the services this one calls and, with
    /// `client_auth`, its callers. Without it the service serves TLS but calls other services
    /// only over plaintext URLs.
    pub ca_file: String,
    /// Refuse callers without a client certificate signed by the CA (mutual TLS).
    pub client_auth: bool,
    /// How often the files are checked for a renewed certificate.
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            ca_file: String::new(),
            client_auth: false,
            reload_interval_ms: 30_000,
        }
    }
}

/// The resolved file paths.
#[derive(Debug, Clone)]
struct Files {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether anything is configured (a certificate to serve or a CA to call with).
    pub fn is_enabled(&self) -> bool {
        !(self.dir.trim().is_empty() && self.cert_file.trim().is_empty() && self.ca_file.trim().is_empty())
    }

    fn files(&self) -> anyhow::Result<Files> {
        let pick = |explicit: &str, name: &str, required: bool| -> Option<PathBuf> {
            if !explicit.trim().is_empty() {
                return Some(PathBuf::from(explicit.trim()));
            }
            let dir = self.dir.trim();
            if dir.is_empty() {
                return None;
            }
            let path = Path::new(dir).join(name);
            (required || path.exists()).then_some(path)
        };
        let files = Files {
            cert: pick(&self.cert_file, CERT_FILE, true),
            key: pick(&self.key_file, KEY_FILE, true),
            ca: pick(&self.ca_file, CA_FILE, false),
        };
        anyhow::ensure!(files.cert.is_some() == files.key.is_some(), "tls.cert_file and tls.key_file go together");
        anyhow::ensure!(
            !self.client_auth || files.ca.is_some(),
            "tls.client_auth needs tls.ca_file (or ca.crt in tls.dir)"
        );
        anyhow::ensure!(self.reload_interval_ms > 0, "tls.reload_interval_ms must be positive");
        Ok(files)
    }
}

/// The rustls configurations built from a [`TlsConfig`]'s files, swapped when the files change.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Shared>,
}

struct Shared {
    files: Files,
    client_auth: bool,
    current: RwLock<Built>,
    /// Digest of the files' contents the current configurations were built from.
    digest: Mutex<[u8; 32]>,
}

#[derive(Clone)]
struct Built {
    server: Option<Arc<rustls::ServerConfig>>,
    client: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.inner.files).field("client_auth", &self.inner.client_auth).finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read TLS {what} {}", path.display()))
}

/// The files' contents.
struct Contents {
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    ca: Option<Vec<u8>>,
}

impl Contents {
    fn read(files: &Files) -> anyhow::Result<Self> {
        Ok(Self {
            cert: files.cert.as_deref().map(|p| read(p, "certificate")).transpose()?,
            key: files.key.as_deref().map(|p| read(p, "key")).transpose()?,
            ca: files.ca.as_deref().map(|p| read(p, "CA")).transpose()?,
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [&self.cert, &self.key, &self.ca] {
            let part = part.as_deref().unwrap_or_default();
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }

    fn build(&self, client_auth: bool) -> anyhow::Result<Built> {
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .context("tls.cert_file is not a PEM certificate chain")?;
                anyhow::ensure!(!chain.is_empty(), "tls.cert_file holds no certificate");
                let key = PrivateKeyDer::from_pem_slice(key).context("tls.key_file is not a PEM private key")?;
                Some((chain, key))
            }
            _ => None,
        };
        let roots = match &self.ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    roots.add(cert.context("tls.ca_file is not a PEM bundle")?).context("tls.ca_file")?;
                }
                anyhow::ensure!(!roots.is_empty(), "tls.ca_file holds no certificate");
                Some(Arc::new(roots))
            }
            None => None,
        };
        let server = match &identity {
            Some((chain, key)) => {
                let builder = rustls::ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .context("TLS protocol versions")?;
                let builder = match (&roots, client_auth) {
                    (Some(roots), true) => {
                        let verifier =
                            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                                .build()
                                .context("client certificate verifier")?;
                        builder.with_client_cert_verifier(verifier)
                    }
                    _ => builder.with_no_client_auth(),
                };
                let mut config = builder
                    .with_single_cert(chain.clone(), key.clone_key())
                    .context("tls.cert_file and tls.key_file do not match")?;
                config.alpn_protocols = vec![ALPN_H2.to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        let client = match roots {
            Some(roots) => {
                let builder = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .context("TLS protocol versions")?
                    .with_root_certificates(roots);
                let mut config = match identity {
                    Some((chain, key)) => builder.with_client_auth_cert(chain, key).context("client certificate")?,
                    None => builder.with_no_client_auth(),
                };
                config.alpn_protocols = vec![ALPN_H2.to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        Ok(Built { server, client })
    }
}

impl Tls {
    /// Loads the configured files; `None` when TLS is not configured. The returned value does
    /// not reload by itself: see [`Tls::watch`].
    pub fn load(config: &TlsConfig) -> anyhow::Result<Option<Self>> {
        if !config.is_enabled() {
            return Ok(None);
        }
        let files = config.files()?;
        let contents = Contents::read(&files)?;
        let built = contents.build(config.client_auth)?;
        Ok(Some(Self {
            inner: Arc::new(Shared {
                files,
                client_auth: config.client_auth,
                current: RwLock::new(built),
                digest: Mutex::new(contents.digest()),
            }),
        }))
    }

    /// Loads the configured files and checks them every `reload_interval_ms` for as long as the
    /// returned value (or a clone) is alive. Needs a Tokio runtime.
    pub fn load_watched(config: &TlsConfig) -> anyhow::Result<Option<Self>> {
        let tls = Self::load(config)?;
        if let Some(tls) = &tls {
            tls.watch(Duration::from_millis(config.reload_interval_ms));
        }
        Ok(tls)
    }

    /// A caller's TLS that trusts `roots` and presents no certificate: for clients outside the
    /// suite, such as the command line reaching a gateway whose certificate a public CA issued.
    /// It has no files, so it never reloads.
    pub fn client_trusting(roots: rustls::RootCertStore) -> anyhow::Result<Self> {
        anyhow::ensure!(!roots.is_empty(), "no trusted root certificates");
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let none = Contents { cert: None, key: None, ca: None };
        Ok(Self {
            inner: Arc::new(Shared {
                files: Files { cert: None, key: None, ca: None },
                client_auth: false,
                current: RwLock::new(Built { server: None, client: Some(Arc::new(config)) }),
                digest: Mutex::new(none.digest()),
            }),
        })
    }

    /// The configuration for serving, if a certificate is configured.
    pub fn server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.inner.current.read().ok().and_then(|c| c.server.clone())
    }

    /// The configuration for calling other services, if a CA is configured.
    pub fn client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.inner.current.read().ok().and_then(|c| c.client.clone())
    }

    /// Whether callers must present a client certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.inner.client_auth && self.server_config().is_some()
    }

    /// Reads the files again and, when their contents changed, builds and swaps in new
    /// configurations. Returns whether anything changed; on an error the current
    /// configurations stay.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let contents = Contents::read(&self.inner.files)?;
        let digest = contents.digest();
        let mut current_digest = self.inner.digest.lock().map_err(|_| anyhow::anyhow!("TLS state poisoned"))?;
        if *current_digest == digest {
            return Ok(false);
        }
        let built = contents.build(self.inner.client_auth)?;
        *self.inner.current.write().map_err(|_| anyhow::anyhow!("TLS state poisoned"))? = built;
        *current_digest = digest;
        Ok(true)
    }

    /// Checks the files every `interval` until the last clone of `self` is dropped.
    pub fn watch(&self, interval: Duration) {
        let weak: Weak<Shared> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let tls = Tls { inner };
                match tls.reload() {
                    Ok(true) => {
                        tracing::info!(files = ?tls.inner.files, "TLS certificate reloaded");
                        metrics::counter!("redress_tls_reloads_total", "outcome" => "reloaded").increment(1);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "TLS files could not be reloaded; the previous certificate stays in use");
                        metrics::counter!("redress_tls_reloads_total", "outcome" => "failed").increment(1);
                    }
                }
            }
        });
    }
}

/// Accepts connections on `listener` and hands on those whose TLS handshake succeeds (each
/// with the configuration current when it was accepted). Handshakes run concurrently; a client
/// that speaks plaintext, presents no or an untrusted certificate when one is required, or
/// stalls is dropped. Stops when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Tls,
    http1: bool,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(mut config) = tls.server_config() else { return };
            if http1 {
                // Offered after h2, for HTTP/1.1 callers (the gateway's REST and grpc-web).
                Arc::make_mut(&mut config).alpn_protocols.push(b"http/1.1".to_vec());
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_rustls::TlsAcceptor::from(config).accept(tcp)).await
                {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => handshake_failed(peer, &e.to_string()),
                    Err(_) => handshake_failed(peer, "timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn handshake_failed(peer: SocketAddr, why: &str) {
    tracing::debug!(%peer, why, "TLS handshake failed");
    metrics::counter!("redress_tls_handshake_failures_total").increment(1);
}

/// A connection to another service: plaintext for `http://` URLs, TLS for `https://`.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens a connection to `uri`: TCP without Nagle delay, then for `https` a TLS handshake with
/// `tls`'s client configuration current at this moment (the server's name from the URL).
pub async fn connect(uri: http::Uri, tls: Option<Tls>) -> io::Result<Connection> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(other) => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsupported scheme {other}"))),
    };
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    if !https {
        return Ok(Connection::Plain(tcp));
    }
    let config = tls.and_then(|t| t.client_config()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{uri} is https but no TLS CA is configured for calls (server.tls.ca_file)"),
        )
    })?;
    let name = ServerName::try_from(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
    Ok(Connection::Tls(Box::new(stream)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_client_trusting_given_roots_keeps_them_and_serves_nothing() {
        assert!(Tls::client_trusting(rustls::RootCertStore::empty()).is_err());
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let root = params.self_signed(&key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.der().clone()).unwrap();
        let tls = Tls::client_trusting(roots).unwrap();
        assert_eq!(tls.client_config().unwrap().alpn_protocols, [ALPN_H2.to_vec()]);
        assert!(tls.server_config().is_none());
        assert!(!tls.requires_client_certificates());
        // It has no files: reading them again changes nothing and keeps the roots.
        assert!(!tls.reload().unwrap());
        assert!(tls.client_config().is_some());
    }
}

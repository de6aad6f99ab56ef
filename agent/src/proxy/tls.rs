//! The proxy listener's TLS: a certificate and key from files (what
//! cert-manager or a mounted Secret gives), reloaded when the files change;
//! or, with none given, a self-signed certificate generated on first start,
//! kept in a directory, and published to the control plane (through the
//! heartbeat) so that the cluster's kubeconfigs trust it. ALPN offers `h2`
//! and `http/1.1`; kubectl's SPDY and WebSocket clients ask for the latter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, reloaded when their modification time changes.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed certificate for `names`, kept in `dir`.
    SelfSigned {
        /// Where `proxy.crt` and `proxy.key` are kept.
        dir: PathBuf,
        /// The DNS names and IP addresses it is valid for.
        names: Vec<String>,
    },
}

/// The listener's TLS, ready to accept connections.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    /// The self-signed certificate (PEM), to publish; none for files.
    pub self_signed_pem: Option<String>,
}

impl ServerTls {
    /// Load or create the certificate.
    pub fn new(source: &TlsSource) -> Result<ServerTls> {
        let (pair, self_signed_pem) = match source {
            TlsSource::Files { cert, key } => (load_files(cert, key)?, None),
            TlsSource::SelfSigned { dir, names } => {
                let pem = self_signed(dir, names)?;
                (load_files(&dir.join(CERT_FILE), &dir.join(KEY_FILE))?, Some(pem))
            }
        };
        let resolver = Arc::new(Resolver { current: RwLock::new(pair), source: source.clone() });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls { acceptor: TlsAcceptor::from(Arc::new(config)), resolver, self_signed_pem })
    }

    /// The acceptor for a new connection (it serves the current certificate).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Check the certificate files every `every` and load them again when
    /// they change; a broken new pair is logged and the old one kept.
    pub async fn reload_every(self, every: Duration) {
        if !matches!(self.resolver.source, TlsSource::Files { .. }) {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.resolver.reload_if_changed();
        }
    }
}

const CERT_FILE: &str = "proxy.crt";
const KEY_FILE: &str = "proxy.key";

/// A loaded certificate and the modification times of its files.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
}

/// Serves the current certificate to every handshake.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Loaded>,
    source: TlsSource,
}

impl Resolver {
    fn reload_if_changed(&self) {
        let TlsSource::Files { cert, key } = &self.source else { return };
        let now = (modified(cert), modified(key));
        if self.current.read().unwrap_or_else(|e| e.into_inner()).stamp == now {
            return;
        }
        let loaded = load_files(cert, key);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(loaded) => {
                *current = loaded;
                info!(cert = %cert.display(), "reloaded the proxy's TLS certificate");
            }
            Err(e) => {
                // Not again until the files change once more.
                current.stamp = now;
                error!(error = %format!("{e:#}"), "the proxy's new TLS certificate does not load; still serving the previous one");
            }
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).key.clone())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_files(cert: &Path, key: &Path) -> Result<Loaded> {
    let stamp = (modified(cert), modified(key));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{} is not a PEM private key (PKCS#8, PKCS#1 or SEC1)", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider)
        .with_context(|| format!("the key {} does not match the certificate {}", key.display(), cert.display()))?;
    Ok(Loaded { key: Arc::new(certified), stamp })
}

/// The self-signed certificate in `dir` (created for `names` if absent), as PEM.
fn self_signed(dir: &Path, names: &[String]) -> Result<String> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if cert_path.exists() && key_path.exists() {
        return std::fs::read_to_string(&cert_path).with_context(|| format!("reading {}", cert_path.display()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let generated =
        rcgen::generate_simple_self_signed(names.to_vec()).context("generating a self-signed certificate")?;
    let cert_pem = generated.cert.pem();
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, &cert_pem).with_context(|| format!("writing {}", cert_path.display()))?;
    info!(dir = %dir.display(), names = ?names, "generated the proxy's self-signed TLS certificate");
    Ok(cert_pem)
}

/// Write `bytes` to a new file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (cert, key, generated.cert.der().to_vec())
    }

    fn served(tls: &ServerTls) -> Vec<u8> {
        tls.resolver.current.read().unwrap().key.cert[0].to_vec()
    }

    #[test]
    fn changed_files_are_served_and_a_broken_change_keeps_the_old_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, first) = write_pair(dir.path(), "one.example");
        let tls = ServerTls::new(&TlsSource::Files { cert: cert.clone(), key: key.clone() }).unwrap();
        assert_eq!(served(&tls), first);
        assert!(tls.self_signed_pem.is_none(), "files are not published");

        let (_, _, second) = write_pair(dir.path(), "two.example");
        // A new modification time, whatever the file system's resolution.
        let later = SystemTime::now() + Duration::from_secs(5);
        for path in [&cert, &key] {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(later).unwrap();
        }
        tls.resolver.reload_if_changed();
        assert_eq!(served(&tls), second, "the new pair is served");

        std::fs::write(&key, "not a key").unwrap();
        std::fs::File::options().write(true).open(&key).unwrap().set_modified(later + Duration::from_secs(5)).unwrap();
        tls.resolver.reload_if_changed();
        assert_eq!(served(&tls), second, "a broken pair keeps the previous one");
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_kept_private_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let source = TlsSource::SelfSigned { dir: dir.path().join("tls"), names: vec!["127.0.0.1".into()] };
        let first = ServerTls::new(&source).unwrap().self_signed_pem.unwrap();
        assert!(first.contains("BEGIN CERTIFICATE"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("tls").join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ServerTls::new(&source).unwrap().self_signed_pem.unwrap();
        assert_eq!(first, again, "kept across restarts");
    }
}

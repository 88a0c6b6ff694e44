//! Explicit FTPS (RFC 4217) with rustls: certificates, the control-connection upgrade, and
//! TLS on data connections bound to the control connection's session.
//!
//! Each control connection gets its own session store. A data connection that must resume
//! (`tls_session_reuse`, on by default) is accepted only if its handshake resumed a session
//! from *that* store, which holds only the sessions of this very control connection: a
//! stranger who races for the passive port cannot present one. This goes further than
//! vsftpd's `require_ssl_reuse`, which accepts any cached session of the server.
//!
//! Uploads' data connections never send TLS 1.3 session tickets: the client only writes
//! there, so a ticket stays unread, and closing a socket with unread data makes the kernel
//! reset it, which costs curl and lftp the end of the upload. The store lets a ticket be used
//! many times, so clients that reuse one (GnuTLS: lftp, FileZilla) resume for every transfer
//! of a session; single-use tickets run out after two transfers in other servers. OpenSSL
//! clients (curl) offer a TLS 1.3 ticket only once, so data connections that send (downloads,
//! listings), where the client reads, each hand out one fresh ticket for the next transfer.

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferry_core::TransferError;
use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use rustls::HandshakeKind;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::{ServerConfig, ServerConnection};
use smol::Async;

use crate::clock::timeout;

/// A TLS stream over a TCP socket.
pub(crate) type Stream = TlsStream<Async<TcpStream>>;

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file is not PEM.
    #[error("{}: not a PEM certificate chain: {source}", .path.display())]
    CertificatePem {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{}: no certificate found (expected PEM \"BEGIN CERTIFICATE\")", .path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("{}: no private key found (expected PEM PKCS#8, RSA or EC key): {source}", .path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pem::Error,
    },
    /// rustls refused the protocol versions (a bug).
    #[error("TLS configuration: {0}")]
    Versions(#[source] rustls::Error),
    /// The key does not belong to the certificate, or rustls cannot use it.
    #[error(
        "{} and {}: the key does not match the certificate or is unusable: {source}",
        .cert.display(),
        .key.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// Loads a certificate chain and its private key (PEM) into a server configuration offering
/// TLS 1.2 and 1.3.
///
/// # Errors
/// The file and what is wrong: unreadable, no certificate or key in it, or a key that does
/// not belong to the certificate.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::CertificatePem {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::NoKey {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|source| TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The server's TLS configuration, replaceable while running (SIGHUP reloads the files;
/// sessions keep the configuration they started with).
#[derive(Debug)]
pub struct Tls {
    base: RwLock<Arc<ServerConfig>>,
    reuse: bool,
}

impl Tls {
    /// Serves `config`; `reuse` requires data connections to resume the control session.
    #[must_use]
    pub fn new(config: Arc<ServerConfig>, reuse: bool) -> Self {
        Self {
            base: RwLock::new(config),
            reuse,
        }
    }

    /// Replaces the configuration for new sessions.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        if let Ok(mut base) = self.base.write() {
            *base = config;
        }
    }

    /// Upgrades a control connection. Returns the stream and what its data connections use.
    pub(crate) async fn accept_control(
        &self,
        stream: Async<TcpStream>,
        within: Duration,
    ) -> io::Result<(Stream, DataTls)> {
        let base = self
            .base
            .read()
            .map_err(|_| io::Error::other("TLS lock poisoned"))?
            .clone();
        let store = Arc::new(SessionStore::default());
        let mut control = (*base).clone();
        control.session_storage = store.clone();
        let mut sending = (*base).clone();
        sending.session_storage = store.clone();
        sending.send_tls13_tickets = 1;
        let mut receiving = (*base).clone();
        receiving.session_storage = store.clone();
        let data_store = store.clone();
        receiving.send_tls13_tickets = 0;
        let stream = timeout(within, TlsAcceptor::from(Arc::new(control)).accept(stream))
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        // The handshake's own tickets are stored by now; keep them for the whole session.
        store.seal();
        Ok((
            stream,
            DataTls {
                store: data_store,
                sending: Arc::new(sending),
                receiving: Arc::new(receiving),
                require_resumption: self.reuse,
            },
        ))
    }
}

/// TLS for the data connections of one control connection.
#[derive(Clone)]
pub(crate) struct DataTls {
    store: Arc<SessionStore>,
    /// For downloads and listings: one fresh ticket.
    sending: Arc<ServerConfig>,
    /// For uploads: no ticket.
    receiving: Arc<ServerConfig>,
    require_resumption: bool,
}

impl DataTls {
    /// Runs the handshake on a data connection; refuses it if it did not resume this control
    /// connection's session (when that is required).
    pub(crate) async fn accept(
        &self,
        stream: Async<TcpStream>,
        within: Duration,
        upload: bool,
    ) -> Result<Stream, TransferError> {
        let config = if upload {
            &self.receiving
        } else {
            &self.sending
        };
        let mark = self.store.mark();
        let stream = timeout(within, TlsAcceptor::from(config.clone()).accept(stream))
            .await
            .ok_or(TransferError::TlsHandshake)?
            .map_err(|e| {
                tracing::warn!(error = %e, "TLS handshake on a data connection failed");
                TransferError::TlsHandshake
            })?;
        let conn: &ServerConnection = stream.get_ref().1;
        if self.require_resumption && conn.handshake_kind() != Some(HandshakeKind::Resumed) {
            // Whoever this was, the session its full handshake made must not let it in later.
            self.store.forget_since(mark);
            tracing::warn!(
                "refused a data connection that did not resume the control connection's TLS session"
            );
            return Err(TransferError::TlsNotResumed);
        }
        Ok(stream)
    }
}

/// Sessions of one control connection. The ones its own handshake made are kept for the
/// whole session (clients such as lftp resume every data connection with them); the tickets
/// data connections hand out are kept in a small ring. A ticket can be presented many times.
#[derive(Debug, Default)]
struct SessionStore {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Made by the control connection's handshake; never evicted.
    pinned: Vec<(Vec<u8>, Vec<u8>)>,
    /// Handed out by data connections, with a sequence number; the oldest goes first.
    recent: VecDeque<(u64, Vec<u8>, Vec<u8>)>,
    /// The sequence number of the next one.
    next: u64,
    /// Set once the control connection's handshake is done.
    sealed: bool,
}

/// Sessions kept per control connection, of each kind.
const SESSIONS_PER_CONNECTION: usize = 8;

impl SessionStore {
    /// The control connection's handshake is done: later sessions come from data connections.
    fn seal(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.sealed = true;
        }
    }

    /// A mark for [`SessionStore::forget_since`], taken before a data connection's handshake.
    fn mark(&self) -> u64 {
        self.entries.lock().map_or(0, |e| e.next)
    }

    /// Forgets the sessions stored since `mark` (by a handshake that was refused).
    fn forget_since(&self, mark: u64) {
        if let Ok(mut e) = self.entries.lock() {
            e.recent.retain(|(seq, _, _)| *seq < mark);
        }
    }
}

impl StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Ok(mut e) = self.entries.lock() else {
            return false;
        };
        if !e.sealed && e.pinned.len() < SESSIONS_PER_CONNECTION {
            e.pinned.push((key, value));
            return true;
        }
        e.recent.retain(|(_, k, _)| *k != key);
        if e.recent.len() == SESSIONS_PER_CONNECTION {
            e.recent.pop_front();
        }
        let seq = e.next;
        e.next += 1;
        e.recent.push_back((seq, key, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let e = self.entries.lock().ok()?;
        let pinned = e.pinned.iter().map(|(k, v)| (k, v));
        let recent = e.recent.iter().map(|(_, k, v)| (k, v));
        pinned
            .chain(recent)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    /// Unlike rustls' own cache, a TLS 1.3 ticket stays usable: every data connection of the
    /// session may resume with it.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

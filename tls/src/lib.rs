//! TLS configuration shared by strand's transports.
//!
//! The ws (`wss`) and QUIC transports both build their rustls configs here, so
//! the same options mean the same thing on both carriers:
//!
//! - [`Identity`]: a certificate chain and key, loaded from PEM or generated
//!   ([`Identity::dev`] makes one that JS peers can verify as `localhost`).
//! - [`ServerTls`]: the identity, what is asked of clients ([`ClientAuth`]:
//!   none, optional or required client certificates, checked against a CA, by
//!   a custom verifier, or accepted as-is for the application to judge) and
//!   ALPN.
//! - [`ClientTls`]: how the server is verified ([`ServerVerification`]:
//!   Mozilla roots, a custom CA or pinned certificate, a callback, a custom
//!   verifier, or not at all), an optional client certificate and ALPN.
//!
//! Everything uses rustls 0.23 with the ring provider ([`provider`]); the
//! crate re-exports [`rustls`] so that users name one version. A client without
//! a certificate answers a server's CertificateRequest with an empty
//! Certificate message (JS servers always send a request), so such clients
//! connect to servers whose client auth is [`ClientAuth::Optional`].
//!
//! # Example
//!
//! ```
//! use strand_tls::{ClientAuth, ClientCertVerification, ClientTls, Identity, ServerTls, ServerVerification};
//!
//! # fn main() -> Result<(), strand_tls::TlsError> {
//! let server_identity = Identity::dev()?;
//! let server = ServerTls::new(server_identity.clone())
//!     .with_client_auth(ClientAuth::Optional(ClientCertVerification::AnyCertificate))
//!     .with_alpn(vec![b"quic".to_vec()])
//!     .build()?;
//! // A client that pins the server's self-signed certificate.
//! let client = ClientTls::new(ServerVerification::Ca(server_identity.cert_chain().to_vec()))
//!     .with_alpn(vec![b"quic".to_vec()])
//!     .build()?;
//! # let _ = (server, client);
//! # Ok(())
//! # }
//! ```
//!
//! # Backpressure
//!
//! Not applicable: this crate does no I/O. It only builds configurations; the
//! transports own the sockets and their buffers.
//!
//! # Cancel safety
//!
//! Not applicable: nothing here is async. Building a config is synchronous and
//! cheap except [`Identity::self_signed`], which generates a key pair.

use std::sync::{Arc, OnceLock};

pub use rustls;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

mod config;
mod error;
mod identity;
mod pinning;
mod verify;

pub use config::{ClientAuth, ClientCertVerification, ClientTls, ServerTls, ServerVerification};
pub use error::TlsError;
pub use identity::Identity;
pub use verify::ServerCertCallback;

/// The ring crypto provider, created once and shared by every config.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A peer's certificate chain as owned DER bytes, the form
/// `PeerInfo::certificates` keeps (one copy per certificate, once per
/// connection).
pub fn chain_to_bytes(chain: &[CertificateDer<'_>]) -> Vec<bytes::Bytes> {
    chain
        .iter()
        .map(|c| bytes::Bytes::copy_from_slice(c.as_ref()))
        .collect()
}

/// Every `CERTIFICATE` section of a PEM text, in order. Other sections are
/// skipped. Fails on malformed PEM or when there is no certificate.
pub fn load_certs_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

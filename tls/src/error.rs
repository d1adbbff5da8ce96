//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Why a TLS identity or configuration could not be built.
///
/// Every variant is a local configuration problem (bad files, bad PEM, a
/// certificate that does not match its key); none is caused by a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read. Check the path and its permissions.
    #[error("reading {path}: {source}")]
    ReadFile {
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The PEM text is malformed (bad base64, unterminated section).
    #[error("invalid pem: {0}")]
    Pem(#[source] io::Error),
    /// The PEM text holds no `CERTIFICATE` section.
    #[error("no certificate found in the pem input")]
    NoCertificate,
    /// The PEM text holds no private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    #[error("no private key found in the pem input")]
    NoPrivateKey,
    /// The private key is unsupported or does not match the leaf certificate.
    #[error("invalid identity: {0}")]
    InvalidIdentity(#[source] rustls::Error),
    /// A CA certificate given as a trust root could not be parsed.
    #[error("invalid ca certificate: {0}")]
    InvalidCa(#[source] rustls::Error),
    /// A certificate verifier could not be built (for example: no roots given).
    #[error("building the certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Certificate generation failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration (for example: no usable protocol version).
    #[error("tls configuration: {0}")]
    Config(#[source] rustls::Error),
}

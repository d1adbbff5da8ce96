//! The custom certificate verifiers behind [`ServerVerification`] and
//! [`ClientCertVerification`].
//!
//! Every verifier here still checks the handshake signatures with the ring
//! provider's algorithms: accepting a certificate never means accepting a peer
//! that does not hold its private key.
//!
//! [`ServerVerification`]: crate::ServerVerification
//! [`ClientCertVerification`]: crate::ClientCertVerification

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// The signature of [`ServerVerification::Callback`](crate::ServerVerification::Callback).
pub type ServerCertCallback =
    Arc<dyn Fn(&[CertificateDer<'_>], &ServerName<'_>) -> Result<(), String> + Send + Sync>;

/// Signature checks shared by every verifier below.
#[derive(Debug)]
struct Signatures(Arc<CryptoProvider>);

impl Signatures {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Server verification that hands the chain to an application callback
/// (`Insecure` is this with a callback that accepts everything).
pub(crate) struct CallbackServerVerifier {
    callback: Option<ServerCertCallback>,
    signatures: Signatures,
}

impl CallbackServerVerifier {
    pub(crate) fn new(callback: Option<ServerCertCallback>, provider: Arc<CryptoProvider>) -> Self {
        CallbackServerVerifier {
            callback,
            signatures: Signatures(provider),
        }
    }
}

impl fmt::Debug for CallbackServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackServerVerifier")
            .field("insecure", &self.callback.is_none())
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for CallbackServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(callback) = &self.callback {
            let mut chain = Vec::with_capacity(1 + intermediates.len());
            chain.push(end_entity.clone());
            chain.extend(intermediates.iter().cloned());
            callback(&chain, server_name).map_err(Error::General)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

/// Client verification that accepts any certificate at the TLS layer; the
/// application decides from the chain in `PeerInfo` (what JS servers do).
#[derive(Debug)]
pub(crate) struct AnyClientCert {
    mandatory: bool,
    signatures: Signatures,
}

impl AnyClientCert {
    pub(crate) fn new(mandatory: bool, provider: Arc<CryptoProvider>) -> Self {
        AnyClientCert {
            mandatory,
            signatures: Signatures(provider),
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

/// Wraps an application's client verifier so that `Optional` / `Required`
/// decide whether a certificate is mandatory, whatever the inner one says.
#[derive(Debug)]
pub(crate) struct Mandatory {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) mandatory: bool,
}

impl ClientCertVerifier for Mandatory {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

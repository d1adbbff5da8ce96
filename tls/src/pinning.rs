//! Server verification against given certificates ([`ServerVerification::Ca`])
//! and the public roots, with pinning and errors a person can act on.
//!
//! A certificate given as a CA is a trust root, as usual, and also a pin: a
//! server presenting exactly that certificate is accepted once its name and
//! validity period check out, even when it is marked as a CA (the
//! `openssl req -x509` default, which plain chain verification refuses as
//! `CaUsedAsEndEntity`) or was issued by a CA we were not given. Node, curl
//! and browsers accept such a certificate once it is trusted; so do we.
//!
//! [`ServerVerification::Ca`]: crate::ServerVerification::Ca

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

/// Where the trust of a [`ExplainingVerifier`] comes from, for its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// The certificates given as `tls.ca` / `--ca`.
    Given,
    /// The public web roots.
    PublicRoots,
}

/// Chain verification by webpki, plus pinning of the given certificates and
/// explained errors.
#[derive(Debug)]
pub(crate) struct ExplainingVerifier {
    chain: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    trust: Trust,
}

impl ExplainingVerifier {
    pub(crate) fn new(
        chain: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
        trust: Trust,
    ) -> Self {
        ExplainingVerifier {
            chain,
            pinned,
            trust,
        }
    }

    fn explain(&self, err: Error) -> Error {
        explain(err, self.trust, self.pinned.len())
    }
}

impl ServerCertVerifier for ExplainingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let err = match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(err) => err,
        };
        let pinned = self.pinned.iter().any(|cert| cert == end_entity);
        if pinned && failed_past_validity(&err) {
            // webpki checks the leaf's validity period (and key usage) before
            // its CA flag and its issuer, so these two errors mean the period
            // is fine; the name is all that is left to check.
            let cert = ParsedCertificate::try_from(end_entity).map_err(|e| self.explain(e))?;
            verify_server_name(&cert, server_name).map_err(|e| self.explain(e))?;
            return Ok(ServerCertVerified::assertion());
        }
        Err(self.explain(err))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The chain failed for a reason webpki finds only after the leaf's validity
/// period passed: its CA flag, or an issuer we do not know.
fn failed_past_validity(err: &Error) -> bool {
    matches!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    ) || is_ca_used_as_end_entity(err)
}

fn is_ca_used_as_end_entity(err: &Error) -> bool {
    match err {
        Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => matches!(
            inner.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// Rewrites a certificate error as a sentence saying what was expected, what
/// was presented and what to pass; other errors are returned unchanged.
pub(crate) fn explain(err: Error, trust: Trust, given: usize) -> Error {
    let given_certs = match given {
        1 => "the certificate given as the CA (tls.ca / --ca)".to_string(),
        n => format!("the {n} certificates given as the CA (tls.ca / --ca)"),
    };
    let sentence = match &err {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => match trust {
            Trust::Given => format!(
                "the server's certificate was not issued by {given_certs} and is not one of \
                 them: give the certificate of the CA that issued it, or the server's own \
                 certificate to pin it"
            ),
            Trust::PublicRoots => "the server's certificate was not issued by a publicly \
                trusted CA: if it is self-signed or from a private CA, give that certificate \
                as the CA (tls.ca / --ca)"
                .to_string(),
        },
        Error::InvalidCertificate(
            cert @ (CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }),
        ) => format!(
            "{cert}: connect with a name the certificate lists, or give the server a \
             certificate for the name you connect to"
        ),
        Error::InvalidCertificate(
            cert @ (CertificateError::Expired | CertificateError::ExpiredContext { .. }),
        ) => format!(
            "the server's {cert}: renew the server's certificate (or check this machine's clock)"
        ),
        Error::InvalidCertificate(
            cert @ (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }),
        ) => format!(
            "the server's {cert}: check the clocks of this machine and of the one that made \
             the certificate"
        ),
        _ if is_ca_used_as_end_entity(&err) => match trust {
            Trust::Given => format!(
                "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as \
                 `openssl req -x509` makes by default) and is not one of {given_certs}: give \
                 this exact certificate as the CA to pin it"
            ),
            Trust::PublicRoots => "the server's certificate is a CA certificate \
                (basicConstraints CA:TRUE, as `openssl req -x509` makes by default): give \
                this exact certificate as the CA (tls.ca / --ca) to pin it"
                .to_string(),
        },
        _ => return err,
    };
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Explained(
        sentence,
    )))))
}

/// A certificate error in words. Its `Debug` is its text too, because
/// rustls shows a [`CertificateError::Other`] with `Debug`.
pub(crate) struct Explained(String);

impl fmt::Debug for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Explained {}

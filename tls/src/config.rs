//! [`ServerTls`] and [`ClientTls`]: the options, and the rustls configs built from them.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::pinning::{ExplainingVerifier, Trust};
use crate::verify::{AnyClientCert, CallbackServerVerifier, Mandatory, ServerCertCallback};
use crate::{provider, Identity, TlsError};

/// What a server asks of its clients.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// No certificate is requested (the default).
    #[default]
    None,
    /// A certificate is requested; clients without one are accepted, clients
    /// with one must pass the verification.
    Optional(ClientCertVerification),
    /// The handshake fails unless the client presents a certificate that
    /// passes the verification.
    Required(ClientCertVerification),
}

/// How a server checks a client certificate.
#[derive(Clone, Debug)]
pub enum ClientCertVerification {
    /// Any certificate passes at the TLS layer (its signature over the
    /// handshake is still checked); the application decides from the chain it
    /// finds in the connection's peer info. This is what JS servers do.
    AnyCertificate,
    /// The chain must lead to one of these CA certificates.
    Ca(Vec<CertificateDer<'static>>),
    /// An application-provided rustls verifier. Whether a certificate is
    /// mandatory is still decided by [`ClientAuth`].
    Custom(Arc<dyn ClientCertVerifier>),
}

/// How a client checks the server's certificate.
#[derive(Clone)]
pub enum ServerVerification {
    /// The Mozilla root store (the `webpki-roots` crate) and the server name.
    WebPkiRoots,
    /// The chain must lead to one of these certificates and match the server
    /// name: a private CA, or a pinned certificate. A server presenting
    /// exactly one of them is accepted once its name and validity period
    /// check, even when it is marked as a CA (the `openssl req -x509`
    /// default, refused by plain chain verification) or its issuer is
    /// unknown.
    Ca(Vec<CertificateDer<'static>>),
    /// The callback sees the chain (leaf first) and the server name and
    /// decides; an `Err` aborts the handshake with that text. Handshake
    /// signatures are still verified.
    Callback(ServerCertCallback),
    /// An application-provided rustls verifier.
    Custom(Arc<dyn ServerCertVerifier>),
    /// Accepts any certificate for any name. Development only: it gives no
    /// protection against an active attacker.
    Insecure,
}

impl fmt::Debug for ServerVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerVerification::WebPkiRoots => f.write_str("WebPkiRoots"),
            ServerVerification::Ca(roots) => f.debug_tuple("Ca").field(&roots.len()).finish(),
            ServerVerification::Callback(_) => f.write_str("Callback"),
            ServerVerification::Custom(v) => f.debug_tuple("Custom").field(v).finish(),
            ServerVerification::Insecure => f.write_str("Insecure"),
        }
    }
}

/// A server's TLS options.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The certificate chain and key the server presents.
    pub identity: Identity,
    /// What the server asks of clients (default: nothing).
    pub client_auth: ClientAuth,
    /// ALPN protocols in preference order (default: none; transports set
    /// their own, e.g. `quic` for QUIC).
    pub alpn: Vec<Vec<u8>>,
}

impl ServerTls {
    /// Presents `identity`, asks nothing of clients, no ALPN.
    pub fn new(identity: Identity) -> Self {
        ServerTls {
            identity,
            client_auth: ClientAuth::None,
            alpn: Vec::new(),
        }
    }

    /// Sets what the server asks of clients.
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Sets the ALPN protocols.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Builds the rustls server config (ring provider, TLS 1.3 and 1.2).
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(v) => {
                builder.with_client_cert_verifier(client_verifier(v, false)?)
            }
            ClientAuth::Required(v) => builder.with_client_cert_verifier(client_verifier(v, true)?),
        };
        let mut config = builder
            .with_single_cert(
                self.identity.cert_chain().to_vec(),
                self.identity.private_key().clone_key(),
            )
            .map_err(TlsError::InvalidIdentity)?;
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

fn client_verifier(
    verification: &ClientCertVerification,
    mandatory: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    Ok(match verification {
        ClientCertVerification::AnyCertificate => {
            Arc::new(AnyClientCert::new(mandatory, provider()))
        }
        ClientCertVerification::Ca(cas) => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(cas)?), provider());
            let builder = if mandatory {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder.build()?
        }
        ClientCertVerification::Custom(inner) => Arc::new(Mandatory {
            inner: inner.clone(),
            mandatory,
        }),
    })
}

fn roots(cas: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add(ca.clone()).map_err(TlsError::InvalidCa)?;
    }
    Ok(store)
}

/// A client's TLS options.
///
/// Clones share the rustls config built from them: connections made with
/// one `ClientTls` (or its clones) reuse it, so the verifier is built once
/// and TLS sessions resume instead of running a full handshake each time.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// How the server's certificate is checked.
    pub verification: ServerVerification,
    /// The client certificate for mTLS (default: none; a server that requests
    /// one then gets an empty Certificate message).
    pub identity: Option<Identity>,
    /// ALPN protocols in preference order (default: none).
    pub alpn: Vec<Vec<u8>>,
    /// The configs built, with the options each was built from: the fields
    /// above are public and may change between builds (a transport sets its
    /// own ALPN on a clone, for instance). The last few are kept.
    built: Arc<Mutex<Vec<Built>>>,
}

/// Configs kept per [`ClientTls`] and its clones.
const BUILT_KEPT: usize = 4;

#[derive(Debug)]
struct Built {
    verification: ServerVerification,
    identity: Option<Identity>,
    alpn: Vec<Vec<u8>>,
    config: Arc<rustls::ClientConfig>,
}

impl Built {
    fn was_built_from(&self, tls: &ClientTls) -> bool {
        self.alpn == tls.alpn
            && same_verification(&self.verification, &tls.verification)
            && match (&self.identity, &tls.identity) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_as(b),
                _ => false,
            }
    }
}

fn same_verification(a: &ServerVerification, b: &ServerVerification) -> bool {
    use ServerVerification::*;
    match (a, b) {
        (WebPkiRoots, WebPkiRoots) | (Insecure, Insecure) => true,
        (Ca(a), Ca(b)) => a == b,
        (Callback(a), Callback(b)) => Arc::ptr_eq(a, b),
        (Custom(a), Custom(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl ClientTls {
    /// Verifies the server with `verification`, no client certificate, no ALPN.
    pub fn new(verification: ServerVerification) -> Self {
        ClientTls {
            verification,
            identity: None,
            alpn: Vec::new(),
            built: Arc::default(),
        }
    }

    /// Presents `identity` when the server requests a client certificate.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sets the ALPN protocols.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Shares the configs `other` built and will build, as a clone of it
    /// would: where the options are the same, the same config (and its TLS
    /// sessions) is used. For options made afresh for each connection, from
    /// files that may have changed, for instance.
    pub fn sharing_configs_with(mut self, other: &ClientTls) -> Self {
        self.built = other.built.clone();
        self
    }

    /// The rustls client config (ring provider, TLS 1.3 and 1.2): built on
    /// the first call with these options, then the same one (its TLS session
    /// cache with it).
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = built.iter().find(|b| b.was_built_from(self)) {
            return Ok(built.config.clone());
        }
        let config = self.build_new()?;
        if built.len() == BUILT_KEPT {
            built.remove(0);
        }
        built.push(Built {
            verification: self.verification.clone(),
            identity: self.identity.clone(),
            alpn: self.alpn.clone(),
            config: config.clone(),
        });
        Ok(config)
    }

    fn build_new(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match &self.verification {
            ServerVerification::WebPkiRoots => {
                let store = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let chain =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()?;
                Arc::new(ExplainingVerifier::new(
                    chain,
                    Vec::new(),
                    Trust::PublicRoots,
                ))
            }
            ServerVerification::Ca(cas) => {
                let chain = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots(cas)?),
                    provider.clone(),
                )
                .build()?;
                Arc::new(ExplainingVerifier::new(chain, cas.clone(), Trust::Given))
            }
            ServerVerification::Callback(callback) => Arc::new(CallbackServerVerifier::new(
                Some(callback.clone()),
                provider.clone(),
            )),
            ServerVerification::Custom(verifier) => verifier.clone(),
            ServerVerification::Insecure => {
                Arc::new(CallbackServerVerifier::new(None, provider.clone()))
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(
                    identity.cert_chain().to_vec(),
                    identity.private_key().clone_key(),
                )
                .map_err(TlsError::InvalidIdentity)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

//! [`Identity`]: a certificate chain and its private key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{load_certs_pem, provider, TlsError};

/// A certificate chain (leaf first) and the leaf's private key.
///
/// Cheap to clone: the key is shared. The key is never printed by `Debug`.
#[derive(Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    /// Loads an identity from PEM text: every `CERTIFICATE` section of
    /// `cert_pem` (leaf first) and the first private key of `key_pem` (PKCS#8,
    /// PKCS#1 or SEC1).
    ///
    /// Fails if either is missing, if the key type is unsupported or if the key
    /// does not belong to the leaf certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsError> {
        let chain = load_certs_pem(cert_pem)?;
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(TlsError::Pem)?
            .ok_or(TlsError::NoPrivateKey)?;
        Identity::from_der(chain, key)
    }

    /// Loads an identity from a PEM certificate file and a PEM key file (they
    /// may be the same file).
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::ReadFile {
                path: path.to_owned(),
                source,
            })
        };
        Identity::from_pem(&read(cert.as_ref())?, &read(key.as_ref())?)
    }

    /// Builds an identity from DER values, checking that the key is supported
    /// and matches the leaf certificate.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Identity, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
            .map_err(TlsError::InvalidIdentity)?;
        Ok(Identity {
            chain,
            key: Arc::new(key),
        })
    }

    /// The same chain and key (not a check that two identities are
    /// equivalent in any looser sense).
    pub(crate) fn same_as(&self, other: &Identity) -> bool {
        self.chain == other.chain
            && (Arc::ptr_eq(&self.key, &other.key)
                || self.key.secret_der() == other.key.secret_der())
    }

    /// A self-signed certificate generated in memory (ECDSA P-256).
    ///
    /// Each name that parses as an IP address becomes an IP SAN, every other
    /// name a DNS SAN.
    pub fn self_signed(names: &[&str]) -> Result<Identity, TlsError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        Ok(Identity {
            chain: vec![certified.cert.der().clone()],
            key: Arc::new(key),
        })
    }

    /// `self_signed(&["localhost", "127.0.0.1", "::1"])`: a development
    /// certificate that JS peers can verify (they check `localhost` as a DNS
    /// name, rustls peers can check the IP addresses).
    pub fn dev() -> Result<Identity, TlsError> {
        Identity::self_signed(&["localhost", "127.0.0.1", "::1"])
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The certificate chain as PEM (`CERTIFICATE` sections, leaf first).
    pub fn cert_pem(&self) -> String {
        let mut out = String::new();
        for cert in &self.chain {
            pem_encode("CERTIFICATE", cert, &mut out);
        }
        out
    }

    /// The private key as PEM, in the format it was loaded or generated in.
    pub fn key_pem(&self) -> String {
        let label = match &*self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        let mut out = String::new();
        pem_encode(label, self.key.secret_der(), &mut out);
        out
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Appends `der` as a PEM section with 64-character base64 lines.
fn pem_encode(label: &str, der: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut line = 0;
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            let c = if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            };
            out.push(c);
        }
        line += 4;
        if line == 64 {
            out.push('\n');
            line = 0;
        }
    }
    if line != 0 {
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

#[cfg(test)]
mod tests {
    use super::pem_encode;

    #[test]
    fn base64_padding() {
        for (input, body) in [
            (&b""[..], ""),
            (b"f", "Zg==\n"),
            (b"fo", "Zm8=\n"),
            (b"foo", "Zm9v\n"),
            (b"foob", "Zm9vYg==\n"),
        ] {
            let mut out = String::new();
            pem_encode("X", input, &mut out);
            assert_eq!(out, format!("-----BEGIN X-----\n{body}-----END X-----\n"));
        }
    }
}

//! The TLS side of [`Endpoint`]: identities, CAs, server verification and
//! client authentication from the code or from the config's files.

use strand_tls::{
    load_certs_pem, ClientAuth, ClientCertVerification, ClientTls, Identity, ServerTls,
    ServerVerification,
};

use super::Endpoint;
use crate::config::{ClientAuthMode, VerifyMode};
use crate::Error;

impl Endpoint {
    fn file_identity(&self) -> Result<Option<Identity>, Error> {
        if let Some(identity) = &self.identity {
            return Ok(Some(identity.clone()));
        }
        match (&self.config.tls.cert, &self.config.tls.key) {
            (Some(cert), Some(key)) => Ok(Some(Identity::from_pem_files(cert, key)?)),
            (None, None) => Ok(None),
            _ => Err(Error::Config(
                "tls.cert and tls.key must be given together".into(),
            )),
        }
    }

    fn ca(&self) -> Result<Option<Vec<strand_tls::CertificateDer<'static>>>, Error> {
        let Some(path) = &self.config.tls.ca else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|source| strand_tls::TlsError::ReadFile {
            path: path.clone(),
            source,
        })?;
        Ok(Some(load_certs_pem(&pem)?))
    }

    pub(super) fn server_tls(&self) -> Result<ServerTls, Error> {
        let identity = match self.file_identity()? {
            Some(identity) => identity,
            None if self.config.tls.self_signed => Identity::dev()?,
            None => {
                return Err(Error::Config(format!(
                    "a {} server needs a certificate: set tls.cert and tls.key, or tls.self_signed = true",
                    self.scheme
                )))
            }
        };
        let client_auth = match &self.client_auth {
            Some(auth) => auth.clone(),
            None => {
                let check = match self.ca()? {
                    Some(cas) => ClientCertVerification::Ca(cas),
                    None => ClientCertVerification::AnyCertificate,
                };
                match self.config.tls.client_auth {
                    ClientAuthMode::None => ClientAuth::None,
                    ClientAuthMode::Optional => ClientAuth::Optional(check),
                    ClientAuthMode::Required => ClientAuth::Required(check),
                }
            }
        };
        Ok(ServerTls::new(identity).with_client_auth(client_auth))
    }

    pub(super) fn client_tls(&self) -> Result<ClientTls, Error> {
        let verification = match &self.verification {
            Some(v) => v.clone(),
            None => match (self.config.tls.verify, self.ca()?) {
                (VerifyMode::Auto | VerifyMode::Ca, Some(cas)) => ServerVerification::Ca(cas),
                (VerifyMode::Ca, None) => {
                    return Err(Error::Config("tls.verify = \"ca\" needs tls.ca".into()))
                }
                (VerifyMode::Auto | VerifyMode::Webpki, _) => ServerVerification::WebPkiRoots,
                (VerifyMode::Insecure, _) => ServerVerification::Insecure,
            },
        };
        let mut tls = ClientTls::new(verification);
        if let Some(identity) = self.file_identity()? {
            tls = tls.with_identity(identity);
        }
        Ok(tls)
    }
}

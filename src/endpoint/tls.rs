//! The TLS side of [`Endpoint`]: identities, CAs, server verification and
//! client authentication from the code or from the config's files.

use strand_tls::{
    load_certs_pem, ClientAuth, ClientCertVerification, ClientTls, Identity, ServerTls,
    ServerVerification,
};

use super::Endpoint;
use crate::config::{ClientAuthMode, ClientCaMode, VerifyMode};
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
                let mode = self.config.tls.client_auth;
                if mode == ClientAuthMode::None {
                    ClientAuth::None
                } else {
                    let check = self.client_cert_check(mode)?;
                    match mode {
                        ClientAuthMode::Optional => ClientAuth::Optional(check),
                        _ => ClientAuth::Required(check),
                    }
                }
            }
        };
        Ok(ServerTls::new(identity).with_client_auth(client_auth))
    }

    /// How client certificates are checked: against `tls.ca`, or not at all
    /// when `tls.client_ca = "any"` says so. Neither is an error: a missing
    /// CA must not mean "any client".
    fn client_cert_check(&self, mode: ClientAuthMode) -> Result<ClientCertVerification, Error> {
        let mode = match mode {
            ClientAuthMode::Optional => "optional",
            _ => "required",
        };
        match (self.config.tls.client_ca, self.ca()?) {
            (ClientCaMode::Ca, Some(cas)) => Ok(ClientCertVerification::Ca(cas)),
            (ClientCaMode::Ca, None) => Err(Error::Config(format!(
                "tls.client_auth = \"{mode}\" needs tls.ca, the CA client certificates are checked against; \
                 to accept any client certificate and judge it in the application, set tls.client_ca = \"any\""
            ))),
            (ClientCaMode::Any, None) => Ok(ClientCertVerification::AnyCertificate),
            (ClientCaMode::Any, Some(_)) => Err(Error::Config(
                "tls.client_ca = \"any\" accepts any client certificate, so tls.ca would be ignored: remove one of them".into(),
            )),
        }
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
        // Made afresh (the files may have changed since the last connect);
        // built once for as long as they do not.
        let mut tls = ClientTls::new(verification).sharing_configs_with(&self.client_tls_configs);
        if let Some(identity) = self.file_identity()? {
            tls = tls.with_identity(identity);
        }
        Ok(tls)
    }
}

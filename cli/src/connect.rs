//! How the CLI reaches a server: the options `call`, `describe` and
//! `codegen` share, and the endpoint they make.

use std::path::PathBuf;

use clap::Args;
use strand::{Endpoint, VerifyMode};

/// Authentication and server verification, the same for every command that
/// connects.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// Send `Bearer TOKEN` with the call.
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Verify the server against this PEM certificate (CA or the server's own).
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub(crate) ca: Option<PathBuf>,
    /// Accept any server certificate (development only).
    #[arg(long)]
    pub(crate) insecure: bool,
}

impl ConnectArgs {
    /// The endpoint for `url` with these options applied.
    pub(crate) fn endpoint(&self, url: &str) -> Result<Endpoint, strand::Error> {
        let mut endpoint = Endpoint::from_url(url)?;
        let config = endpoint.config_mut();
        config.tls.ca = self.ca.clone();
        if self.insecure {
            config.tls.verify = VerifyMode::Insecure;
        }
        config.auth.token = self.token.clone();
        Ok(endpoint)
    }
}

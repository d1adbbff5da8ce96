//! Authentication layer 1: TLS client certificates (mTLS), over QUIC (the
//! same options work for wss). The server requires a certificate it knows;
//! a verifier turns the certificate into the caller's identity.
//!
//! Run: `cargo run --example auth_mtls`

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{json, Value};
use strand::middleware::{AuthLayer, Credentials, Verified, Verifier};
use strand::tls::{ClientAuth, ClientCertVerification, Identity, ServerVerification};
use strand::{Context, Endpoint, RpcError, Server};

/// Names the caller by its (pinned) client certificate.
struct KnownCertificates(HashMap<Vec<u8>, String>);

#[async_trait]
impl Verifier for KnownCertificates {
    async fn verify(&self, _: Credentials, ctx: &Context) -> Result<Verified, RpcError> {
        let leaf = ctx
            .peer()
            .certificates
            .first()
            .ok_or_else(|| RpcError::unauthorized("no client certificate"))?;
        match self.0.get(leaf.as_ref()) {
            Some(name) => Ok(Verified::new(
                strand::Identity::new(name.clone()).with_attribute("auth", "mtls"),
            )),
            None => Err(RpcError::unauthorized("unknown client certificate")),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server_identity = Identity::dev()?;
    let alice = Identity::self_signed(&["alice.example"])?;
    let mallory = Identity::self_signed(&["mallory.example"])?;

    let known = KnownCertificates(HashMap::from([(
        alice.cert_chain()[0].to_vec(),
        "alice".to_string(),
    )]));
    let server = Server::builder(strand::demo::router())
        .layer(AuthLayer::new(known))
        .build();
    // TLS itself only lets in certificates chaining to these (alice's, pinned).
    let listener = Endpoint::from_url("quic://127.0.0.1:0")?
        .with_identity(server_identity.clone())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::Ca(
            alice.cert_chain().to_vec(),
        )))
        .bind()
        .await?;
    let url = listener.url();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let trust_server = ServerVerification::Ca(server_identity.cert_chain().to_vec());
    let as_alice = Endpoint::from_url(&url)?
        .with_server_verification(trust_server.clone())
        .with_identity(alice)
        .connect()
        .await?;
    let me: Value = as_alice.unary("whoami", &json!({})).await?;
    println!("alice's certificate: whoami = {me}");

    // Mallory's certificate fails the TLS handshake (or the first call, as
    // QUIC may report the refusal only then).
    let as_mallory = Endpoint::from_url(&url)?
        .with_server_verification(trust_server.clone())
        .with_identity(mallory);
    match as_mallory.connect().await {
        Err(e) => println!("mallory's certificate: refused ({e})"),
        Ok(client) => match client.unary::<_, Value>("whoami", &json!({})).await {
            Err(e) => println!("mallory's certificate: refused ({e})"),
            Ok(v) => return Err(format!("mallory got in as {v}").into()),
        },
    }
    // No certificate at all: refused the same way.
    let anonymous = Endpoint::from_url(&url)?.with_server_verification(trust_server);
    match anonymous.connect().await {
        Err(e) => println!("no certificate: refused ({e})"),
        Ok(client) => match client.unary::<_, Value>("whoami", &json!({})).await {
            Err(e) => println!("no certificate: refused ({e})"),
            Ok(v) => return Err(format!("an anonymous client got in as {v}").into()),
        },
    }

    server.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}

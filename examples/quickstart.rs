//! The README's quickstart: define a service with `#[strand::service]`, serve
//! it, call it through the generated client, then swap the carrier.
//!
//! Run: `cargo run --example quickstart`

use futures_util::{Stream, StreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strand::tls::{Identity, ServerVerification};
use strand::{Context, Endpoint, RpcError, Server};

/// Who to greet.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Hello {
    name: String,
}

/// How far to count.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Count {
    n: u32,
}

// 1. Define: a trait; the macro generates `into_router` and `GreeterClient`.
/// The service.
#[strand::service]
pub trait Greeter {
    /// One request, one response.
    async fn hello(&self, ctx: Context, req: Hello) -> Result<String, RpcError>;
    /// One request, a stream of responses.
    fn count(&self, ctx: Context, req: Count) -> impl Stream<Item = Result<u32, RpcError>>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, ctx: Context, req: Hello) -> Result<String, RpcError> {
        Ok(format!("hello {}, over {}", req.name, ctx.peer().transport))
    }

    fn count(
        &self,
        _ctx: Context,
        req: Count,
    ) -> impl Stream<Item = Result<u32, RpcError>> + Send + 'static {
        futures_util::stream::iter((0..req.n).map(Ok))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identity = Identity::dev()?; // in-memory, for the TLS carriers
                                     // 4. Swap the carrier: the URL is the only thing that changes.
    for url in ["ws://127.0.0.1:0", "quic://127.0.0.1:0"] {
        // 2. Serve.
        let server = Server::builder(MyGreeter.into_router()).build();
        let listener = Endpoint::from_url(url)?
            .with_identity(identity.clone())
            .bind()
            .await?;
        let url = listener.url();
        tokio::spawn({
            let server = server.clone();
            async move { server.serve(listener).await }
        });

        // 3. Call, through the generated typed client.
        let client = Endpoint::from_url(&url)?
            .with_server_verification(ServerVerification::Ca(identity.cert_chain().to_vec()))
            .connect()
            .await?;
        let greeter = GreeterClient::new(client);
        println!("{}", greeter.hello(&Hello { name: "you".into() }).await?);
        let numbers: Vec<u32> = greeter
            .count(&Count { n: 3 })
            .await?
            .map(|n| n.unwrap_or(u32::MAX))
            .collect()
            .await;
        println!("count over {url}: {numbers:?}");

        server.shutdown(std::time::Duration::from_secs(1)).await;
    }
    Ok(())
}

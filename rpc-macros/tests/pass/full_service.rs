//! A service with every call kind, a renamed method, a provided method and a
//! path-qualified signature compiles without warnings, and its generated
//! client futures are `Send`.
#![deny(warnings, missing_docs)]

use futures_util::stream::{self, Stream, StreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strand::{Context, Incoming, RawBody, RawReader, RpcError};

/// A request.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Req {
    /// A number.
    pub n: i64,
}

/// The service.
#[strand::service]
pub trait Calc {
    /// Unary.
    async fn add(&self, ctx: Context, req: Req) -> Result<i64, RpcError>;
    /// Server streaming (bounds added by the macro).
    fn count(&self, ctx: Context, req: Req) -> impl Stream<Item = Result<i64, RpcError>>;
    /// Client streaming.
    async fn sum(&self, ctx: Context, input: Incoming<Req>) -> Result<i64, RpcError>;
    /// Duplex.
    fn chat(
        &self,
        ctx: Context,
        input: Incoming<Req>,
    ) -> impl Stream<Item = Result<i64, RpcError>> + Send + 'static;
    /// Raw.
    async fn upper(
        &self,
        ctx: Context,
        req: Req,
        input: RawReader,
    ) -> Result<(bool, RawBody), RpcError>;
    /// Renamed, with paths instead of imports, desugared async.
    #[rpc(name = "sumStream")]
    fn sum_stream(
        &self,
        ctx: strand::Context,
        req: Req,
    ) -> impl std::future::Future<Output = std::result::Result<Vec<i64>, strand::RpcError>>;
    /// Provided.
    async fn ping(&self, _ctx: Context, req: Req) -> Result<i64, RpcError> {
        Ok(req.n)
    }
}

struct Impl;

impl Calc for Impl {
    async fn add(&self, _ctx: Context, req: Req) -> Result<i64, RpcError> {
        Ok(req.n + 1)
    }
    fn count(
        &self,
        _ctx: Context,
        req: Req,
    ) -> impl Stream<Item = Result<i64, RpcError>> + Send + 'static {
        stream::iter((0..req.n).map(Ok))
    }
    async fn sum(&self, _ctx: Context, input: Incoming<Req>) -> Result<i64, RpcError> {
        let all: Vec<_> = input.collect().await;
        Ok(all.len() as i64)
    }
    fn chat(
        &self,
        _ctx: Context,
        input: Incoming<Req>,
    ) -> impl Stream<Item = Result<i64, RpcError>> + Send + 'static {
        input.map(|r| r.map(|r| r.n))
    }
    async fn upper(
        &self,
        _ctx: Context,
        _req: Req,
        _input: RawReader,
    ) -> Result<(bool, RawBody), RpcError> {
        Ok((true, RawBody::empty()))
    }
    async fn sum_stream(&self, _ctx: Context, req: Req) -> Result<Vec<i64>, RpcError> {
        Ok(vec![req.n])
    }
}

fn assert_send<T: Send>(_: &T) {}

#[allow(dead_code)]
async fn use_client(client: CalcClient) -> Result<(), strand::ClientError> {
    let req = Req { n: 1 };
    let fut = client.add(&req);
    assert_send(&fut);
    let _: i64 = fut.await?;
    let _: strand::ResponseStream<i64> = client.count(&req).await?;
    let _: strand::ClientStreamingCall<Req, i64> = client.sum().await?;
    let _: (strand::RequestSink<Req>, strand::ResponseStream<i64>) = client.chat().await?;
    let _: strand::RawCall<bool> = client.upper(&req).await?;
    let _: Vec<i64> = client
        .with_timeout(std::time::Duration::from_secs(1))
        .with_bearer("token")
        .with_metadata("k", 1)
        .sum_stream(&req)
        .await?;
    Ok(())
}

fn main() {
    let router: strand::Router = Impl.into_router();
    assert_eq!(router.methods().len(), CalcClient::MANIFEST.len());
    let _ = use_client;
}

//! A server may answer a call without reading its request (one that is
//! shutting down answers every new call with −32001 at once), and its stop
//! can reach the client before the client has written the request. The
//! client must still read and report the answer, on every call kind that
//! writes a request before reading.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use strand_rpc_core::client::Client;
use strand_rpc_core::memory::{self, MemoryConnection};
use strand_rpc_core::message::{self, error_codes};
use strand_rpc_core::transport::{
    CloseCode, CloseReason, Connection, PeerInfo, RecvStream, Stream, StreamError,
};
use strand_rpc_core::RpcError;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

/// A client connection whose `open_stream` returns only once the server
/// has stopped the new stream and answered: the stop always overtakes the
/// request.
struct AnsweredBeforeWriting {
    inner: MemoryConnection,
    answered: Arc<Notify>,
}

#[async_trait]
impl Connection for AnsweredBeforeWriting {
    async fn open_stream(&self) -> Result<Stream, StreamError> {
        let answered = self.answered.notified();
        let stream = self.inner.open_stream().await?;
        answered.await;
        Ok(stream)
    }
    async fn accept_stream(&self) -> Result<Stream, StreamError> {
        self.inner.accept_stream().await
    }
    fn peer_info(&self) -> Arc<PeerInfo> {
        self.inner.peer_info()
    }
    fn close(&self, code: CloseCode, reason: &str) {
        self.inner.close(code, reason);
    }
    async fn closed(&self) -> CloseReason {
        self.inner.closed().await
    }
}

/// Serves one stream the way a stopping server does: stop reading, answer
/// −32001, finish.
async fn refuse_one(server: &MemoryConnection, answered: &Notify) {
    let (mut send, mut recv) = server.accept_stream().await.unwrap().split();
    recv.stop(0);
    let err = message::encode_error(&RpcError::server_stopping().to_error_object());
    send.write_all(&err).await.unwrap();
    send.shutdown().await.unwrap();
    // Let the stop arrive before the client goes on.
    tokio::time::sleep(Duration::from_millis(10)).await;
    answered.notify_one();
}

fn setup() -> (Client, MemoryConnection, Arc<Notify>) {
    let (c, s) = memory::pair();
    let answered = Arc::new(Notify::new());
    let client = Client::new(AnsweredBeforeWriting {
        inner: c,
        answered: answered.clone(),
    });
    (client, s, answered)
}

#[tokio::test(start_paused = true)]
async fn a_unary_call_gets_the_answer_of_a_server_that_did_not_read_it() {
    let (client, server, answered) = setup();
    let params = json!({"x": 1});
    let (res, ()) = tokio::join!(
        client.unary::<_, Value>("echo", &params),
        refuse_one(&server, &answered)
    );
    let err = res.unwrap_err();
    assert_eq!(err.code(), Some(error_codes::SERVER_STOPPING), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_server_streaming_call_gets_the_answer_of_a_server_that_did_not_read_it() {
    use futures_util::StreamExt;
    let (client, server, answered) = setup();
    let params = json!({"n": 3});
    let (res, ()) = tokio::join!(
        client.server_streaming::<_, Value>("count", &params),
        refuse_one(&server, &answered)
    );
    let mut items = res.expect("the call opens; the answer is on the stream");
    let err = items.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(error_codes::SERVER_STOPPING), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_raw_call_gets_the_answer_of_a_server_that_did_not_read_it() {
    let (client, server, answered) = setup();
    let params = json!({});
    let (res, ()) = tokio::join!(
        client.raw::<_, Value>("upper", &params),
        refuse_one(&server, &answered)
    );
    let err = res.err().expect("refused");
    assert_eq!(err.code(), Some(error_codes::SERVER_STOPPING), "{err:?}");
}

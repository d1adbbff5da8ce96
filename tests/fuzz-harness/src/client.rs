//! `client_response`: the client's response reader (`rpc-core/src/client/`,
//! `ResponseStream`), over a memory connection whose server side writes
//! arbitrary bytes.
//!
//! The input is the call kind (unary or server streaming), whether the fake
//! server reads the request, how it ends its side (finish, reset, connection
//! close), a message size limit, chunk lengths, then the bytes it writes
//! (the layout of `util::header`).
//! What the call yields is compared with an oracle that splits the same
//! bytes at once and decodes each message as docs/protocol.md says (a result
//! is an item; an error object, a message with neither, or bad framing ends
//! the stream with an error). After a finish the call yields exactly that;
//! after a reset or a close it yields a prefix of it and then a transport
//! error ("unanswered" if nothing came before). The call must end: a hang
//! fails the input.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::Map;
use serde_json::Value;
use strand_rpc_core::codec::JsonSplitter;
use strand_rpc_core::message::IncomingMessage;
use strand_rpc_core::transport::{CloseCode, Connection, SendStream};
use strand_rpc_core::{memory, Client, ClientConfig, ClientError};
use tokio::io::AsyncWriteExt;

use crate::util::{cut, header, reply_metadata};

/// Reply metadata, as the client exposes it.
type Metadata = Option<Map<String, Value>>;

/// What one item of a call is, for comparison.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Ok(Value),
    /// An error response: its code, and the reply metadata the error
    /// carries (only the first response's).
    Remote(i64, Metadata),
    Protocol,
    Serde,
    Transport,
    Unanswered,
    Other(String),
}

fn item(r: Result<Value, ClientError>) -> Item {
    match r {
        Ok(v) => Item::Ok(v),
        Err(ClientError::Remote { code, metadata, .. }) => Item::Remote(code, metadata),
        Err(ClientError::Protocol(_)) => Item::Protocol,
        Err(ClientError::Serde(_)) => Item::Serde,
        // A closed connection during a unary call is reported as lost (and
        // whether the call was sent); for the oracle it is the transport's.
        Err(ClientError::Transport(_) | ClientError::ConnectionLost { .. }) => Item::Transport,
        Err(ClientError::Unanswered(_)) => Item::Unanswered,
        Err(e) => Item::Other(e.to_string()),
    }
}

/// The items the response bytes stand for, read all at once, and the reply
/// metadata of the first response (if one parsed).
fn oracle(bytes: &[u8], max: usize) -> (Vec<Item>, Metadata) {
    let mut splitter = JsonSplitter::new(max);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    let mut metadata = None;
    loop {
        let msg = match splitter.split(&mut buf) {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(_) => {
                out.push(Item::Protocol);
                return (out, metadata);
            }
        };
        let parsed = IncomingMessage::parse(&msg);
        let first_metadata = match (&parsed, out.is_empty()) {
            (Ok(m), true) => reply_metadata(m),
            _ => None,
        };
        if out.is_empty() {
            metadata.clone_from(&first_metadata);
        }
        let next = match parsed {
            Err(_) => Item::Protocol,
            Ok(m) => match (m.error, m.result) {
                (Some(e), _) => Item::Remote(e.code, first_metadata),
                (None, None) => Item::Protocol,
                (None, Some(raw)) => match serde_json::from_str(raw.get()) {
                    Ok(v) => Item::Ok(v),
                    Err(_) => Item::Serde,
                },
            },
        };
        let last = !matches!(next, Item::Ok(_));
        out.push(next);
        if last {
            return (out, metadata);
        }
    }
    if splitter.in_value() || !buf.is_empty() {
        out.push(Item::Protocol);
    }
    (out, metadata)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Finish,
    Reset(u64),
    Close,
}

/// Runs one input.
pub fn client_response(data: &[u8]) {
    let Some((limit, flags, cuts, bytes)) = header(data) else {
        return;
    };
    let unary = flags & 1 == 1;
    let read_request = flags & 2 == 2;
    let end = match (flags >> 2) % 4 {
        0 | 1 => End::Finish,
        2 => End::Reset(u64::from(flags >> 4)),
        _ => End::Close,
    };
    let max = 1 + usize::from(limit % 4096);
    let chunks: Vec<_> = cut(bytes, cuts).into_iter().flatten().collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let (got, got_metadata): (Vec<Item>, Metadata) = runtime.block_on(async {
        let (client_side, server_side) = memory::pair();
        let server = async move {
            let stream = server_side
                .accept_stream()
                .await
                .expect("the call's stream");
            let (mut send, mut recv) = stream.split();
            if read_request {
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut recv, &mut sink).await;
            } else {
                drop(recv);
            }
            for chunk in chunks {
                if send.write_all(&chunk).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            match end {
                End::Finish => {
                    let _ = send.shutdown().await;
                }
                End::Reset(code) => send.reset(code),
                End::Close => server_side.close(CloseCode::Normal, "fuzz server closed"),
            }
            // Keep the connection and the sending half (dropping it would
            // reset the stream) until the call is over.
            (server_side, send)
        };
        let client = Client::from_shared(
            Arc::new(client_side),
            ClientConfig::default().max_message_size(max),
        );
        let call = async {
            if unary {
                match client
                    .call("m")
                    .unary_with_metadata::<_, Value>(&Value::Null)
                    .await
                {
                    Ok((value, metadata)) => (vec![Item::Ok(value)], metadata),
                    Err(e) => {
                        let metadata = e.reply_metadata().cloned();
                        (vec![item(Err(e))], metadata)
                    }
                }
            } else {
                match client.server_streaming::<_, Value>("m", &Value::Null).await {
                    Ok(mut stream) => {
                        let mut items = Vec::new();
                        while let Some(next) = stream.next().await {
                            items.push(item(next));
                        }
                        (items, stream.metadata().cloned())
                    }
                    Err(e) => (vec![item(Err(e))], None),
                }
            }
        };
        let call = tokio::time::timeout(Duration::from_secs(10), call);
        let (_server, got) = tokio::join!(server, call);
        got.expect("the call hung")
    });

    let (expected, metadata) = oracle(bytes, max);
    // The reply metadata is the first response's, once the call yielded
    // it: from a unary call's value or error response (other failures carry
    // none), and from a streaming call's stream; none if the call was cut
    // short before it.
    let first_read = !got.is_empty() && got.first() == expected.first();
    let carried = !unary || matches!(got.first(), Some(Item::Ok(_) | Item::Remote(..)));
    let want = if first_read && carried {
        metadata
    } else {
        None
    };
    assert_eq!(
        got_metadata, want,
        "reply metadata; items {got:?} ({end:?})"
    );
    if unary {
        let got = &got[0];
        let fine = match (expected.first(), end) {
            (Some(first), End::Finish) => got == first,
            (None, End::Finish) => matches!(got, Item::Protocol | Item::Transport),
            (first, _) => first == Some(got) || matches!(got, Item::Unanswered | Item::Transport),
        };
        assert!(
            fine,
            "unary call: {got:?}, expected {:?} ({end:?})",
            expected.first()
        );
        return;
    }
    if end == End::Finish || got == expected {
        assert_eq!(got, expected, "server streaming, ended by {end:?}");
        return;
    }
    // Cut short by a reset or a close: a prefix, then the transport error
    // (a reset before any response is "unanswered").
    let (last, before) = got.split_last().expect("a call cut short fails");
    assert!(
        expected.starts_with(before),
        "got {got:?}, expected a prefix of {expected:?}"
    );
    let want = match end {
        End::Reset(_) if before.is_empty() => Item::Unanswered,
        _ => Item::Transport,
    };
    assert_eq!(*last, want, "got {got:?}, expected {expected:?} ({end:?})");
}

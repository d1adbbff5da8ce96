//! The in-memory transport's own tests: streams, limits, closes.

use super::*;
use crate::transport::stopped;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn echo_and_finish() {
    let (a, b) = pair();
    let mut s = a.open_stream().await.unwrap();
    s.send.write_all(b"ping").await.unwrap();
    s.send.shutdown().await.unwrap();
    let mut t = b.accept_stream().await.unwrap();
    let mut buf = Vec::new();
    t.recv.read_to_end(&mut buf).await.unwrap();
    assert_eq!(buf, b"ping");
}

#[tokio::test(start_paused = true)]
async fn writer_waits_at_buffer_limit() {
    let (a, b) = pair_with(MemoryConfig {
        stream_buffer: 8,
        stream_backlog: 4,
    });
    let mut s = a.open_stream().await.unwrap();
    let mut t = b.accept_stream().await.unwrap();
    assert_eq!(s.send.write(&[0u8; 20]).await.unwrap(), 8);
    let blocked = tokio::time::timeout(
        std::time::Duration::from_millis(10),
        s.send.write(&[0u8; 1]),
    );
    assert!(
        blocked.await.is_err(),
        "a full pipe must make the writer wait"
    );
    let mut buf = [0u8; 8];
    t.recv.read_exact(&mut buf).await.unwrap();
    assert_eq!(s.send.write(&[1u8; 4]).await.unwrap(), 4);
}

#[tokio::test]
async fn reset_stop_and_drop() {
    let (a, b) = pair();
    let mut s = a.open_stream().await.unwrap();
    let mut t = b.accept_stream().await.unwrap();
    s.send.reset(7);
    let err = t.recv.read(&mut [0u8; 4]).await.unwrap_err();
    assert_eq!(StreamError::from_io(&err), Some(&StreamError::Reset(7)));

    let mut s = a.open_stream().await.unwrap();
    let mut t = b.accept_stream().await.unwrap();
    t.recv.stop(9);
    assert_eq!(stopped(&mut s.send).await, 9);
    let err = s.send.write(b"x").await.unwrap_err();
    assert_eq!(StreamError::from_io(&err), Some(&StreamError::Stopped(9)));
}

#[tokio::test]
async fn dropping_halves_resets_and_stops() {
    let (a, b) = pair();
    let s = a.open_stream().await.unwrap();
    let mut t = b.accept_stream().await.unwrap();
    let (send, recv) = s.split();
    drop(send);
    let err = t.recv.read(&mut [0u8; 4]).await.unwrap_err();
    assert_eq!(
        StreamError::from_io(&err),
        Some(&StreamError::Reset(codes::CANCELLED))
    );
    drop(recv);
    assert_eq!(stopped(&mut t.send).await, codes::CANCELLED);
    let err = t.send.write(b"x").await.unwrap_err();
    assert_eq!(
        StreamError::from_io(&err),
        Some(&StreamError::Stopped(codes::CANCELLED))
    );
}

#[tokio::test]
async fn close_fails_every_stream_with_the_reason() {
    let (a, b) = pair();
    let mut s = a.open_stream().await.unwrap();
    let mut t = b.accept_stream().await.unwrap();
    a.close(CloseCode::Normal, "bye");
    let err = t.recv.read(&mut [0u8; 4]).await.unwrap_err();
    match StreamError::from_io(&err) {
        Some(StreamError::ConnectionClosed(r)) => {
            assert_eq!((r.code, r.reason.as_str()), (CloseCode::Normal, "bye"));
            assert_eq!(r.initiator, crate::transport::CloseInitiator::Peer);
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = s.send.write(b"x").await.unwrap_err();
    assert!(matches!(
        StreamError::from_io(&err),
        Some(StreamError::ConnectionClosed(_))
    ));
    assert!(b.accept_stream().await.is_err());
    assert_eq!(b.closed().await.reason, "bye");
}

//! `ws_upgrade`: the server's reading of the HTTP upgrade request and the
//! `x-strand-window` header (`transport-ws/src/handshake.rs`).
//!
//! The input is a head size limit, a path on or off, chunk lengths, then the
//! bytes the client sends (the layout of `util::header`). Checked: only the statuses docs/protocol.md lists
//! (400, 404, 405, 426, 431) are answered; the head read never passes the
//! limit; an accepted request really is a version-13 WebSocket upgrade with
//! a key, on the configured path, and the bytes after its head are handed
//! on untouched; the window read from the headers is a decimal `u32` above
//! zero.

use http::{HeaderMap, HeaderValue, StatusCode};
use strand_transport_ws::__fuzz::{parse_window, read_request_head, RequestHead};
use strand_transport_ws::{WsError, WsServerConfig, WINDOW_HEADER};

use crate::util::{block_on, cut, header, Chunks};

fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn check_window(headers: &HeaderMap) {
    if let Some(w) = parse_window(headers) {
        assert!(w > 0);
        let text = headers[WINDOW_HEADER]
            .to_str()
            .expect("a window header is text");
        assert_eq!(text.trim().parse::<u32>().ok(), Some(w));
    }
}

/// Runs one input.
pub fn ws_upgrade(data: &[u8]) {
    let Some((limit, flags, cuts, request)) = header(data) else {
        return;
    };
    let with_path = flags & 1 == 1;

    // The window header alone, on whatever bytes.
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(request) {
        headers.insert(WINDOW_HEADER, value);
        check_window(&headers);
    }

    let mut config = WsServerConfig::default();
    config.max_request_head = 1 + usize::from(limit % 2048);
    if with_path {
        config.path = Some("/rpc".into());
    }
    let mut io = Chunks::new(cut(request, cuts));
    let result = block_on(read_request_head(&mut io, &config));
    let left: usize = io.0.iter().flatten().map(|b| b.len()).sum();
    let read = &request[..request.len() - left];
    assert!(
        read.len() <= config.max_request_head,
        "read {} bytes of head, limit {}",
        read.len(),
        config.max_request_head
    );
    match result {
        Err(WsError::Handshake(_)) => assert_eq!(left, 0, "gave up before the end"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(RequestHead::Reject(status)) => assert!(
            [
                StatusCode::BAD_REQUEST,
                StatusCode::NOT_FOUND,
                StatusCode::METHOD_NOT_ALLOWED,
                StatusCode::UPGRADE_REQUIRED,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ]
            .contains(&status),
            "answered {status}"
        ),
        Ok(RequestHead::Plain(status)) => {
            panic!("answered {status} from an HTTP handler that is not configured")
        }
        Ok(RequestHead::Upgrade {
            request: upgrade,
            key,
            leftover,
        }) => {
            let headers = &upgrade.headers;
            assert!(has_token(headers, "upgrade", "websocket"), "{headers:?}");
            assert!(has_token(headers, "connection", "upgrade"), "{headers:?}");
            assert_eq!(
                headers.get("sec-websocket-version").map(|v| v.as_bytes()),
                Some(&b"13"[..])
            );
            assert_eq!(
                headers.get("sec-websocket-key").map(|v| v.as_bytes()),
                Some(key.as_bytes())
            );
            if let Some(path) = &config.path {
                assert_eq!(upgrade.uri.path(), path);
            }
            assert!(
                read.ends_with(&leftover),
                "leftover is not what followed the head"
            );
            let head = &read[..read.len() - leftover.len()];
            let line = head.iter().position(|b| !b"\r\n".contains(b)).unwrap_or(0);
            assert!(
                head[line..].starts_with(b"GET "),
                "{:?}",
                String::from_utf8_lossy(head)
            );
            assert!(head.ends_with(b"\n"), "{:?}", String::from_utf8_lossy(head));
            check_window(headers);
        }
    }
}

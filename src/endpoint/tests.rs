//! Endpoint parsing, configuration and the errors a user sees.

use super::*;
use crate::config::{ClientAuthMode, VerifyMode};
use std::time::Duration;
use strand_transport_quic::QuicConfig;

#[test]
fn parses_ws_wss_and_quic_urls() {
    let e = Endpoint::from_url("ws://127.0.0.1:8080/rpc").unwrap();
    assert_eq!(
        (e.scheme(), e.host(), e.port(), e.path()),
        (Scheme::Ws, "127.0.0.1", 8080, "/rpc")
    );
    assert_eq!(e.url(), "ws://127.0.0.1:8080/rpc");

    let e = Endpoint::from_url("wss://example.com").unwrap();
    assert_eq!(
        (e.scheme(), e.host(), e.port(), e.path()),
        (Scheme::Wss, "example.com", 443, "/")
    );
    assert_eq!(e.url(), "wss://example.com:443");

    let e = Endpoint::from_url("ws://localhost").unwrap();
    assert_eq!(e.port(), 80);

    let e = Endpoint::from_url("quic://[::1]:4433").unwrap();
    assert_eq!(
        (e.scheme(), e.host(), e.port()),
        (Scheme::Quic, "::1", 4433)
    );
    assert_eq!(e.url(), "quic://[::1]:4433");
    assert!(e.scheme().is_tls());
}

fn invalid(url: &str) -> String {
    match Endpoint::from_url(url) {
        Err(Error::InvalidUrl { reason, .. }) => reason,
        other => panic!("{url}: expected an invalid url error, got {other:?}"),
    }
}

#[test]
fn rejects_bad_urls() {
    assert!(invalid("http://127.0.0.1:80").contains("unknown scheme"));
    assert!(invalid("tcp://127.0.0.1:80").contains("unknown scheme"));
    assert!(invalid("127.0.0.1:80").contains("scheme"));
    assert!(invalid("quic://127.0.0.1").contains("missing port"));
    assert!(invalid("quic://127.0.0.1:").contains("port"));
    assert!(invalid("quic://127.0.0.1:4433/path").contains("no path"));
    assert!(invalid("ws://127.0.0.1:99999").contains("port"));
    assert!(invalid("ws://user@host:80").contains("user info"));
    invalid("");
    invalid("ws://");
}

#[test]
fn toml_config_with_defaults() {
    let e = Endpoint::from_toml(r#"url = "quic://127.0.0.1:4433""#).unwrap();
    let c = e.config();
    assert_eq!(c.tls, crate::TlsConfig::default());
    assert_eq!(c.tls.verify, VerifyMode::Auto);
    assert_eq!(c.tls.client_auth, ClientAuthMode::None);
    assert!(!c.tls.self_signed);
    assert_eq!(c.limits, crate::LimitsConfig::default());
    assert_eq!(c.timeouts, crate::TimeoutsConfig::default());
    // Defaults left to the transports.
    let t = e.quic_transport();
    let d = QuicConfig::default();
    assert_eq!(t.stream_window, d.stream_window);
    assert_eq!(t.idle_timeout, d.idle_timeout);
    assert!(e.client_config().timeout.is_none());
    assert!(e.client_config().metadata.is_empty());
}

#[test]
fn toml_config_full() {
    let e = Endpoint::from_toml(
        r#"
        url = "wss://127.0.0.1:9000/rpc"
        [tls]
        cert = "server.pem"
        key = "server.key"
        ca = "ca.pem"
        verify = "insecure"
        server_name = "localhost"
        client_auth = "required"
        alpn = ["quic", "h3"]
        [limits]
        stream_window = 65536
        max_streams = 16
        stream_backlog = 8
        max_connections = 10
        max_pending_handshakes = 5
        connection_send_buffer = 2097152
        max_message_size = 4096
        [timeouts]
        handshake_ms = 2000
        idle_ms = 0
        keep_alive_ms = 1000
        send_ms = 0
        call_ms = 3000
        [auth]
        token = "t0k"
        headers = { authorization = "Bearer up" }
        "#,
    )
    .unwrap();
    let c = e.config();
    assert_eq!(c.tls.verify, VerifyMode::Insecure);
    assert_eq!(c.tls.client_auth, ClientAuthMode::Required);
    assert_eq!(
        c.tls.alpn.as_deref(),
        Some(&["quic".to_string(), "h3".to_string()][..])
    );
    let ws = e.ws_config();
    assert_eq!(ws.stream_window, 65536);
    assert_eq!(ws.max_streams, 16);
    assert_eq!(ws.stream_backlog, 8);
    assert_eq!(ws.connection_send_buffer, 2 * 1024 * 1024);
    assert_eq!(ws.send_timeout, None, "0 disables the send timeout");
    assert_eq!(c.limits.max_pending_handshakes, Some(5));
    // The former name of `stream_backlog` still reads.
    let old = Endpoint::from_toml("url = \"ws://h:1\"\n[limits]\naccept_backlog = 3").unwrap();
    assert_eq!(old.ws_config().stream_backlog, 3);
    assert_eq!(ws.handshake_timeout, std::time::Duration::from_secs(2));
    assert_eq!(ws.idle_timeout, None, "0 disables the idle timeout");
    assert_eq!(
        ws.keep_alive_interval,
        Some(std::time::Duration::from_secs(1))
    );
    let q = e.quic_transport();
    assert_eq!(q.stream_window, 65536);
    assert_eq!(q.max_streams, 16);
    let client = e.client_config();
    assert_eq!(client.timeout, Some(std::time::Duration::from_secs(3)));
    assert_eq!(client.max_message_size, 4096);
    assert_eq!(client.metadata["authorization"], "Bearer t0k");
    assert_eq!(c.auth.headers["authorization"], "Bearer up");
}

#[test]
fn server_limits_on_the_first_message_come_from_toml() {
    let e = Endpoint::from_toml(
        "url = \"ws://h:1\"\n[limits]\nmax_first_message_size = 4096\n[timeouts]\nfirst_message_ms = 1500\n",
    )
    .unwrap();
    let server = e.server_config();
    assert_eq!(server.max_first_message_size, 4096);
    assert_eq!(
        server.first_message_timeout,
        std::time::Duration::from_millis(1500)
    );
    // Left out: the server's defaults, 64 KiB and 10 s.
    let plain = Endpoint::from_url("ws://h:1").unwrap().server_config();
    assert_eq!(plain.max_first_message_size, 64 << 10);
    assert_eq!(
        plain.first_message_timeout,
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn the_empty_data_budget_is_also_read_under_its_old_name() {
    for key in ["empty_data", "tiny_data"] {
        let e = Endpoint::from_toml(&format!(
            "url = \"ws://h:1\"\n[limits.floods]\n{key} = {{ burst = 7, per_second = 2 }}\n"
        ))
        .unwrap();
        assert_eq!(
            e.ws_config().floods.empty_data,
            strand_transport_ws::Budget::new(7, 2),
            "{key}"
        );
    }
}

#[test]
fn the_receive_budget_and_flood_budgets_come_from_toml() {
    let e = Endpoint::from_toml(
        r#"
        url = "ws://h:1"
        [limits]
        connection_receive_buffer = 8388608
        max_queued_control = 100
        [limits.floods]
        resets = { burst = 20, per_second = 5 }
        pings = { burst = 3, per_second = 1 }
        "#,
    )
    .unwrap();
    let ws = e.ws_config();
    assert_eq!(ws.connection_receive_buffer, 8 << 20);
    assert_eq!(ws.max_queued_control, 100);
    assert_eq!(ws.initial_stream_window(), 16 << 10, "8 MiB / 256 / 2");
    assert_eq!(ws.floods.resets, strand_transport_ws::Budget::new(20, 5));
    assert_eq!(ws.floods.pings, strand_transport_ws::Budget::new(3, 1));
    let defaults = strand_transport_ws::FloodLimits::default();
    assert_eq!(ws.floods.empty_data, defaults.empty_data);
    assert_eq!(ws.floods.idle_control, defaults.idle_control);
    assert_eq!(e.quic_transport().receive_window, 8 << 20);
    // `resets` is the same budget on QUIC.
    assert_eq!(
        e.quic_transport().floods.resets,
        strand_transport_quic::Budget::new(20, 5)
    );
    // Left out: the carriers' defaults.
    let plain = Endpoint::from_url("ws://h:1").unwrap();
    assert_eq!(plain.ws_config().connection_receive_buffer, 32 << 20);
    assert_eq!(plain.ws_config().max_queued_control, 4096);
    assert_eq!(plain.quic_transport().receive_window, 8 << 20);
    assert_eq!(
        plain.quic_transport().floods,
        strand_transport_quic::QuicFloodLimits::default()
    );
    let err = Endpoint::from_toml("url = \"ws://h:1\"\n[limits.floods]\npings = { burst = 1 }\n")
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn toml_config_errors() {
    // Unknown keys are refused (a typo must not be silently ignored).
    let err = Endpoint::from_toml("url = \"ws://h:1\"\n[limits]\nstream_windw = 1").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    // The url is required.
    assert!(matches!(
        Endpoint::from_toml("[tls]\n").unwrap_err(),
        Error::Config(_)
    ));
    let err = Endpoint::from_toml("url = \"ftp://h:1\"").unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
    let err = Endpoint::from_toml("url = \"ws://h:1\"\n[tls]\nverify = \"maybe\"").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn tls_servers_need_a_certificate() {
    let err = Endpoint::from_url("quic://127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a certificate"), "{err}");
    let mut e = Endpoint::from_url("wss://127.0.0.1:0").unwrap();
    e.config_mut().tls.cert = Some("cert.pem".into());
    let err = e.bind().await.unwrap_err();
    assert!(err.to_string().contains("together"), "{err}");
    let mut e = Endpoint::from_url("wss://127.0.0.1:0").unwrap();
    e.config_mut().tls.self_signed = true;
    let listener = e.bind().await.unwrap();
    assert!(listener.url().starts_with("wss://127.0.0.1:"));
    assert_ne!(listener.local_addr().port(), 0);
}

#[tokio::test]
async fn missing_ca_file_is_a_clear_error() {
    let mut e = Endpoint::from_url("quic://127.0.0.1:9").unwrap();
    e.config_mut().tls.ca = Some("/nonexistent/ca.pem".into());
    let err = e.connect().await.err().expect("connect must fail");
    assert!(matches!(err, Error::Tls(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn a_timeout_past_the_limit_is_a_config_error() {
    for key in [
        "call_ms",
        "handshake_ms",
        "idle_ms",
        "keep_alive_ms",
        "send_ms",
        "first_message_ms",
    ] {
        let text =
            format!("url = \"ws://127.0.0.1:1\"\n[timeouts]\n{key} = 18446744073709551615\n");
        match Endpoint::from_toml(&text) {
            Err(Error::Config(msg)) => {
                assert!(msg.contains(key) && msg.contains("at most"), "{msg}")
            }
            other => panic!("{key}: expected a config error, got {other:?}"),
        }
    }
    // The limit itself is accepted.
    let text = "url = \"ws://127.0.0.1:1\"\n[timeouts]\ncall_ms = 1000000000000\n";
    assert!(Endpoint::from_toml(text).is_ok());
}

#[tokio::test]
async fn a_timeout_changed_in_code_past_the_limit_fails_to_connect() {
    let mut e = Endpoint::from_url("ws://127.0.0.1:1").unwrap();
    e.config_mut().timeouts.call_ms = Some(u64::MAX);
    match e.connect().await {
        Err(Error::Config(msg)) => assert!(msg.contains("call_ms"), "{msg}"),
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("connected with a timeout past the limit"),
    }
}

#[test]
fn client_auth_without_a_ca_is_refused() {
    for mode in [ClientAuthMode::Optional, ClientAuthMode::Required] {
        let mut e = Endpoint::from_url("quic://127.0.0.1:0").unwrap();
        e.config_mut().tls.self_signed = true;
        e.config_mut().tls.client_auth = mode;
        match e.server_tls() {
            Err(Error::Config(msg)) => assert!(
                msg.contains("tls.ca") && msg.contains("client_ca = \"any\""),
                "{msg}"
            ),
            Err(other) => panic!("{mode:?}: expected a config error, got {other}"),
            Ok(_) => panic!("{mode:?}: any client certificate was accepted without a CA"),
        }
    }
}

#[test]
fn any_client_certificate_must_be_chosen_explicitly() {
    let text = r#"
        url = "quic://127.0.0.1:0"
        [tls]
        self_signed = true
        client_auth = "required"
        client_ca = "any"
    "#;
    let e = Endpoint::from_toml(text).unwrap();
    assert_eq!(e.config().tls.client_ca, crate::config::ClientCaMode::Any);
    let tls = e.server_tls().unwrap();
    assert!(matches!(
        tls.client_auth,
        ClientAuth::Required(strand_tls::ClientCertVerification::AnyCertificate)
    ));
}

#[test]
fn handshake_bounds_per_source_and_the_retry_threshold_come_from_toml() {
    let ws = Endpoint::from_toml(
        "url = \"ws://127.0.0.1:0\"\n[limits]\nmax_pending_handshakes_per_ip = 3\n",
    )
    .unwrap();
    assert_eq!(
        ws.ws_server_config().unwrap().max_pending_handshakes_per_ip,
        3
    );
    let defaults = Endpoint::from_url("ws://127.0.0.1:0").unwrap();
    assert_eq!(
        defaults
            .ws_server_config()
            .unwrap()
            .max_pending_handshakes_per_ip,
        strand_transport_ws::WsServerConfig::default().max_pending_handshakes_per_ip
    );
    let quic = Endpoint::from_toml(
        "url = \"quic://127.0.0.1:0\"\n[tls]\nself_signed = true\n[limits]\nretry_threshold = 0\n",
    )
    .unwrap();
    assert_eq!(quic.quic_server_config().unwrap().retry_threshold, 0);
    let mut defaults = Endpoint::from_url("quic://127.0.0.1:0").unwrap();
    defaults.config_mut().tls.self_signed = true;
    assert_eq!(defaults.quic_server_config().unwrap().retry_threshold, 64);
}

#[test]
fn toml_reconnect_section() {
    // Absent: no reconnecting.
    let e = Endpoint::from_toml(r#"url = "ws://h:1""#).unwrap();
    assert!(e.config().reconnect.is_none());
    // Present and empty: gRPC's defaults.
    let e = Endpoint::from_toml("url = \"ws://h:1\"\n[reconnect]\n").unwrap();
    let r = e.config().reconnect.as_ref().unwrap().to_client();
    assert_eq!(r, strand_rpc_core::ReconnectConfig::default());
    assert_eq!(r.initial_backoff, Duration::from_secs(1));
    assert_eq!(r.multiplier, 1.6);
    assert_eq!(r.max_backoff, Duration::from_secs(120));
    assert_eq!(r.jitter, 0.2);
    assert_eq!(r.max_attempts, None);
    assert_eq!(r.max_call_retries, 3);
    // Every field.
    let e = Endpoint::from_toml(
        "url = \"ws://h:1\"\n[reconnect]\ninitial_backoff_ms = 50\nmultiplier = 2.0\n\
         max_backoff_ms = 5000\njitter = 0.1\nmax_attempts = 7\nmax_call_retries = 1\n",
    )
    .unwrap();
    let r = e.config().reconnect.as_ref().unwrap().to_client();
    assert_eq!(r.initial_backoff, Duration::from_millis(50));
    assert_eq!(r.multiplier, 2.0);
    assert_eq!(r.max_backoff, Duration::from_secs(5));
    assert_eq!(r.jitter, 0.1);
    assert_eq!(r.max_attempts, Some(7));
    assert_eq!(r.max_call_retries, 1);
    // Out of range, and typos, are refused in words.
    for (bad, says) in [
        ("multiplier = 0.5", "reconnect.multiplier"),
        ("jitter = 1.5", "reconnect.jitter"),
        (
            "max_backoff_ms = 1000000000000000",
            "reconnect.max_backoff_ms",
        ),
        ("max_attempt = 3", "max_attempt"),
    ] {
        let err =
            Endpoint::from_toml(&format!("url = \"ws://h:1\"\n[reconnect]\n{bad}\n")).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn toml_quic_datagram_buffer() {
    let e = Endpoint::from_toml(r#"url = "quic://127.0.0.1:4433""#).unwrap();
    assert_eq!(e.quic_transport().datagram_receive_buffer, 1024);
    let e = Endpoint::from_toml(
        "url = \"quic://127.0.0.1:4433\"\n[limits]\nquic_datagram_buffer = 0\n",
    )
    .unwrap();
    assert_eq!(e.quic_transport().datagram_receive_buffer, 0);
}

#[test]
fn toml_strand_alpn() {
    let e = Endpoint::from_toml(r#"url = "quic://127.0.0.1:4433""#).unwrap();
    assert!(e.quic_transport().strand_alpn, "on by default");
    let e = Endpoint::from_toml(
        "url = \"quic://127.0.0.1:4433\"\n[tls]\nstrand_alpn = false\nalpn = [\"h3\"]\n",
    )
    .unwrap();
    assert!(!e.quic_transport().strand_alpn);
    let e = Endpoint::from_toml(
        "url = \"quic://127.0.0.1:4433\"\n[tls]\nstrand_alpn = true\nalpn = [\"h3\"]\n",
    )
    .unwrap();
    let t = e.quic_transport();
    assert_eq!(
        t.offered_alpn(&[b"h3".to_vec()]),
        vec![strand_transport_quic::STRAND_ALPN.to_vec(), b"h3".to_vec()]
    );
}

#[test]
fn http2_comes_from_the_url_and_the_http2_section() {
    let e = Endpoint::from_url("wss+h2://localhost:8443/rpc").unwrap();
    assert_eq!(
        (e.scheme(), e.host(), e.port(), e.path()),
        (Scheme::Wss, "localhost", 8443, "/rpc")
    );
    // The carrier's URL: HTTP/2 is how the client reaches it.
    assert_eq!(e.url(), "wss://localhost:8443/rpc");
    assert!(invalid("ws+h2://localhost:80").contains("unknown scheme"));

    let mut e = Endpoint::from_toml(
        r#"
        url = "wss://127.0.0.1:0"
        [http2]
        max_concurrent_streams = 4
        max_header_list_size = 8192
        initial_stream_window = 65535
        initial_connection_window = 131070
        max_send_buffer = 32768
        "#,
    )
    .unwrap();
    e.config_mut().tls.self_signed = true;
    let h2 = e
        .ws_server_config()
        .unwrap()
        .http2
        .expect("offered by default");
    assert_eq!(
        (
            h2.max_concurrent_streams,
            h2.max_header_list_size,
            h2.initial_stream_window,
            h2.initial_connection_window,
            h2.max_send_buffer
        ),
        (4, 8192, 65535, 131070, 32768)
    );
    e.config_mut().http2.enabled = Some(false);
    assert!(e.ws_server_config().unwrap().http2.is_none());
    let err = Endpoint::from_toml("url = \"wss://h:1\"\n[http2]\nwindow = 1").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[tokio::test]
async fn a_wss_h2_client_calls_over_http2_and_a_wss_one_over_http1() {
    use std::sync::{Arc, Mutex};
    let identity = strand_tls::Identity::dev().unwrap();
    // An HTTP/1.1 upgrade carries sec-websocket-key, an extended CONNECT not.
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    let hook = UpgradeHook::new(move |ctx: strand_transport_ws::UpgradeContext| {
        let has_key = ctx.request.headers.contains_key("sec-websocket-key");
        seen.lock().unwrap().push(has_key);
        async { Ok(()) }
    });
    let server = crate::demo::server(None);
    let endpoint = Endpoint::from_url("wss://127.0.0.1:0")
        .unwrap()
        .with_identity(identity.clone())
        .with_upgrade_hook(hook);
    let serving = crate::Serving::start(&server, &[endpoint]).await.unwrap();
    let url = serving.urls()[0].clone();
    for url in [url.replace("wss://", "wss+h2://"), url] {
        let client = Endpoint::from_url(&url)
            .unwrap()
            .with_server_verification(ServerVerification::Ca(identity.cert_chain().to_vec()))
            .connect()
            .await
            .unwrap();
        let out: serde_json::Value = client
            .unary("echo", &serde_json::json!({ "over": url }))
            .await
            .unwrap();
        assert_eq!(out["over"], url.as_str());
    }
    assert_eq!(*keys.lock().unwrap(), [false, true]);
}

#[test]
fn connects_of_one_endpoint_reuse_their_tls_config_while_the_files_stay_the_same() {
    let ca = std::env::temp_dir().join(format!("strand-endpoint-ca-{}.pem", std::process::id()));
    let identity = Identity::dev().unwrap();
    std::fs::write(&ca, identity.cert_pem()).unwrap();
    let mut config = EndpointConfig::new("wss://localhost:4433");
    config.tls.ca = Some(ca.clone());
    let endpoint = Endpoint::from_config(config).unwrap();
    // Read from the files at each connect, built once: sessions resume.
    let first = endpoint.client_tls().unwrap().build().unwrap();
    let second = endpoint.clone().client_tls().unwrap().build().unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    // A CA file replaced between connects is seen at the next one.
    let other = Identity::self_signed(&["elsewhere"]).unwrap();
    std::fs::write(&ca, other.cert_pem()).unwrap();
    let third = endpoint.client_tls().unwrap().build().unwrap();
    let _ = std::fs::remove_file(&ca);
    assert!(!Arc::ptr_eq(&first, &third));
}

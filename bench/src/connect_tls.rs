//! `connect_tls`: new connections per second with TLS. strand wss against
//! raw tokio-tungstenite over tokio-rustls, strand quic against raw quinn.
//!
//! A few connectors run at once, each connecting, waiting for the handshake
//! to complete (TLS, and the upgrade over wss) and dropping the connection;
//! the server drops each connection as soon as it accepted it. The raw peers
//! use the same rustls configurations as strand (strand_tls builds them), so
//! the difference is strand's own connection set-up.

use std::sync::Arc;

use serde_json::Value;
use strand_rpc_core::transport::Listener;
use strand_tls::{ClientTls, Identity, ServerTls, ServerVerification};
use strand_transport_quic::{QuicClient, QuicClientConfig, QuicListener, QuicServerConfig};
use strand_transport_ws::{connect, WsClientConfig, WsListener, WsServerConfig};
use tokio::net::{TcpListener, TcpStream};

use crate::util::{self, Opts, Res};

/// Connections being set up at once.
const CONNECTORS: usize = 4;

/// Runs the case for `system`.
pub async fn run(system: &str, opts: Opts) -> Res<Value> {
    let identity = Identity::dev()?;
    let verification = ServerVerification::Ca(identity.cert_chain().to_vec());
    let mut report = match system {
        "strand-ws" => {
            // All connectors share one source address: the per-address
            // handshake bound (default 8, a slowloris guard) is raised so it
            // never refuses the benchmark's own connections.
            let config = WsServerConfig::default()
                .with_tls(ServerTls::new(identity))
                .with_max_pending_handshakes_per_ip(1024);
            let listener = WsListener::bind("127.0.0.1:0", config).await?;
            let url = format!("wss://{}/", listener.local_addr());
            tokio::spawn(async move {
                while let Ok(conn) = Listener::accept(&listener).await {
                    drop(conn);
                }
            });
            let client = WsClientConfig::default().with_tls(ClientTls::new(verification));
            util::unary_load(opts, CONNECTORS, move || {
                let (url, client) = (url.clone(), client.clone());
                async move {
                    drop(connect(&url, client).await?);
                    Ok(())
                }
            })
            .await?
        }
        "tungstenite" => {
            let server_tls = tokio_rustls::TlsAcceptor::from(ServerTls::new(identity).build()?);
            let client_tls =
                tokio_rustls::TlsConnector::from(ClientTls::new(verification).build()?);
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = server_tls.clone();
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = tokio_tungstenite::accept_async(tls).await;
                        }
                    });
                }
            });
            util::unary_load(opts, CONNECTORS, move || {
                let connector = client_tls.clone();
                async move {
                    let tcp = TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
                    let tls = connector.connect(name, tcp).await?;
                    let (ws, _) =
                        tokio_tungstenite::client_async(format!("wss://{addr}/"), tls).await?;
                    drop(ws);
                    Ok(())
                }
            })
            .await?
        }
        "strand-quic" => {
            let listener =
                QuicListener::bind("127.0.0.1:0", QuicServerConfig::new(identity)).await?;
            let addr = listener.local_addr();
            tokio::spawn(async move {
                while let Ok(conn) = Listener::accept(&listener).await {
                    drop(conn);
                }
            });
            let client = Arc::new(QuicClient::bind(
                "127.0.0.1:0".parse()?,
                QuicClientConfig::new(verification),
            )?);
            util::unary_load(opts, CONNECTORS, move || {
                let client = client.clone();
                async move {
                    drop(client.connect(addr, "localhost").await?);
                    Ok(())
                }
            })
            .await?
        }
        "quinn" => {
            let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(
                ServerTls::new(identity)
                    .with_alpn(vec![b"quic".to_vec()])
                    .build()?,
            )?;
            let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(
                ClientTls::new(verification)
                    .with_alpn(vec![b"quic".to_vec()])
                    .build()?,
            )?;
            let server = quinn::Endpoint::server(
                quinn::ServerConfig::with_crypto(Arc::new(server_crypto)),
                "127.0.0.1:0".parse()?,
            )?;
            let addr = server.local_addr()?;
            let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            client.set_default_client_config(quinn::ClientConfig::new(Arc::new(client_crypto)));
            tokio::spawn(async move {
                while let Some(incoming) = server.accept().await {
                    tokio::spawn(async move {
                        if let Ok(conn) = incoming.await {
                            drop(conn);
                        }
                    });
                }
            });
            util::unary_load(opts, CONNECTORS, move || {
                let client = client.clone();
                async move {
                    drop(client.connect(addr, "localhost")?.await?);
                    Ok(())
                }
            })
            .await?
        }
        other => return Err(format!("case connect_tls has no system {other}").into()),
    };
    // The load driver counts calls; here a call is one connection.
    if let Some(m) = report.as_object_mut() {
        if let Some(v) = m.remove("calls_per_s") {
            m.insert("conns_per_s".into(), v);
        }
        if let Some(v) = m.remove("calls") {
            m.insert("conns".into(), v);
        }
    }
    Ok(report)
}

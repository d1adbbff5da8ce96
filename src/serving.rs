//! [`Serving`]: one server on several listeners at once.

use std::fmt;
use std::io;
use std::time::Duration;

use strand_rpc_core::server::Server;
use tokio::task::JoinHandle;

use crate::{Endpoint, Error};

/// A [`Server`] serving one router on several listeners (ws, wss and quic at
/// once, say), each accept loop on its own task.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use strand::{Endpoint, Server, Serving};
///
/// let server = Server::builder(strand::demo::router()).build();
/// let serving = Serving::start(&server, &[
///     Endpoint::from_url("ws://127.0.0.1:0")?,
///     Endpoint::from_url("quic://127.0.0.1:0")?.with_identity(strand::tls::Identity::dev()?),
/// ]).await?;
/// for url in serving.urls() {
///     println!("listening {url}");
/// }
/// serving.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct Serving {
    server: Server,
    urls: Vec<String>,
    tasks: Vec<JoinHandle<io::Result<()>>>,
}

impl Serving {
    /// Binds every endpoint (all or none: if one fails, the ones bound are
    /// dropped and the error returned), then serves `server` on each.
    pub async fn start(server: &Server, endpoints: &[Endpoint]) -> Result<Serving, Error> {
        let mut listeners = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            listeners.push(endpoint.bind().await?);
        }
        let urls = listeners.iter().map(|l| l.url()).collect();
        let tasks = listeners
            .into_iter()
            .map(|listener| {
                let server = server.clone();
                tokio::spawn(async move { server.serve(listener).await })
            })
            .collect();
        Ok(Serving {
            server: server.clone(),
            urls,
            tasks,
        })
    }

    /// The URLs served, in the order of the endpoints, with actual ports.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Graceful shutdown: stops accepting on every listener, lets running
    /// calls finish for up to `grace`, then aborts the rest and closes every
    /// connection (see [`Server::shutdown`]).
    pub async fn shutdown(self, grace: Duration) {
        let server = self.server.clone();
        self.stop(server.shutdown(grace)).await
    }

    /// Drains, for a restart or a deploy: as [`Serving::shutdown`], but
    /// connected strand peers are told to move their new calls elsewhere at
    /// once, and connections close as going away (see [`Server::drain`]).
    pub async fn drain(self, grace: Duration) {
        let server = self.server.clone();
        self.stop(server.drain(grace)).await
    }

    async fn stop(mut self, stopped: impl std::future::Future<Output = ()>) {
        stopped.await;
        for task in std::mem::take(&mut self.tasks) {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "a listener stopped with an error"),
                Err(e) => tracing::debug!(error = %e, "a listener task failed"),
            }
        }
    }
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the accept loops (their listeners
        // close with them); established connections live on.
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use strand_rpc_core::transport::CloseCode;
    use strand_rpc_core::Client;
    use strand_tls::Identity;

    #[tokio::test]
    async fn start_fails_as_a_whole() {
        let server = crate::demo::server(None);
        let endpoints = [
            Endpoint::from_url("ws://127.0.0.1:0").unwrap(),
            Endpoint::from_url("quic://127.0.0.1:0").unwrap(), // no certificate
        ];
        let err = Serving::start(&server, &endpoints).await.unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    /// The demo server on a loopback ws listener, and a client of it.
    async fn demo_on_ws() -> (Server, Serving, Client) {
        let server = crate::demo::server(None);
        let serving = Serving::start(&server, &[Endpoint::from_url("ws://127.0.0.1:0").unwrap()])
            .await
            .unwrap();
        let client = Endpoint::from_url(&serving.urls()[0])
            .unwrap()
            .connect()
            .await
            .unwrap();
        (server, serving, client)
    }

    #[tokio::test]
    async fn shutdown_lets_running_calls_finish() {
        let (server, serving, client) = demo_on_ws().await;
        let call = tokio::spawn({
            let client = client.clone();
            async move { client.unary::<_, Value>("sleep", &json!({"ms": 200})).await }
        });
        // Wait (up to 10 s) until the call runs on the server.
        for _ in 0..2000 {
            if server.calls_in_flight() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.calls_in_flight(), 1);
        serving.shutdown(Duration::from_secs(5)).await;
        assert_eq!(call.await.unwrap().unwrap(), json!({"slept": 200}));
        // New calls are refused once the server is down.
        let after = client.unary::<_, Value>("echo", &json!({})).await;
        assert!(after.is_err());
    }

    /// After a graceful shutdown, a client sees the carrier's normal close.
    #[tokio::test]
    async fn shutdown_closes_ws_connections_normally() {
        let (_server, serving, client) = demo_on_ws().await;
        let _: Value = client.unary("echo", &json!({})).await.unwrap();
        serving.shutdown(Duration::from_millis(100)).await;
        let reason = tokio::time::timeout(Duration::from_secs(5), client.connection().closed())
            .await
            .expect("the connection closed");
        assert_eq!(reason.code, CloseCode::Normal, "{reason:?}");
    }

    /// After a graceful shutdown, a QUIC client sees a normal close (code 0).
    #[tokio::test]
    async fn shutdown_closes_quic_connections_normally() {
        let identity = Identity::dev().unwrap();
        let server = crate::demo::server(None);
        let endpoint = Endpoint::from_url("quic://127.0.0.1:0")
            .unwrap()
            .with_identity(identity.clone());
        let serving = Serving::start(&server, &[endpoint]).await.unwrap();
        let client = Endpoint::from_url(&serving.urls()[0])
            .unwrap()
            .with_server_verification(strand_tls::ServerVerification::Ca(
                identity.cert_chain().to_vec(),
            ))
            .connect()
            .await
            .unwrap();
        let _: Value = client.unary("echo", &json!({})).await.unwrap();
        serving.shutdown(Duration::from_millis(100)).await;
        let reason = tokio::time::timeout(Duration::from_secs(5), client.connection().closed())
            .await
            .expect("the connection closed");
        assert_eq!(reason.code, CloseCode::Normal, "{reason:?}");
        assert_eq!(
            reason.initiator,
            strand_rpc_core::transport::CloseInitiator::Peer,
            "{reason:?}"
        );
    }
}

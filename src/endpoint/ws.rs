//! The WebSocket side of [`Endpoint`]: its settings as a [`WsConfig`], and
//! binding and connecting `ws://` and `wss://` URLs. Built with the `ws`
//! feature.

use strand_rpc_core::transport::DynConnection;
use strand_transport_ws::{
    Budget, Http2Config, WsClientConfig, WsConfig, WsListener, WsServerConfig,
};

use super::Endpoint;
use crate::config::TimeoutsConfig;
use crate::url::Scheme;
use crate::Error;

impl Endpoint {
    pub(super) async fn bind_ws(&self) -> Result<WsListener, Error> {
        let config = self.ws_server_config()?;
        Ok(WsListener::bind((self.host.as_str(), self.port), config).await?)
    }

    /// The listener's settings: the transport's, the server limits, TLS,
    /// the hooks.
    pub(crate) fn ws_server_config(&self) -> Result<WsServerConfig, Error> {
        let mut config = WsServerConfig::default();
        config.transport = self.ws_config();
        let limits = &self.config.limits;
        if let Some(n) = limits.max_connections {
            config.max_connections = n;
        }
        if let Some(n) = limits.max_pending_handshakes {
            config.max_pending_handshakes = n;
        }
        if let Some(n) = limits.max_pending_handshakes_per_ip {
            config.max_pending_handshakes_per_ip = n;
        }
        if self.path != "/" {
            config.path = Some(self.path.clone());
        }
        if self.scheme == Scheme::Wss {
            config.tls = Some(self.server_tls()?);
        }
        config.upgrade_hook = self.upgrade_hook.clone();
        config.http_handler = self.http_handler.clone();
        // Offered by default: ALPN lets each client choose.
        config.http2 = (self.config.http2.enabled != Some(false)).then(|| self.http2_config());
        Ok(config)
    }

    pub(super) async fn connect_ws(&self) -> Result<DynConnection, Error> {
        let mut config = WsClientConfig::default();
        config.transport = self.ws_config();
        if self.scheme == Scheme::Wss {
            config.tls = Some(self.client_tls()?);
            // HTTP/1.1 unless asked: every peer, the JS ones too, accepts it.
            let asked = self.config.http2.enabled.unwrap_or(false)
                || crate::url::is_wss_h2(&self.config.url);
            config.http2 = asked.then(|| self.http2_config());
        }
        for (name, value) in &self.config.auth.headers {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|e| Error::Config(format!("header name {name:?}: {e}")))?;
            let value = http::HeaderValue::try_from(value.as_str())
                .map_err(|e| Error::Config(format!("header {name}: {e}")))?;
            config.headers.push((name, value));
        }
        let conn = strand_transport_ws::connect(&self.url(), config).await?;
        Ok(std::sync::Arc::new(conn))
    }

    /// The HTTP/2 limits of `[http2]`.
    pub(crate) fn http2_config(&self) -> Http2Config {
        let section = &self.config.http2;
        let mut h2 = Http2Config::default();
        if let Some(n) = section.max_concurrent_streams {
            h2.max_concurrent_streams = n;
        }
        if let Some(n) = section.max_header_list_size {
            h2.max_header_list_size = n;
        }
        if let Some(n) = section.initial_stream_window {
            h2.initial_stream_window = n;
        }
        if let Some(n) = section.initial_connection_window {
            h2.initial_connection_window = n;
        }
        if let Some(n) = section.max_send_buffer {
            h2.max_send_buffer = n;
        }
        h2
    }

    pub(crate) fn ws_config(&self) -> WsConfig {
        let (limits, timeouts) = (&self.config.limits, &self.config.timeouts);
        let mut ws = WsConfig::default();
        if let Some(w) = limits.stream_window {
            ws.stream_window = w;
        }
        if let Some(n) = limits.max_streams {
            ws.max_streams = n as usize;
        }
        if let Some(n) = limits.stream_backlog {
            ws.stream_backlog = n;
        }
        if let Some(n) = limits.connection_send_buffer {
            ws.connection_send_buffer = n;
        }
        if let Some(n) = limits.connection_receive_buffer {
            ws.connection_receive_buffer = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = limits.max_queued_control {
            ws.max_queued_control = n;
        }
        let floods = &limits.floods;
        for (budget, field) in [
            (floods.resets, &mut ws.floods.resets),
            (floods.idle_control, &mut ws.floods.idle_control),
            (floods.pings, &mut ws.floods.pings),
            (floods.empty_data, &mut ws.floods.empty_data),
        ] {
            if let Some(b) = budget {
                *field = Budget::new(b.burst, b.per_second);
            }
        }
        if let Some(t) = TimeoutsConfig::optional(timeouts.send_ms) {
            ws.send_timeout = t;
        }
        if let Some(t) = TimeoutsConfig::duration(timeouts.handshake_ms) {
            ws.handshake_timeout = t;
        }
        if let Some(t) = TimeoutsConfig::optional(timeouts.idle_ms) {
            ws.idle_timeout = t;
        }
        if let Some(t) = TimeoutsConfig::optional(timeouts.keep_alive_ms) {
            ws.keep_alive_interval = t;
        }
        ws
    }
}

//! WebSocket mux transport (in progress).

mod config;
mod conn;
mod driver;
mod endpoint;
mod error;
mod handshake;
pub mod mux;

pub use config::{
    UpgradeContext, UpgradeFuture, UpgradeHook, UpgradeRefusal, WsClientConfig, WsConfig,
    WsServerConfig,
};
pub use conn::{ConnectionStats, WsConnection, WsRecvStream, WsSendStream};
pub use endpoint::{connect, WsListener};
pub use error::WsError;
pub use handshake::WINDOW_HEADER;
pub use mux::{SessionStats, StreamStats};
pub use strand_tls;

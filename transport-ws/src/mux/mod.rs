//! The sans-IO mux: frames, stream ids, credit, per-stream state and the
//! session that ties them together. Nothing here touches tokio or a clock.

pub mod close_code;
mod copies;
pub mod credit;
pub mod flood;
pub mod frame;
mod queue;
mod recv_buffer;
pub mod session;
pub mod state;
pub mod stream_id;
pub mod varint;

#[cfg(test)]
mod tests;

pub use flood::{Budget, FloodLimits};
pub use frame::{Frame, FrameError, Shutdown};
pub use session::{Event, OpError, Session, SessionConfig, SessionStats, StreamStats};
pub use stream_id::{Role, StreamId, StreamMap};

//! The server side: [`Router`] (handlers by method), [`Server`] (accepts
//! connections and runs calls) and the types that flow through middleware.

mod call;
mod router;
pub(crate) mod run_call;
mod serve;
mod stop_signal;

pub use call::{CallInput, CallRequest, CallResponse, Incoming, RawBody, RawReader};
pub use router::{CallKind, Router};
pub use serve::{
    CallService, Server, ServerBuilder, ServerConfig, DEFAULT_FIRST_MESSAGE_TIMEOUT,
    DEFAULT_MAX_FIRST_MESSAGE_SIZE,
};

//! The checked model of a service: what [`crate::parse`] produces and
//! [`crate::expand`] consumes. Every type here has passed the signature rules,
//! so expansion never has to report an error.

use proc_macro2::Span;
use syn::{Attribute, Ident, ItemTrait, Path, TraitItemFn, Type};

/// One `#[strand::service]` trait.
pub struct Service {
    /// The path of the facade crate (`::strand` unless `crate = "..."` says otherwise).
    pub krate: Path,
    /// The trait as written, with `#[rpc]` attributes removed and its items
    /// still in their original form (expansion rewrites the signatures).
    pub item: ItemTrait,
    /// The RPC methods, in declaration order.
    pub methods: Vec<Method>,
}

/// One RPC method.
pub struct Method {
    /// The method as written (without `#[rpc]` attributes).
    pub item: TraitItemFn,
    /// The Rust name.
    pub ident: Ident,
    /// The name on the wire (`#[rpc(name = "...")]`, else the Rust name).
    pub wire_name: String,
    /// Where the wire name was given, for errors.
    pub wire_span: Span,
    /// The method's own server-side timeout (`#[rpc(timeout_ms = N)]`).
    pub timeout_ms: Option<u64>,
    /// `#[rpc(idempotent)]`: the client marks its calls idempotent
    /// (`CallBuilder::idempotent`), so a reconnecting client sends a unary
    /// one again after a lost connection.
    pub idempotent: bool,
    /// The call kind and its types.
    pub kind: Kind,
    /// Doc attributes, copied onto the client method.
    pub docs: Vec<Attribute>,
}

/// A method's call kind with the types it carries.
pub enum Kind {
    /// `async fn m(&self, ctx: Context, req: Req) -> Result<Resp, RpcError>`
    Unary {
        /// The request (params) type.
        req: Type,
        /// The response type.
        resp: Type,
    },
    /// `fn m(&self, ctx: Context, req: Req) -> impl Stream<Item = Result<Item, RpcError>>`
    ServerStreaming {
        /// The request type.
        req: Type,
        /// The type of each response.
        item: Type,
    },
    /// `async fn m(&self, ctx: Context, input: Incoming<Msg>) -> Result<Resp, RpcError>`
    ClientStreaming {
        /// The type of each request message.
        msg: Type,
        /// The response type.
        resp: Type,
    },
    /// `fn m(&self, ctx: Context, input: Incoming<Msg>) -> impl Stream<Item = Result<Item, RpcError>>`
    Duplex {
        /// The type of each request message.
        msg: Type,
        /// The type of each response.
        item: Type,
    },
    /// `async fn m(&self, ctx: Context, req: Req, input: RawReader) -> Result<(Lead, RawBody), RpcError>`
    Raw {
        /// The header's params type.
        req: Type,
        /// The leading response type.
        leading: Type,
    },
}

impl Kind {
    /// The `CallKind` variant name.
    pub fn variant(&self) -> &'static str {
        match self {
            Kind::Unary { .. } => "Unary",
            Kind::ServerStreaming { .. } => "ServerStreaming",
            Kind::ClientStreaming { .. } => "ClientStreaming",
            Kind::Duplex { .. } => "Duplex",
            Kind::Raw { .. } => "Raw",
        }
    }

    /// A human name, for generated docs.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Unary { .. } => "unary",
            Kind::ServerStreaming { .. } => "server-streaming",
            Kind::ClientStreaming { .. } => "client-streaming",
            Kind::Duplex { .. } => "duplex",
            Kind::Raw { .. } => "raw",
        }
    }

    /// Whether the handler is an `async fn` (as opposed to returning a stream).
    pub fn is_async(&self) -> bool {
        matches!(
            self,
            Kind::Unary { .. } | Kind::ClientStreaming { .. } | Kind::Raw { .. }
        )
    }
}

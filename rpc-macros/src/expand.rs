//! Expand: a checked [`Service`] model to Rust items. Nothing here can fail;
//! every rule was checked in [`crate::parse`].
//!
//! Generated for `trait Calc`:
//! - the trait itself, with `Send + Sync + 'static` supertraits, every
//!   `async fn` rewritten to `fn ... -> impl Future<Output = ...> + Send`,
//!   `Send + 'static` added to streaming return types, and a provided
//!   `into_router(self) -> Router`;
//! - `CalcClient`, one method per RPC, plus per-call options and `MANIFEST`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    parse_quote, parse_quote_spanned, ReturnType, TraitItem, TraitItemFn, Type, TypeParamBound,
};

use crate::model::{Kind, Method, Service};

/// All generated items.
pub fn expand(service: &Service) -> TokenStream {
    let trait_item = expand_trait(service);
    let client = expand_client(service);
    let document = expand_document(service);
    quote! {
        #trait_item
        #client
        #document
    }
}

fn expand_trait(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let mut item = service.item.clone();

    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    item.supertraits.push(parse_quote!(::core::marker::Send));
    item.supertraits.push(parse_quote!(::core::marker::Sync));
    item.supertraits.push(parse_quote!('static));

    item.items = service
        .methods
        .iter()
        .map(|m| TraitItem::Fn(rewrite_method(m)))
        .collect();

    let routes = service.methods.iter().map(|m| route(service, m));
    let client_ident = client_ident(service);
    let into_router_doc = format!(
        "Serves this implementation: a `Router` with one route per RPC method, by \
         wire name. Call it through [`{client_ident}`]; [`{client_ident}::MANIFEST`] \
         lists the routes."
    );
    item.items.push(parse_quote! {
        #[doc = #into_router_doc]
        fn into_router(self) -> #krate::__private::Router
        where
            Self: ::core::marker::Sized,
        {
            let __strand_this = ::std::sync::Arc::new(self);
            let _ = &__strand_this;
            #krate::__private::Router::new() #(#routes)*
        }
    });
    quote!(#item)
}

/// The trait method with its signature made spawnable.
fn rewrite_method(method: &Method) -> TraitItemFn {
    let mut f = method.item.clone();
    let ret_span = match &f.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => f.sig.ident.span(),
    };
    if method.kind.is_async() {
        if f.sig.asyncness.take().is_some() {
            let output = match &f.sig.output {
                ReturnType::Type(_, ty) => (**ty).clone(),
                ReturnType::Default => parse_quote!(()),
            };
            let future: Type = parse_quote_spanned! {ret_span=>
                impl ::core::future::Future<Output = #output> + ::core::marker::Send
            };
            f.sig.output = parse_quote!(-> #future);
            if let Some(block) = f.default.take() {
                f.default = Some(parse_quote!({ async move #block }));
            }
        } else {
            add_bounds(&mut f, false);
        }
    } else {
        add_bounds(&mut f, true);
    }
    f
}

/// Adds `+ Send` (and `+ 'static` when `with_static`) to an `impl Trait`
/// return type that lacks them.
fn add_bounds(f: &mut TraitItemFn, with_static: bool) {
    let ReturnType::Type(_, ty) = &mut f.sig.output else {
        return;
    };
    let Type::ImplTrait(it) = &mut **ty else {
        return;
    };
    let has_send = it.bounds.iter().any(|b| {
        matches!(b, TypeParamBound::Trait(t)
            if t.path.segments.last().is_some_and(|s| s.ident == "Send"))
    });
    let has_lifetime = it
        .bounds
        .iter()
        .any(|b| matches!(b, TypeParamBound::Lifetime(_)));
    if !has_send {
        it.bounds.push(parse_quote!(::core::marker::Send));
    }
    if with_static && !has_lifetime {
        it.bounds.push(parse_quote!('static));
    }
}

/// One `.unary(...)` / `.server_streaming(...)` / ... registration.
///
/// A streaming method's return type borrows `&self` as far as the borrow
/// checker knows (return-position `impl Trait` in a trait captures every
/// lifetime in scope), although the trait requires it to be `'static`. The
/// closure therefore boxes the stream: the unsizing coercion to
/// `dyn Stream + Send + 'static` is where that `'static` bound is used. That
/// costs one allocation per call, not per message.
fn route(service: &Service, method: &Method) -> TokenStream {
    let wire = &method.wire_name;
    let span = method.ident.span();
    let registration = registration(service, method);
    let timeout = method.timeout_ms.map(|ms| {
        quote_spanned! {span=>
            .timeout(#wire, ::core::time::Duration::from_millis(#ms))
        }
    });
    quote!(#registration #timeout)
}

/// The registration call for `method`'s kind.
fn registration(service: &Service, method: &Method) -> TokenStream {
    let krate = &service.krate;
    let trait_ident = &service.item.ident;
    let m = &method.ident;
    let wire = &method.wire_name;
    let span = method.ident.span();
    let call = quote_spanned!(span=> <Self as #trait_ident>::#m);
    let this = quote!(::std::sync::Arc::clone(&__strand_this));
    let support = quote!(#krate::__private);
    match &method.kind {
        Kind::Unary { req, .. } => quote_spanned! {span=>
            .unary(#wire, {
                let __strand_this = #this;
                move |ctx: #krate::__private::Context, req: #req| {
                    let __strand_this = #this;
                    async move { #call(&*__strand_this, ctx, req).await }
                }
            })
        },
        Kind::ServerStreaming { req, item } => quote_spanned! {span=>
            .server_streaming(#wire, {
                let __strand_this = #this;
                move |ctx: #krate::__private::Context, req: #req| -> #support::futures_util::stream::BoxStream<
                    'static,
                    ::core::result::Result<#item, #krate::__private::RpcError>,
                > {
                    ::std::boxed::Box::pin(#call(&*__strand_this, ctx, req))
                }
            })
        },
        Kind::ClientStreaming { msg, .. } => quote_spanned! {span=>
            .client_streaming(#wire, {
                let __strand_this = #this;
                move |ctx: #krate::__private::Context, input: #krate::__private::Incoming<#msg>| {
                    let __strand_this = #this;
                    async move { #call(&*__strand_this, ctx, input).await }
                }
            })
        },
        Kind::Duplex { msg, item } => quote_spanned! {span=>
            .duplex(#wire, {
                let __strand_this = #this;
                move |ctx: #krate::__private::Context, input: #krate::__private::Incoming<#msg>| -> #support::futures_util::stream::BoxStream<
                    'static,
                    ::core::result::Result<#item, #krate::__private::RpcError>,
                > {
                    ::std::boxed::Box::pin(#call(&*__strand_this, ctx, input))
                }
            })
        },
        Kind::Raw { req, .. } => quote_spanned! {span=>
            .raw(#wire, {
                let __strand_this = #this;
                move |ctx: #krate::__private::Context, req: #req, input: #krate::__private::RawReader| {
                    let __strand_this = #this;
                    async move { #call(&*__strand_this, ctx, req, input).await }
                }
            })
        },
    }
}

/// `{Trait}Client::openrpc()`, with the `openrpc` feature.
#[cfg(feature = "openrpc")]
fn expand_document(service: &Service) -> TokenStream {
    crate::describe::expand(service, &client_ident(service))
}

#[cfg(not(feature = "openrpc"))]
fn expand_document(_service: &Service) -> TokenStream {
    TokenStream::new()
}

fn client_ident(service: &Service) -> syn::Ident {
    format_ident!("{}Client", service.item.ident)
}

fn expand_client(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let client = client_ident(service);
    let support = quote!(#krate::__private);

    let struct_doc = format!(
        "A typed client for [`{trait_ident}`]: one method per RPC, each returning \
         strand's client types. Cheap to clone.\n\n\
         Per-call options (`with_timeout`, `with_metadata`, `with_bearer`) return a \
         copy of the client that applies them to every call it makes."
    );
    let entries = service.methods.iter().map(|m| {
        let wire = &m.wire_name;
        let variant = format_ident!("{}", m.kind.variant());
        quote!((#wire, #support::CallKind::#variant))
    });
    let manifest_doc = format!(
        "The RPC methods of [`{trait_ident}`]: wire name and call kind, in declaration order."
    );
    let methods = service.methods.iter().map(|m| client_method(service, m));

    quote! {
        #[doc = #struct_doc]
        #[derive(Clone)]
        #vis struct #client {
            client: #krate::__private::Client,
            options: #support::CallOptions,
        }

        impl ::core::fmt::Debug for #client {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#client))
                    .field("options", &self.options)
                    .finish_non_exhaustive()
            }
        }

        impl ::core::convert::From<#krate::__private::Client> for #client {
            fn from(client: #krate::__private::Client) -> Self {
                Self::new(client)
            }
        }

        #[allow(clippy::type_complexity)]
        impl #client {
            #[doc = #manifest_doc]
            pub const MANIFEST: &'static [(&'static str, #support::CallKind)] = &[#(#entries),*];

            /// A typed client making its calls through `client`.
            pub fn new(client: #krate::__private::Client) -> Self {
                Self {
                    client,
                    options: ::core::default::Default::default(),
                }
            }

            /// The untyped client underneath.
            pub fn client(&self) -> &#krate::__private::Client {
                &self.client
            }

            /// Returns the untyped client underneath.
            pub fn into_inner(self) -> #krate::__private::Client {
                self.client
            }

            /// A copy whose calls use `timeout` (sent to the server as
            /// `metadata.timeout` and enforced locally too).
            #[must_use = "the options apply to the returned copy, not to this client"]
            pub fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                let mut this = ::core::clone::Clone::clone(self);
                this.options.set_timeout(timeout);
                this
            }

            /// A copy whose calls carry `key: value` in their metadata.
            #[must_use = "the options apply to the returned copy, not to this client"]
            pub fn with_metadata(
                &self,
                key: impl ::core::convert::Into<::std::string::String>,
                value: impl ::core::convert::Into<#support::serde_json::Value>,
            ) -> Self {
                let mut this = ::core::clone::Clone::clone(self);
                this.options.insert_metadata(key.into(), value.into());
                this
            }

            /// A copy whose calls send `authorization: Bearer <token>`.
            #[must_use = "the options apply to the returned copy, not to this client"]
            pub fn with_bearer(&self, token: &str) -> Self {
                self.with_metadata("authorization", ::std::format!("Bearer {token}"))
            }

            #(#methods)*
        }
    }
}

fn client_method(service: &Service, method: &Method) -> TokenStream {
    let krate = &service.krate;
    let m = &method.ident;
    let wire = &method.wire_name;
    let span = method.wire_span;
    let mut docs = method.docs.clone();
    let summary = format!(
        "Calls `{wire}` ({}); see [`{}::{}`].",
        method.kind.describe(),
        service.item.ident,
        method.ident
    );
    if !docs.is_empty() {
        docs.push(parse_quote!(#[doc = ""]));
    }
    docs.push(parse_quote!(#[doc = #summary]));
    let start = if method.idempotent {
        quote!(self.options.apply(self.client.call(#wire)).idempotent())
    } else {
        quote!(self.options.apply(self.client.call(#wire)))
    };
    let err = quote!(#krate::__private::ClientError);
    let body = match &method.kind {
        Kind::Unary { req, resp } => quote_spanned! {span=>
            pub async fn #m(&self, req: &#req) -> ::core::result::Result<#resp, #err> {
                #start.unary(req).await
            }
        },
        Kind::ServerStreaming { req, item } => quote_spanned! {span=>
            pub async fn #m(
                &self,
                req: &#req,
            ) -> ::core::result::Result<#krate::__private::ResponseStream<#item>, #err> {
                #start.server_streaming(req).await
            }
        },
        Kind::ClientStreaming { msg, resp } => quote_spanned! {span=>
            pub async fn #m(
                &self,
            ) -> ::core::result::Result<#krate::__private::ClientStreamingCall<#msg, #resp>, #err> {
                #start.client_streaming().await
            }
        },
        Kind::Duplex { msg, item } => quote_spanned! {span=>
            pub async fn #m(
                &self,
            ) -> ::core::result::Result<
                (#krate::__private::RequestSink<#msg>, #krate::__private::ResponseStream<#item>),
                #err,
            > {
                #start.duplex().await
            }
        },
        Kind::Raw { req, leading } => {
            let pipelined = format_ident!("{}_pipelined", m.unraw(), span = m.span());
            let pipelined_doc = format!(
                "Calls `{wire}` (raw) with its bytes pipelined behind the header: \
                 the writer at once, the leading response to wait for (see \
                 `CallBuilder::raw_pipelined`)."
            );
            quote_spanned! {span=>
                pub async fn #m(
                    &self,
                    req: &#req,
                ) -> ::core::result::Result<#krate::__private::RawCall<#leading>, #err> {
                    #start.raw(req).await
                }

                #[doc = #pipelined_doc]
                pub async fn #pipelined(
                    &self,
                    req: &#req,
                ) -> ::core::result::Result<#krate::__private::PipelinedRawCall<#leading>, #err> {
                    #start.raw_pipelined(req).await
                }
            }
        }
    };
    quote! {
        #(#docs)*
        #body
    }
}

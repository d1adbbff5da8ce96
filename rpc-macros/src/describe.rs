//! `{Trait}Client::openrpc()`: the service's OpenRPC document, built at run
//! time from the JSON Schemas of its types (`schemars`). Only with the
//! `openrpc` feature (docs/openrpc.md).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, Meta, Type};

use crate::model::{Kind, Method, Service};

/// The `impl` block holding `openrpc()`.
pub fn expand(service: &Service, client: &syn::Ident) -> TokenStream {
    let krate = &service.krate;
    let support = quote!(#krate::__private);
    let title = service.item.ident.to_string();
    let description = doc_text(&service.item.attrs);
    let methods = service.methods.iter().map(|m| method(&support, m));
    let doc = format!(
        "The OpenRPC document of [`{title}`]: every method with its params and \
         result as JSON Schemas, its call kind (`x-strand-kind`) and timeout. Serve \
         it with `Router::discover`."
    );
    quote! {
        impl #client {
            #[doc = #doc]
            pub fn openrpc() -> #support::serde_json::Value {
                let mut __strand_doc = #support::Describer::new(
                    #title,
                    ::core::env!("CARGO_PKG_VERSION"),
                    #description,
                );
                #(#methods)*
                __strand_doc.finish()
            }
        }
    }
}

/// One `Describer::method` call, after a per-type check that names the
/// type lacking a schema.
fn method(support: &TokenStream, method: &Method) -> TokenStream {
    let (params, result) = match &method.kind {
        Kind::Unary { req, resp } => (req, resp),
        Kind::ServerStreaming { req, item } => (req, item),
        Kind::ClientStreaming { msg, resp } => (msg, resp),
        Kind::Duplex { msg, item } => (msg, item),
        Kind::Raw { req, leading } => (req, leading),
    };
    let checks = [params, result].map(|ty| check(support, ty));
    let wire = &method.wire_name;
    let variant = format_ident!("{}", method.kind.variant());
    let docs = doc_text(&method.docs);
    let timeout = match method.timeout_ms {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #(#checks)*
        __strand_doc.method::<#params, #result>(#support::MethodSpec {
            name: #wire,
            kind: #support::CallKind::#variant,
            docs: #docs,
            timeout_ms: #timeout,
        });
    }
}

/// `has_schema::<T>()` spanned on the type, so a type without a schema is
/// reported where the trait names it.
fn check(support: &TokenStream, ty: &Type) -> TokenStream {
    quote_spanned! {ty.span()=>
        #support::has_schema::<#ty>();
    }
}

/// The text of `#[doc = "..."]` attributes (`///` comments), one line each,
/// without the space after `///`.
fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(lit) => match &lit.lit {
                    Lit::Str(s) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_string()
        })
        .collect();
    lines.join("\n").trim().to_string()
}

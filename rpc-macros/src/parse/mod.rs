//! Parse and check: the macro's input (attribute arguments and the trait) to a
//! [`Service`] model. Every rule violation becomes a spanned `syn::Error`;
//! errors are collected so one compile shows all of them.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{Attribute, Item, ItemTrait, LitInt, LitStr, Meta, Path, TraitItem};

use crate::model::{Kind, Method, Service};

mod signature;
mod types;

use signature::check_method;
use types::*;

/// Rust method names the generated code already uses (client methods and the
/// trait's provided `into_router`).
const RESERVED: &[&str] = &[
    "new",
    "client",
    "into_inner",
    "with_timeout",
    "with_metadata",
    "with_bearer",
    "into_router",
];

/// Collects errors so that one expansion reports all of them.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records an error.
    pub fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(e) => e.combine(err),
            None => self.0 = Some(err),
        }
    }

    /// Records an error covering `tokens` (from their first to their last token).
    pub fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// The collected errors, if any.
    pub fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Parses the attribute arguments and the item. On failure returns the errors
/// and, when the item is a trait, the trait cleaned of `#[rpc]` attributes so
/// that the caller can still emit it (keeping follow-on errors away).
pub fn parse(attr: TokenStream, item: TokenStream) -> Result<Service, (syn::Error, TokenStream)> {
    let mut errors = Errors::default();
    let krate = parse_args(attr, &mut errors);

    let item: Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => return Err((e, item)),
    };
    let mut item = match item {
        Item::Trait(t) => t,
        other => {
            let err = syn::Error::new(
                item_name_span(&other),
                "`#[strand::service]` applies to a trait: \
                 `#[strand::service] pub trait Name { ... }`",
            );
            return Err((err, quote::quote!(#other)));
        }
    };

    check_trait(&item, &mut errors);

    let mut methods = Vec::new();
    let mut names: HashMap<String, syn::Ident> = HashMap::new();
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            errors.at(
                &trait_item,
                "a service trait holds only RPC methods; move this item out of the trait",
            );
            continue;
        };
        let rpc_args = take_rpc_attrs(&mut f.attrs, &mut errors);
        if let Some(cfg) = f.attrs.iter().find(|a| a.path().is_ident("cfg")) {
            // The method would still be named by the router, the client and
            // the manifest; put the `cfg` on the whole trait instead.
            errors.at(
                cfg,
                "`cfg` on an RPC method is not supported: the generated router, client and \
                 manifest name every method; put it on the whole trait",
            );
            continue;
        }
        let Some(kind) = check_method(&f.sig, &mut errors) else {
            continue;
        };
        let ident = f.sig.ident.clone();
        let (wire_name, wire_span) = match rpc_args.name {
            Some(lit) => (lit.value(), lit.span()),
            None => (ident.unraw().to_string(), ident.span()),
        };
        if RESERVED.contains(&ident.unraw().to_string().as_str()) {
            errors.at(
                &ident,
                format!(
                    "`{ident}` is also a method of the generated code; rename the Rust method \
                     and keep the wire name with `#[rpc(name = \"{wire_name}\")]`"
                ),
            );
            continue;
        }
        if let Some(first) = names.get(&wire_name) {
            errors.at(
                at_span(wire_span),
                format!(
                    "duplicate wire name `{wire_name}`: method `{first}` already uses it; \
                     rename one with `#[rpc(name = \"...\")]`"
                ),
            );
            continue;
        }
        names.insert(wire_name.clone(), ident.clone());
        let docs = f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect();
        methods.push(Method {
            item: f.clone(),
            ident,
            wire_name,
            wire_span,
            timeout_ms: rpc_args.timeout_ms,
            idempotent: rpc_args.idempotent,
            kind,
            docs,
        });
    }

    // A raw method's client also gets `<name>_pipelined`: no Rust method
    // may take that name.
    for raw in methods
        .iter()
        .filter(|m| matches!(m.kind, Kind::Raw { .. }))
    {
        let pipelined = format!("{}_pipelined", raw.ident.unraw());
        if let Some(clash) = methods.iter().find(|m| m.ident.unraw() == pipelined) {
            errors.at(
                &clash.ident,
                format!(
                    "`{pipelined}` is also the pipelined client method of the raw method `{}`; \
                     rename the Rust method and keep the wire name with \
                     `#[rpc(name = \"{}\")]`",
                    raw.ident, clash.wire_name
                ),
            );
        }
    }

    match errors.finish() {
        Ok(()) => Ok(Service {
            krate,
            item,
            methods,
        }),
        Err(e) => Err((e, quote::quote!(#item))),
    }
}

/// `#[strand::service]` or `#[strand::service(crate = "path::to::strand")]`.
fn parse_args(attr: TokenStream, errors: &mut Errors) -> Path {
    let mut krate: Path = syn::parse_quote!(::strand);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            krate = lit.parse()?;
            Ok(())
        } else {
            Err(meta.error(format!(
                "unknown `#[strand::service]` argument `{}`; expected `crate = \"...\"`",
                path_text(&meta.path)
            )))
        }
    });
    if let Err(e) = parser.parse2(attr) {
        errors.push(e);
    }
    krate
}

fn check_trait(item: &ItemTrait, errors: &mut Errors) {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.at(
            &item.generics,
            "a service trait cannot be generic: its methods' types must be concrete \
             to be (de)serialized",
        );
    }
    if let Some(u) = &item.unsafety {
        errors.at(u, "a service trait cannot be `unsafe`");
    }
    if let Some(a) = &item.auto_token {
        errors.at(a, "a service trait cannot be an `auto` trait");
    }
}

/// What a method's `#[rpc(...)]` attributes say.
#[derive(Default)]
struct RpcArgs {
    /// `name = "..."`: the wire name.
    name: Option<LitStr>,
    /// `timeout_ms = N`: the method's own server-side timeout.
    timeout_ms: Option<u64>,
    /// `idempotent`: a reconnecting client may send it again.
    idempotent: bool,
}

/// Removes `#[rpc(...)]` attributes; returns what they say.
fn take_rpc_attrs(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> RpcArgs {
    let mut args = RpcArgs::default();
    attrs.retain(|attr| {
        if !attr.path().is_ident("rpc") {
            return true;
        }
        if !matches!(attr.meta, Meta::List(_)) {
            errors.at(
                attr,
                "expected `#[rpc(name = \"...\")]`: `#[rpc]` takes arguments",
            );
            return false;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(lit.span(), "a wire name cannot be empty"));
                }
                if args.name.is_some() {
                    return Err(meta.error("`name` is given twice"));
                }
                args.name = Some(lit);
                Ok(())
            } else if meta.path.is_ident("timeout_ms") {
                let lit: LitInt = meta.value()?.parse()?;
                let ms: u64 = lit.base10_parse()?;
                if ms == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`timeout_ms` must be at least 1 (leave it out for the server's default)",
                    ));
                }
                if args.timeout_ms.is_some() {
                    return Err(meta.error("`timeout_ms` is given twice"));
                }
                args.timeout_ms = Some(ms);
                Ok(())
            } else if meta.path.is_ident("idempotent") {
                if args.idempotent {
                    return Err(meta.error("`idempotent` is given twice"));
                }
                args.idempotent = true;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown `#[rpc]` key `{}`; expected `name = \"...\"`, `timeout_ms = N` or `idempotent`",
                    path_text(&meta.path)
                )))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
        false
    });
    args
}

#[cfg(test)]
mod tests;

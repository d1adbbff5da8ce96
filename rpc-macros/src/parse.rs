//! Parse and check: the macro's input (attribute arguments and the trait) to a
//! [`Service`] model. Every rule violation becomes a spanned `syn::Error`;
//! errors are collected so one compile shows all of them.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Item, ItemTrait, LitInt, LitStr, Meta, Path, PathArguments,
    ReturnType, Signature, TraitItem, Type, TypeParamBound,
};

use crate::model::{Kind, Method, Service};

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
            kind,
            docs,
        });
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
            } else {
                Err(meta.error(format!(
                    "unknown `#[rpc]` key `{}`; expected `name = \"...\"` or `timeout_ms = N`",
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

/// What the arguments after `&self, ctx: Context` say about the call kind.
enum Inputs {
    /// `req: T`: unary or server streaming.
    Request(Type),
    /// `input: Incoming<T>`: client streaming or duplex.
    Incoming(Type),
    /// `req: T, input: RawReader`: raw.
    Raw(Type),
}

/// What the return type says about the call kind.
enum Output {
    /// `async fn ... -> Result<T, RpcError>` (or `fn -> impl Future<Output = ...>`).
    Future(Type),
    /// `fn ... -> impl Stream<Item = Result<T, RpcError>>`: the item's `T`.
    Stream(Type),
}

/// Checks one method's signature against the rules; returns its kind.
fn check_method(sig: &Signature, errors: &mut Errors) -> Option<Kind> {
    let mut ok = true;
    let mut fail = |tokens: &dyn ToTokens, msg: &str| {
        errors.at(tokens, msg);
        ok = false;
    };
    if let Some(c) = &sig.constness {
        fail(&c, "an RPC method cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        fail(&u, "an RPC method cannot be `unsafe`");
    }
    if let Some(a) = &sig.abi {
        fail(&a, "an RPC method cannot have an `extern` ABI");
    }
    if let Some(v) = &sig.variadic {
        fail(&v, "an RPC method cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        fail(
            &sig.generics,
            "an RPC method cannot be generic: its request and response types must be \
             concrete to be (de)serialized",
        );
    }
    if !ok {
        return None;
    }

    let args: Vec<&FnArg> = sig.inputs.iter().collect();
    let parens = sig.paren_token.span.join();

    // `&self`
    match args.first() {
        Some(FnArg::Receiver(r)) if is_shared_self(&r.ty) => {}
        Some(FnArg::Receiver(r)) => {
            errors.at(
                r,
                "an RPC method takes `&self` (not `self`, `&mut self` or a typed receiver): \
                 the server calls it on a shared instance",
            );
            return None;
        }
        _ => {
            errors.at(
                at_span(parens),
                "an RPC method takes `&self` first: `fn name(&self, ctx: Context, ...)`",
            );
            return None;
        }
    }

    // `ctx: Context`
    match args.get(1) {
        Some(FnArg::Typed(pt)) if last_ident_is(&pt.ty, "Context") => {}
        Some(FnArg::Typed(pt)) if matches!(&*pt.ty, Type::Reference(r) if last_ident_is(&r.elem, "Context")) =>
        {
            errors.at(
                &pt.ty,
                "take the `Context` by value (`ctx: Context`); it is cheap to clone",
            );
            return None;
        }
        Some(arg) => {
            errors.at(
                arg_type_span(arg),
                "an RPC method takes the call's `Context` after `&self`: \
                 `fn name(&self, ctx: Context, ...)`",
            );
            return None;
        }
        None => {
            errors.at(
                at_span(parens),
                "an RPC method takes the call's `Context` after `&self`: \
                 `fn name(&self, ctx: Context, ...)`",
            );
            return None;
        }
    }

    let inputs = check_inputs(&args[2..], parens, errors)?;
    let output = check_output(sig, errors)?;

    let kind = match (inputs, output) {
        (Inputs::Request(req), Output::Future(ret)) => {
            let resp = result_ok_type(&ret, errors)?;
            Kind::Unary { req, resp }
        }
        (Inputs::Request(req), Output::Stream(item)) => Kind::ServerStreaming { req, item },
        (Inputs::Incoming(msg), Output::Future(ret)) => {
            let resp = result_ok_type(&ret, errors)?;
            Kind::ClientStreaming { msg, resp }
        }
        (Inputs::Incoming(msg), Output::Stream(item)) => Kind::Duplex { msg, item },
        (Inputs::Raw(req), Output::Future(ret)) => {
            let ok_ty = result_ok_type(&ret, errors)?;
            let leading = match &ok_ty {
                Type::Tuple(t) if t.elems.len() == 2 && last_ident_is(&t.elems[1], "RawBody") => {
                    t.elems[0].clone()
                }
                _ => {
                    errors.at(
                        &ok_ty,
                        "a raw method returns `Result<(T, RawBody), RpcError>`: \
                         the leading response and the bytes that follow",
                    );
                    return None;
                }
            };
            Kind::Raw { req, leading }
        }
        (Inputs::Raw(_), Output::Stream(_)) => {
            errors.at(
                output_span(sig),
                "a raw method is an `async fn` returning `Result<(T, RawBody), RpcError>`, \
                 not a stream",
            );
            return None;
        }
    };
    Some(kind)
}

/// The arguments after the `Context`.
fn check_inputs(rest: &[&FnArg], parens: Span, errors: &mut Errors) -> Option<Inputs> {
    let typed: Vec<&Type> = rest
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(pt) => Some(&*pt.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    for ty in &typed {
        match ty {
            Type::Reference(_) => {
                errors.at(
                    ty,
                    "take the request by value: it is deserialized for each call",
                );
                return None;
            }
            Type::ImplTrait(_) => {
                errors.at(
                    ty,
                    "an RPC argument needs a concrete type, not `impl Trait`",
                );
                return None;
            }
            _ => {}
        }
    }
    let too_many = |errors: &mut Errors, ty: &Type, what: &str| {
        errors.at(ty, format!("too many arguments: {what}"));
    };
    match typed.as_slice() {
        [] => {
            errors.at(
                at_span(parens),
                "missing the request argument after the `Context`: `req: T` (unary, server \
                 streaming), `input: Incoming<T>` (client streaming, duplex) or \
                 `req: T, input: RawReader` (raw)",
            );
            None
        }
        [ty] if last_ident_is(ty, "RawReader") => {
            errors.at(
                ty,
                "a raw method takes its header params before the `RawReader`: \
                 `fn name(&self, ctx: Context, req: T, input: RawReader)`",
            );
            None
        }
        [ty] => match incoming_msg(ty) {
            Some(msg) => Some(Inputs::Incoming(msg)),
            None => Some(Inputs::Request((*ty).clone())),
        },
        [first, _, ..] if incoming_msg(first).is_some() => {
            too_many(
                errors,
                typed[1],
                "`Incoming<T>` is the only request argument of a streaming method",
            );
            None
        }
        [req, raw] if last_ident_is(raw, "RawReader") => Some(Inputs::Raw((*req).clone())),
        [_, second] => {
            too_many(
                errors,
                second,
                "after `ctx: Context` comes one request argument; only a raw method adds a second, \
                 `input: RawReader`",
            );
            None
        }
        [_, _, third, ..] => {
            too_many(
                errors,
                third,
                "a raw method takes `req: T, input: RawReader` after `ctx: Context`",
            );
            None
        }
    }
}

/// The return type, read together with `async`.
fn check_output(sig: &Signature, errors: &mut Errors) -> Option<Output> {
    let ret = match &sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => None,
    };
    let future_output = ret.and_then(impl_future_output);
    let stream_item = ret.and_then(impl_stream_item);
    match (&sig.asyncness, ret) {
        (Some(a), Some(_)) if stream_item.is_some() => {
            errors.at(
                a,
                "a streaming method is a plain `fn` returning `impl Stream<Item = \
                 Result<T, RpcError>> + Send + 'static`, not an `async fn`",
            );
            None
        }
        (Some(_), Some(ty)) => Some(Output::Future(ty.clone())),
        (Some(_), None) => {
            errors.at(
                &sig.ident,
                "an `async` RPC method returns `Result<T, RpcError>`",
            );
            None
        }
        (None, Some(_)) if future_output.is_some() => future_output.map(Output::Future),
        (None, Some(_)) if stream_item.is_some() => {
            let item = stream_item?;
            result_ok_type(&item, errors).map(Output::Stream)
        }
        (None, Some(ty)) if last_ident_is(ty, "Result") => {
            errors.at(
                sig.fn_token,
                "an RPC method returning `Result` must be an `async fn`",
            );
            None
        }
        (None, _) => {
            errors.at(
                output_span(sig),
                "an RPC method is an `async fn` returning `Result<T, RpcError>`, or a plain \
                 `fn` returning `impl Stream<Item = Result<T, RpcError>> + Send + 'static`",
            );
            None
        }
    }
}

/// `T` of `Result<T, RpcError>`; reports anything else.
fn result_ok_type(ty: &Type, errors: &mut Errors) -> Option<Type> {
    let Some(args) = last_segment_args(ty, "Result") else {
        errors.at(
            ty,
            "expected `Result<T, RpcError>`: a handler answers with a value or an `RpcError`",
        );
        return None;
    };
    let types: Vec<&Type> = args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok, err] if last_ident_is(err, "RpcError") => Some((*ok).clone()),
        [_, err] => {
            errors.at(
                err,
                "the error type must be `RpcError`: it is what goes back to the caller",
            );
            None
        }
        _ => {
            errors.at(
                ty,
                "expected `Result<T, RpcError>` with both type arguments written out",
            );
            None
        }
    }
}

/// `X` of `impl Future<Output = X> + ...`.
fn impl_future_output(ty: &Type) -> Option<Type> {
    impl_trait_assoc(ty, "Future", "Output")
}

/// `X` of `impl Stream<Item = X> + ...`.
fn impl_stream_item(ty: &Type) -> Option<Type> {
    impl_trait_assoc(ty, "Stream", "Item")
}

fn impl_trait_assoc(ty: &Type, trait_name: &str, assoc: &str) -> Option<Type> {
    let Type::ImplTrait(it) = ty else { return None };
    it.bounds.iter().find_map(|b| {
        let TypeParamBound::Trait(tb) = b else {
            return None;
        };
        let seg = tb.path.segments.last()?;
        if seg.ident != trait_name {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &seg.arguments else {
            return None;
        };
        args.args.iter().find_map(|a| match a {
            GenericArgument::AssocType(at) if at.ident == assoc => Some(at.ty.clone()),
            _ => None,
        })
    })
}

/// `T` of `Incoming<T>`.
fn incoming_msg(ty: &Type) -> Option<Type> {
    let args = last_segment_args(ty, "Incoming")?;
    match args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(t)] => Some(t.clone()),
        _ => None,
    }
}

fn last_segment_args<'a>(
    ty: &'a Type,
    name: &str,
) -> Option<&'a syn::punctuated::Punctuated<GenericArgument, syn::Token![,]>> {
    let Type::Path(tp) = ty else { return None };
    let seg = tp.path.segments.last()?;
    if seg.ident != name {
        return None;
    }
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => Some(&a.args),
        _ => None,
    }
}

/// Whether `ty` is a path whose last segment is `name` (e.g. `Context`,
/// `strand::Context`).
fn last_ident_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(tp) if tp.qself.is_none() => {
            tp.path.segments.last().is_some_and(|s| s.ident == name)
        }
        Type::Group(g) => last_ident_is(&g.elem, name),
        Type::Paren(p) => last_ident_is(&p.elem, name),
        _ => false,
    }
}

/// `&self` / `self: &Self`.
fn is_shared_self(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => r.mutability.is_none() && last_ident_is(&r.elem, "Self"),
        _ => false,
    }
}

fn arg_type_span(arg: &FnArg) -> TokenStream {
    match arg {
        FnArg::Typed(pt) => pt.ty.to_token_stream(),
        FnArg::Receiver(r) => r.to_token_stream(),
    }
}

fn output_span(sig: &Signature) -> TokenStream {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => sig.ident.to_token_stream(),
    }
}

/// Tokens that carry `span`, for errors at a single span.
fn at_span(span: Span) -> TokenStream {
    quote_spanned!(span=> _)
}

fn path_text(path: &Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}

/// A span naming a non-trait item (its name where it has one).
fn item_name_span(item: &Item) -> Span {
    match item {
        Item::Struct(i) => i.ident.span(),
        Item::Enum(i) => i.ident.span(),
        Item::Union(i) => i.ident.span(),
        Item::Fn(i) => i.sig.ident.span(),
        Item::Mod(i) => i.ident.span(),
        Item::Type(i) => i.ident.span(),
        Item::Const(i) => i.ident.span(),
        Item::Static(i) => i.ident.span(),
        Item::TraitAlias(i) => i.ident.span(),
        Item::Impl(i) => i.impl_token.span,
        other => other.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn kind_of(method: TokenStream) -> Result<&'static str, String> {
        let input = quote!(trait T { #method });
        match parse(TokenStream::new(), input) {
            Ok(s) => Ok(s.methods[0].kind.variant()),
            Err((e, _)) => Err(e.to_string()),
        }
    }

    #[test]
    fn kinds_follow_signatures() {
        assert_eq!(
            kind_of(quote!(
                async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
            )),
            Ok("Unary")
        );
        assert_eq!(
            kind_of(quote!(
                fn a(
                    &self,
                    ctx: Context,
                    r: A,
                ) -> impl Stream<Item = Result<B, RpcError>> + Send + 'static;
            )),
            Ok("ServerStreaming")
        );
        assert_eq!(
            kind_of(quote!(
                async fn a(&self, ctx: Context, r: Incoming<A>) -> Result<B, RpcError>;
            )),
            Ok("ClientStreaming")
        );
        assert_eq!(
            kind_of(quote!(
                fn a(
                    &self,
                    ctx: strand::Context,
                    r: strand::Incoming<A>,
                ) -> impl futures::Stream<Item = Result<B, strand::RpcError>>;
            )),
            Ok("Duplex")
        );
        assert_eq!(
            kind_of(quote!(
                async fn a(
                    &self,
                    ctx: Context,
                    r: A,
                    i: RawReader,
                ) -> Result<(B, RawBody), RpcError>;
            )),
            Ok("Raw")
        );
        assert_eq!(
            kind_of(quote!(
                fn a(&self, ctx: Context, r: A)
                    -> impl Future<Output = Result<B, RpcError>> + Send;
            )),
            Ok("Unary")
        );
    }

    #[test]
    fn wrong_signatures_are_reported() {
        let cases = [
            (
                quote!(
                    async fn a(ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "`&self` first",
            ),
            (
                quote!(
                    async fn a(&mut self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "takes `&self`",
            ),
            (
                quote!(
                    async fn a(&self, r: A) -> Result<B, RpcError>;
                ),
                "`Context` after `&self`",
            ),
            (
                quote!(
                    async fn a(&self, ctx: &Context, r: A) -> Result<B, RpcError>;
                ),
                "by value",
            ),
            (
                quote!(
                    async fn a(&self, ctx: Context) -> Result<B, RpcError>;
                ),
                "missing the request",
            ),
            (
                quote!(
                    async fn a(&self, ctx: Context, r: A, s: B) -> Result<B, RpcError>;
                ),
                "too many",
            ),
            (
                quote!(
                    async fn a(&self, ctx: Context, r: A) -> Option<B>;
                ),
                "expected `Result<T, RpcError>`",
            ),
            (
                quote!(
                    async fn a(&self, ctx: Context, r: A) -> Result<B, String>;
                ),
                "must be `RpcError`",
            ),
            (
                quote!(
                    fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "must be an `async fn`",
            ),
            (
                quote!(
                    async fn a(
                        &self,
                        ctx: Context,
                        r: A,
                    ) -> impl Stream<Item = Result<B, RpcError>>;
                ),
                "not an `async fn`",
            ),
            (
                quote!(
                    async fn a<T>(&self, ctx: Context, r: T) -> Result<B, RpcError>;
                ),
                "cannot be generic",
            ),
            (
                quote!(
                    async fn a(&self, ctx: Context, r: A, i: RawReader) -> Result<B, RpcError>;
                ),
                "raw method returns",
            ),
            (
                quote!(
                    #[rpc(nme = "x")]
                    async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "unknown `#[rpc]` key `nme`",
            ),
            (
                quote!(
                    #[rpc(timeout_ms = 0)]
                    async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "at least 1",
            ),
            (
                quote!(
                    #[rpc(name = "")]
                    async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "cannot be empty",
            ),
            (
                quote!(
                    #[rpc]
                    async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "takes arguments",
            ),
            (
                quote!(
                    #[cfg(test)]
                    async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "`cfg` on an RPC method is not supported",
            ),
            (
                quote!(
                    async fn new(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                ),
                "generated code",
            ),
        ];
        for (method, expected) in cases {
            let err = kind_of(method.clone()).unwrap_err();
            assert!(err.contains(expected), "{method}: {err}");
        }
    }

    #[test]
    fn duplicate_wire_names_are_reported() {
        let input = quote!(
            trait T {
                async fn a(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                #[rpc(name = "a")]
                async fn b(&self, ctx: Context, r: A) -> Result<B, RpcError>;
            }
        );
        let Err((err, _)) = parse(TokenStream::new(), input) else {
            panic!("accepted a duplicate")
        };
        assert!(err.to_string().contains("duplicate wire name `a`"));
    }

    #[test]
    fn wire_names_default_to_the_rust_name() {
        let input = quote!(
            trait T {
                async fn r#type(&self, ctx: Context, r: A) -> Result<B, RpcError>;
                #[rpc(name = "sumStream")]
                async fn sum_stream(&self, ctx: Context, r: A) -> Result<B, RpcError>;
            }
        );
        let s = parse(TokenStream::new(), input).expect("valid");
        let names: Vec<_> = s.methods.iter().map(|m| m.wire_name.as_str()).collect();
        assert_eq!(names, ["type", "sumStream"]);
    }
}

//! The signature rules: what a method's inputs and output say about its call
//! kind, and the spanned error for each rule broken.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{FnArg, ReturnType, Signature, Type};

use super::types::*;
use super::Errors;
use crate::model::Kind;

/// What the arguments after `&self, ctx: Context` say about the call kind.
pub(super) enum Inputs {
    /// `req: T`: unary or server streaming.
    Request(Type),
    /// `input: Incoming<T>`: client streaming or duplex.
    Incoming(Type),
    /// `req: T, input: RawReader`: raw.
    Raw(Type),
}

/// What the return type says about the call kind.
pub(super) enum Output {
    /// `async fn ... -> Result<T, RpcError>` (or `fn -> impl Future<Output = ...>`).
    Future(Type),
    /// `fn ... -> impl Stream<Item = Result<T, RpcError>>`: the item's `T`.
    Stream(Type),
}

/// Checks one method's signature against the rules; returns its kind.
pub(super) fn check_method(sig: &Signature, errors: &mut Errors) -> Option<Kind> {
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
pub(super) fn check_inputs(rest: &[&FnArg], parens: Span, errors: &mut Errors) -> Option<Inputs> {
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
pub(super) fn check_output(sig: &Signature, errors: &mut Errors) -> Option<Output> {
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

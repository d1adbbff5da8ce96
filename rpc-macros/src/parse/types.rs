//! Reading types by shape: `Result<T, E>`, `impl Future<Output = T>`,
//! `impl Stream<Item = T>`, `Incoming<T>`, and the spans errors point at.

use proc_macro2::{Span, TokenStream};
use quote::{quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Item, Path, PathArguments, ReturnType, Signature, Type, TypeParamBound,
};

use super::Errors;

/// `T` of `Result<T, RpcError>`; reports anything else.
pub(super) fn result_ok_type(ty: &Type, errors: &mut Errors) -> Option<Type> {
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
pub(super) fn impl_future_output(ty: &Type) -> Option<Type> {
    impl_trait_assoc(ty, "Future", "Output")
}

/// `X` of `impl Stream<Item = X> + ...`.
pub(super) fn impl_stream_item(ty: &Type) -> Option<Type> {
    impl_trait_assoc(ty, "Stream", "Item")
}

pub(super) fn impl_trait_assoc(ty: &Type, trait_name: &str, assoc: &str) -> Option<Type> {
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
pub(super) fn incoming_msg(ty: &Type) -> Option<Type> {
    let args = last_segment_args(ty, "Incoming")?;
    match args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(t)] => Some(t.clone()),
        _ => None,
    }
}

pub(super) fn last_segment_args<'a>(
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
pub(super) fn last_ident_is(ty: &Type, name: &str) -> bool {
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
pub(super) fn is_shared_self(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => r.mutability.is_none() && last_ident_is(&r.elem, "Self"),
        _ => false,
    }
}

pub(super) fn arg_type_span(arg: &FnArg) -> TokenStream {
    match arg {
        FnArg::Typed(pt) => pt.ty.to_token_stream(),
        FnArg::Receiver(r) => r.to_token_stream(),
    }
}

pub(super) fn output_span(sig: &Signature) -> TokenStream {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => sig.ident.to_token_stream(),
    }
}

/// Tokens that carry `span`, for errors at a single span.
pub(super) fn at_span(span: Span) -> TokenStream {
    quote_spanned!(span=> _)
}

pub(super) fn path_text(path: &Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}

/// A span naming a non-trait item (its name where it has one).
pub(super) fn item_name_span(item: &Item) -> Span {
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

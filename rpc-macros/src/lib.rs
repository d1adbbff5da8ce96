//! The `#[strand::service]` macro.

use proc_macro::TokenStream;

mod expand;
mod model;
mod parse;

/// Turns a trait into a strand service.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(attr.into(), item.into()) {
        Ok(service) => expand::expand(&service).into(),
        Err((err, item)) => {
            let err = err.to_compile_error();
            quote::quote!(#err #item).into()
        }
    }
}

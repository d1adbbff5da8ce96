//! The `#[strand::service]` macro (in progress: currently passes the trait through).

use proc_macro::TokenStream;

/// Turns a trait into a strand service (in progress).
#[proc_macro_attribute]
pub fn service(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

//! The parser's rules on hand-written inputs.

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
            async fn a(&self, ctx: Context, r: A, i: RawReader) -> Result<(B, RawBody), RpcError>;
        )),
        Ok("Raw")
    );
    assert_eq!(
        kind_of(quote!(
            fn a(&self, ctx: Context, r: A) -> impl Future<Output = Result<B, RpcError>> + Send;
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
                async fn a(&self, ctx: Context, r: A) -> impl Stream<Item = Result<B, RpcError>>;
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
fn a_method_named_like_a_raw_methods_pipelined_client_method_is_reported() {
    let input = quote!(
        trait T {
            async fn upload(
                &self,
                ctx: Context,
                r: A,
                input: RawReader,
            ) -> Result<(B, RawBody), RpcError>;
            async fn upload_pipelined(&self, ctx: Context, r: A) -> Result<B, RpcError>;
        }
    );
    let Err((err, _)) = parse(TokenStream::new(), input) else {
        panic!("accepted a method that clashes with a generated one")
    };
    assert!(
        err.to_string().contains(
            "`upload_pipelined` is also the pipelined client method of the raw method `upload`"
        ),
        "{err}"
    );
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

#[test]
fn idempotent_is_read_per_method_and_once() {
    let input = quote!(
        trait T {
            #[rpc(idempotent)]
            async fn get(&self, ctx: Context, r: A) -> Result<B, RpcError>;
            #[rpc(name = "put", timeout_ms = 5)]
            async fn put(&self, ctx: Context, r: A) -> Result<B, RpcError>;
        }
    );
    let s = parse(TokenStream::new(), input).expect("valid");
    let marked: Vec<_> = s.methods.iter().map(|m| m.idempotent).collect();
    assert_eq!(marked, [true, false]);
    let twice = quote!(
        trait T {
            #[rpc(idempotent, idempotent)]
            async fn get(&self, ctx: Context, r: A) -> Result<B, RpcError>;
        }
    );
    let Err((err, _)) = parse(TokenStream::new(), twice) else {
        panic!("accepted `idempotent` twice")
    };
    assert!(
        err.to_string().contains("`idempotent` is given twice"),
        "{err}"
    );
}

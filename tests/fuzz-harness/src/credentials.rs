//! `credentials`: the `authorization` parser (`rpc-core/src/middleware.rs`,
//! `Credentials::parse` and its base64 decoder).
//!
//! The input is read twice. As a header value: `Bearer` only with a
//! non-empty token, `Basic` only with a user (no colon) and password that
//! re-encode to the same credentials, anything else kept as it was. As
//! parts (scheme case, user, password, padding, spaces) that build a header:
//! it parses back to exactly those parts.

use arbitrary::{Arbitrary, Unstructured};
use strand_rpc_core::middleware::Credentials;

/// Standard base64, with or without padding.
fn base64(bytes: &[u8], pad: bool) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
        if pad {
            out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
        }
    }
    out
}

/// `scheme` with its letters' case flipped where `mask` has a bit set.
fn recase(scheme: &str, mask: u8) -> String {
    scheme
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 8) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[derive(Arbitrary, Debug)]
struct Parts {
    basic: bool,
    case: u8,
    spaces: u8,
    pad: bool,
    user: String,
    secret: String,
}

/// Runs one input.
pub fn credentials(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (scheme, rest) = text.split_once(' ').unwrap_or((&text, ""));
    match Credentials::parse(Some(&text)) {
        Credentials::None => panic!("a value parsed as no credentials"),
        Credentials::Bearer(token) => {
            assert!(scheme.eq_ignore_ascii_case("bearer"), "{text:?}");
            assert!(!token.is_empty());
            assert_eq!(token, rest.trim());
        }
        Credentials::Basic { user, password } => {
            assert!(scheme.eq_ignore_ascii_case("basic"), "{text:?}");
            assert!(!user.contains(':'), "{text:?}");
            let again = format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes(), true)
            );
            assert_eq!(
                Credentials::parse(Some(&again)),
                Credentials::Basic { user, password }
            );
        }
        Credentials::Other(value) => assert_eq!(value, text),
    }
    assert_eq!(Credentials::parse(None), Credentials::None);

    let Ok(parts) = Parts::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let spaces = " ".repeat(1 + usize::from(parts.spaces % 3));
    if parts.basic {
        let user: String = parts.user.chars().filter(|c| *c != ':').collect();
        let encoded = base64(format!("{user}:{}", parts.secret).as_bytes(), parts.pad);
        let header = format!("{}{spaces}{encoded}", recase("basic", parts.case));
        assert_eq!(
            Credentials::parse(Some(&header)),
            Credentials::Basic {
                user,
                password: parts.secret
            },
            "{header:?}"
        );
    } else {
        let header = format!("{}{spaces}{}", recase("bearer", parts.case), parts.secret);
        let expected = match parts.secret.trim() {
            "" => Credentials::Other(header.clone()),
            token => Credentials::Bearer(token.to_string()),
        };
        assert_eq!(Credentials::parse(Some(&header)), expected, "{header:?}");
    }
}

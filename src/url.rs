//! URLs: the [`Scheme`] a URL names, and parsing and printing
//! `ws://`, `wss://` (`wss+h2://`: over HTTP/2) and `quic://` URLs.

use std::fmt;

use crate::Error;

/// The carrier a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `ws://`: streams multiplexed over a plain WebSocket.
    Ws,
    /// `wss://`: the same over TLS.
    Wss,
    /// `quic://`: one QUIC bidi stream per call (always TLS 1.3).
    Quic,
}

impl Scheme {
    /// `"ws"`, `"wss"` or `"quic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Quic => "quic",
        }
    }

    /// Whether the carrier uses TLS.
    pub fn is_tls(self) -> bool {
        !matches!(self, Scheme::Ws)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Scheme {
    /// The cargo feature that builds this carrier.
    pub(crate) fn feature(self) -> &'static str {
        match self {
            Scheme::Ws | Scheme::Wss => "ws",
            Scheme::Quic => "quic",
        }
    }
}

pub(crate) fn format_url(scheme: Scheme, host: &str, port: u16, path: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let path = if scheme == Scheme::Quic || path == "/" {
        ""
    } else {
        path
    };
    format!("{scheme}://{host}:{port}{path}")
}

/// The scheme of `wss` over HTTP/2 (RFC 8441) for a client: `wss+h2://`.
pub(crate) const WSS_H2: &str = "wss+h2";

/// Whether `url` names `wss` over HTTP/2 ([`WSS_H2`]).
#[cfg(feature = "ws")]
pub(crate) fn is_wss_h2(url: &str) -> bool {
    url.get(..WSS_H2.len() + 3)
        .is_some_and(|s| s.eq_ignore_ascii_case("wss+h2://"))
}

pub(crate) fn parse_url(url: &str) -> Result<(Scheme, String, u16, String), Error> {
    let uri: http::Uri = url.parse().map_err(|e| Error::url(url, format!("{e}")))?;
    let scheme = match uri.scheme_str() {
        Some("ws") => Scheme::Ws,
        Some("wss") | Some(WSS_H2) => Scheme::Wss,
        Some("quic") => Scheme::Quic,
        Some(other) => {
            return Err(Error::url(
                url,
                format!("unknown scheme {other:?}: use ws, wss, wss+h2 or quic"),
            ))
        }
        None => return Err(Error::url(url, "no scheme: use ws://, wss:// or quic://")),
    };
    let authority = uri.authority().ok_or_else(|| Error::url(url, "no host"))?;
    if authority.as_str().contains('@') {
        return Err(Error::url(url, "user info is not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(Error::url(url, "no host"));
    }
    // `http::Uri` reports an out-of-range port as no port: read it ourselves.
    let raw = authority.as_str();
    let after_host = match raw.find(']') {
        Some(end) if raw.starts_with('[') => &raw[end + 1..],
        _ => raw,
    };
    let explicit = match after_host.rfind(':') {
        Some(colon) => {
            let port = &after_host[colon + 1..];
            if port.is_empty() {
                return Err(Error::url(url, "empty port"));
            }
            Some(
                port.parse::<u16>()
                    .map_err(|_| Error::url(url, format!("invalid port {port:?}")))?,
            )
        }
        None => None,
    };
    let port = match (explicit, scheme) {
        (Some(port), _) => port,
        (None, Scheme::Ws) => 80,
        (None, Scheme::Wss) => 443,
        (None, Scheme::Quic) => {
            return Err(Error::url(url, "missing port: quic has no default port"))
        }
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if scheme == Scheme::Quic && path != "/" && !path.is_empty() {
        return Err(Error::url(url, "a quic url has no path"));
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((scheme, host, port, path.to_owned()))
}

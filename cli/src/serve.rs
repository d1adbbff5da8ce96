//! `strand serve`: the demo service on ws, wss and quic listeners, and the
//! browser demo page (`GET /demo`) on the ws and wss ones.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use strand::tls::Identity;
use strand::ws::{HttpHandler, HttpResponse};
use strand::{Endpoint, Serving};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Listen for ws on ADDR (e.g. 127.0.0.1:8080; port 0 for any). Without
    /// any of --ws/--wss/--quic, all three listen on loopback, ephemeral ports.
    #[arg(long, value_name = "ADDR")]
    ws: Option<String>,
    /// Listen for wss on ADDR.
    #[arg(long, value_name = "ADDR")]
    wss: Option<String>,
    /// Listen for quic on ADDR.
    #[arg(long, value_name = "ADDR")]
    quic: Option<String>,
    /// PEM certificate chain for wss and quic. Without --cert/--key a
    /// self-signed certificate (localhost, 127.0.0.1, ::1) is generated and
    /// its PEM written to a file whose path is printed.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Require `Bearer TOKEN` on every call.
    #[arg(long)]
    token: Option<String>,
    /// With --token: hand `Bearer FRESH` back with every authenticated call
    /// (`result.metadata.authorization`) and accept it from then on (whoami
    /// then names the identity `refreshed`).
    #[arg(long, value_name = "FRESH", requires = "token")]
    refresh_token: Option<String>,
    /// On Ctrl-C (shut down) or SIGTERM (drain: strand clients are told to
    /// go elsewhere first), how long running calls may take to finish, in
    /// milliseconds.
    #[arg(long, default_value_t = 5000)]
    grace: u64,
    /// Serve the server's metrics in the Prometheus text format at
    /// `http://ADDR/metrics` (port 0 for any; docs/deploy.md, "Metrics").
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

fn url(scheme: &str, addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("{scheme}://{addr}")
    }
}

pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    let mut urls = Vec::new();
    if let Some(a) = &args.ws {
        urls.push(url("ws", a));
    }
    if let Some(a) = &args.wss {
        urls.push(url("wss", a));
    }
    if let Some(a) = &args.quic {
        urls.push(url("quic", a));
    }
    if urls.is_empty() {
        urls = vec![
            "ws://127.0.0.1:0".into(),
            "wss://127.0.0.1:0".into(),
            "quic://127.0.0.1:0".into(),
        ];
    }
    let mut endpoints = Vec::new();
    for url in &urls {
        match Endpoint::from_url(url) {
            Ok(e) => endpoints.push(e),
            Err(e) => return crate::fail(e),
        }
    }
    let needs_tls = endpoints.iter().any(|e| e.scheme().is_tls());
    let mut cert_file = None;
    if needs_tls {
        let identity = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => match Identity::from_pem_files(cert, key) {
                Ok(identity) => identity,
                Err(e) => return crate::fail(e),
            },
            _ => {
                let identity = match Identity::dev() {
                    Ok(identity) => identity,
                    Err(e) => return crate::fail(format!("generating a certificate: {e}")),
                };
                let path = match write_private(identity.cert_pem().as_bytes()) {
                    Ok(path) => path,
                    Err(e) => return crate::fail(format!("writing the certificate: {e}")),
                };
                let _ = writeln!(std::io::stdout().lock(), "certificate {}", path.display());
                cert_file = Some(path);
                identity
            }
        };
        endpoints = endpoints
            .into_iter()
            .map(|e| {
                if e.scheme().is_tls() {
                    e.with_identity(identity.clone())
                } else {
                    e
                }
            })
            .collect();
    }
    endpoints = endpoints
        .into_iter()
        .map(|e| e.with_http_handler(demo_page()))
        .collect();

    // Before any server runs: a recorder installed later misses nothing
    // only if nothing was recorded before it.
    let metrics = match &args.metrics {
        Some(addr) => match crate::metrics_http::start(addr).await {
            Ok(bound) => Some(bound),
            Err(e) => {
                remove(cert_file);
                return crate::fail(e);
            }
        },
        None => None,
    };
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            remove(cert_file);
            return crate::fail(format!("installing signal handlers: {e}"));
        }
    };
    let server = match (&args.token, &args.refresh_token) {
        (Some(token), Some(fresh)) => strand::demo::server_with_refresh(token, fresh),
        (token, _) => strand::demo::server(token.as_deref()),
    };
    let serving = match Serving::start(&server, &endpoints).await {
        Ok(serving) => serving,
        Err(e) => {
            remove(cert_file);
            return crate::fail(e);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        for url in serving.urls() {
            let _ = writeln!(out, "listening {url}");
        }
        for url in serving.urls() {
            if let Some(page) = demo_url(url) {
                let _ = writeln!(out, "demo {page}");
            }
        }
        if let Some(addr) = metrics {
            let _ = writeln!(out, "metrics http://{addr}/metrics");
        }
        let _ = out.flush();
    }
    tracing::info!("serving; Ctrl-C to stop");
    let grace = Duration::from_millis(args.grace);
    match signals.wait().await {
        // The deploy signal: connected strand clients are told to move to
        // another server first (docs/deploy.md).
        Signal::Terminate => {
            tracing::info!("draining");
            serving.drain(grace).await;
        }
        Signal::Interrupt => {
            tracing::info!("shutting down");
            serving.shutdown(grace).await;
        }
    }
    remove(cert_file);
    ExitCode::SUCCESS
}

/// The browser demo page (cli/demo): it calls every kind over the
/// WebSocket it was served from, with the TypeScript client's bundle.
/// Embedded files live inside this crate, so that it packages on its own.
const DEMO_HTML: &str = include_str!("../demo/index.html");
/// The TypeScript client, minified (written here by clients/ts, `npm run
/// build`).
const DEMO_CLIENT: &str = include_str!("../demo/strand-client.min.js");

/// Answers `GET /demo` (and `/demo/`) with the demo page and
/// `GET /demo/strand-client.min.js` with the client; every other plain
/// request keeps its `426`.
fn demo_page() -> HttpHandler {
    HttpHandler::new(|request| match request.uri.path() {
        "/demo" | "/demo/" => Some(HttpResponse::ok("text/html; charset=utf-8", DEMO_HTML)),
        "/demo/strand-client.min.js" => Some(HttpResponse::ok(
            "text/javascript; charset=utf-8",
            DEMO_CLIENT,
        )),
        _ => None,
    })
}

/// `ws://host:port[/path]` → `http://host:port/demo` (https for wss); `None`
/// for other carriers.
fn demo_url(url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("ws://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("wss://") {
        ("https", rest)
    } else {
        return None;
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    Some(format!("{scheme}://{authority}/demo"))
}

/// Removes the certificate and its private directory.
fn remove(file: Option<PathBuf>) {
    if let Some(path) = file {
        let _ = std::fs::remove_file(&path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Writes `pem` as `cert.pem` in a new directory of the temp dir that only
/// we can enter (mode 0700), named `strand-serve-<pid>-<time>-<128 random
/// bits>`: nobody can guess it to plant a file or a link there first, the
/// directory is created exclusively (an existing one is an error, not
/// reused), and so is the file (mode 0600). [`remove`] takes both away.
fn write_private(pem: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let mut random = [0u8; 16];
    strand::tls::provider()
        .secure_random
        .fill(&mut random)
        .map_err(|_| std::io::Error::other("no random bytes for the directory name"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir =
        std::env::temp_dir().join(format!("strand-serve-{}-{nanos}-{hex}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir)?;
    let path = dir.join("cert.pem");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&path).and_then(|mut f| f.write_all(pem));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
        return Err(e);
    }
    Ok(path)
}

/// SIGINT (Ctrl-C) and SIGTERM handlers, installed before the server
/// announces itself so that a signal sent right after the `listening` lines
/// is never taken by the default action.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn wait(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Signal::Interrupt,
                _ = self.terminate.recv() => Signal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

/// Which signal asked the server to stop.
enum Signal {
    /// SIGINT (Ctrl-C): shut down.
    Interrupt,
    /// SIGTERM: drain.
    #[cfg_attr(not(unix), allow(dead_code))]
    Terminate,
}

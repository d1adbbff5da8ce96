//! `strand call`: one call of any kind, results as JSON lines.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use serde_json::Value;
use strand::core::transport::CloseCode;
use strand::{Client, ClientError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::connect::ConnectArgs;

/// Longest stdin line accepted as one message (the default message limit).
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// One request, one response.
    Unary,
    /// One request, many responses.
    Server,
    /// Many requests, one response.
    Client,
    /// Many requests, many responses.
    Duplex,
    /// A leading response, then raw bytes both ways.
    Raw,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// ws://host:port[/path], wss://… or quic://host:port
    url: String,
    /// The method to call.
    method: String,
    /// Params as JSON (the first message for client and duplex calls). With
    /// --token or --timeout they must be an object: the call's metadata
    /// travels inside params.
    json: Option<String>,
    /// The call kind. For client and duplex calls each line of stdin is one
    /// message; for raw calls stdin's bytes are sent after the header.
    #[arg(long, value_enum, default_value_t = Kind::Unary)]
    kind: Kind,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Call timeout in milliseconds (at most 10^12).
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Do not check the params (and the kind) against the server's
    /// description. By default, when the server answers `rpc.discover`, the
    /// params and every stdin message are checked against the method's
    /// params schema before they are sent.
    #[arg(long)]
    no_check: bool,
}

#[derive(Debug)]
enum CallError {
    Client(ClientError),
    Other(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Client(e) => write!(f, "{e}"),
            CallError::Other(e) => f.write_str(e),
        }
    }
}

impl From<ClientError> for CallError {
    fn from(e: ClientError) -> Self {
        CallError::Client(e)
    }
}

impl From<std::io::Error> for CallError {
    fn from(e: std::io::Error) -> Self {
        CallError::Other(format!("i/o: {e}"))
    }
}

pub(crate) async fn run(args: CallArgs) -> ExitCode {
    let mut endpoint = match args.connect.endpoint(&args.url) {
        Ok(e) => e,
        Err(e) => return crate::fail(e),
    };
    endpoint.config_mut().timeouts.call_ms = args.timeout;
    if let Some(ms) = args.timeout.filter(|&ms| ms > strand::MAX_TIMEOUT_MS) {
        return crate::fail(format!(
            "--timeout {ms} is too long: at most {} ms (about 31 years); leave it out for no client timeout",
            strand::MAX_TIMEOUT_MS
        ));
    }
    let params = match args.json.as_deref().map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return crate::fail(format!("invalid JSON params: {e}")),
    };
    // Metadata (token, timeout) rides inside params (docs/protocol.md, "Metadata"), which
    // only an object can carry.
    if let Some(p) = &params {
        if !p.is_object()
            && !p.is_null()
            && (args.connect.token.is_some() || args.timeout.is_some())
        {
            return crate::fail("params must be a JSON object to carry --token or --timeout");
        }
    }
    tracing::info!(url = %endpoint.url(), "connecting");
    let client = match endpoint.connect().await {
        Ok(client) => client,
        Err(e) => return crate::fail(format!("cannot connect to {}: {e}", args.url)),
    };
    let schema = if args.no_check {
        None
    } else {
        match described_schema(&client, &args.method, args.kind).await {
            Ok(schema) => schema,
            Err(e) => {
                close(&client).await;
                return crate::fail(e);
            }
        }
    };
    if let (Some(schema), Some(p)) = (&schema, &params) {
        if let Err(e) = schema.check(p) {
            close(&client).await;
            return crate::fail(e);
        }
    }
    tracing::info!(method = %args.method, kind = ?args.kind, "calling");
    let result = match args.kind {
        Kind::Unary => unary(&client, &args.method, params).await,
        Kind::Server => server(&client, &args.method, params).await,
        Kind::Client => client_streaming(&client, &args.method, params, schema).await,
        Kind::Duplex => duplex(&client, &args.method, params, schema).await,
        Kind::Raw => raw(&client, &args.method, params).await,
    };
    tracing::debug!(ok = result.is_ok(), "call done; closing the connection");
    close(&client).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::fail(e),
    }
}

/// A method's params schema, from the server's description.
pub(crate) struct ParamsSchema {
    method: String,
    schema: Value,
    schemas: serde_json::Map<String, Value>,
}

impl ParamsSchema {
    /// Checks one message's params; the error names the method and the path.
    fn check(&self, params: &Value) -> Result<(), CallError> {
        crate::schema::check(params, &self.schema, &self.schemas).map_err(|m| {
            CallError::Other(format!(
                "params do not match the schema of `{}` (rpc.discover): {m}; --no-check sends them anyway",
                self.method
            ))
        })
    }
}

/// The method's params schema when the server describes itself (and the
/// kind it describes matches `kind`); `None` when it does not describe
/// itself or does not list the method.
async fn described_schema(
    client: &Client,
    method: &str,
    kind: Kind,
) -> Result<Option<ParamsSchema>, CallError> {
    // No description (or none this caller may read, e.g. without a token):
    // nothing to check; the call itself reports what is wrong.
    let timeout = std::time::Duration::from_millis(crate::describe::DISCOVER_TIMEOUT_MS);
    let document = match crate::describe::discover(client, timeout).await {
        Ok(Some(document)) => document,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::debug!(error = %e, "rpc.discover failed: params not checked");
            return Ok(None);
        }
    };
    let Some(m) = crate::describe::method(&document, method) else {
        tracing::debug!(method, "the server's description does not list the method");
        return Ok(None);
    };
    let wanted = match kind {
        Kind::Unary => "unary",
        Kind::Server => "server",
        Kind::Client => "client",
        Kind::Duplex => "duplex",
        Kind::Raw => "raw",
    };
    if let Some(described) = m["x-strand-kind"].as_str() {
        if described != wanted {
            return Err(CallError::Other(format!(
                "`{method}` is described (rpc.discover) as kind `{described}`: call it with --kind {described}"
            )));
        }
    }
    Ok(Some(ParamsSchema {
        method: method.to_string(),
        schema: crate::describe::params_schema(m),
        schemas: crate::describe::schemas(&document),
    }))
}

/// Closes the connection normally and waits (briefly) until the peer was
/// told, so the process does not exit mid-handshake.
pub(crate) async fn close(client: &Client) {
    let conn = client.connection();
    conn.close(CloseCode::Normal, "");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn.closed()).await;
}

fn print(value: &Value) -> Result<(), CallError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()?;
    Ok(())
}

async fn unary(client: &Client, method: &str, params: Option<Value>) -> Result<(), CallError> {
    let result: Value = client.unary(method, &params.unwrap_or(Value::Null)).await?;
    print(&result)
}

async fn server(client: &Client, method: &str, params: Option<Value>) -> Result<(), CallError> {
    let mut results = client
        .server_streaming::<_, Value>(method, &params.unwrap_or(Value::Null))
        .await?;
    while let Some(result) = results.next().await {
        print(&result?)?;
    }
    Ok(())
}

/// The messages to send: `first` (if given), then one per non-empty stdin line.
struct Messages {
    first: Option<Value>,
    schema: Option<ParamsSchema>,
    stdin: BufReader<tokio::io::Stdin>,
    line: Vec<u8>,
}

impl Messages {
    fn new(first: Option<Value>, schema: Option<ParamsSchema>) -> Self {
        Messages {
            first,
            schema,
            stdin: BufReader::new(tokio::io::stdin()),
            line: Vec::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<Value>, CallError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        loop {
            self.line.clear();
            // Bounded: a line longer than the limit is an error, not a buffer
            // that grows with the input.
            let limit = (MAX_LINE + 1) as u64;
            let n = (&mut self.stdin)
                .take(limit)
                .read_until(b'\n', &mut self.line)
                .await?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.len() > MAX_LINE {
                return Err(CallError::Other(format!(
                    "stdin line longer than {MAX_LINE} bytes"
                )));
            }
            let line = self.line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let message: Value = serde_json::from_slice(line)
                .map_err(|e| CallError::Other(format!("invalid JSON on stdin: {e}")))?;
            if let Some(schema) = &self.schema {
                schema.check(&message)?;
            }
            return Ok(Some(message));
        }
    }
}

async fn client_streaming(
    client: &Client,
    method: &str,
    first: Option<Value>,
    schema: Option<ParamsSchema>,
) -> Result<(), CallError> {
    let mut messages = Messages::new(first, schema);
    let mut call = client.client_streaming::<Value, Value>(method).await?;
    while let Some(message) = messages.next().await? {
        call.send(&message).await?;
    }
    print(&call.finish().await?)
}

async fn duplex(
    client: &Client,
    method: &str,
    first: Option<Value>,
    schema: Option<ParamsSchema>,
) -> Result<(), CallError> {
    let mut messages = Messages::new(first, schema);
    let (mut sink, mut responses) = client.duplex::<Value, Value>(method).await?;
    let send = async move {
        while let Some(message) = messages.next().await? {
            sink.send(&message).await?;
        }
        sink.finish().await?;
        Ok::<_, CallError>(())
    };
    let receive = async move {
        while let Some(result) = responses.next().await {
            print(&result?)?;
        }
        Ok::<_, CallError>(())
    };
    both_ways(send, receive).await
}

/// Runs the sending and the receiving side of a call together. The call is
/// over when the receiving side ends: its error is the one to report (a failed
/// send usually has its cause there, e.g. the server's error message), and a
/// send still waiting on stdin is dropped.
async fn both_ways(
    send: impl std::future::Future<Output = Result<(), CallError>>,
    receive: impl std::future::Future<Output = Result<(), CallError>>,
) -> Result<(), CallError> {
    let mut send = std::pin::pin!(send);
    let mut receive = std::pin::pin!(receive);
    tokio::select! {
        received = &mut receive => received,
        sent = &mut send => {
            let received = receive.await;
            received.and(sent)
        }
    }
}

async fn raw(client: &Client, method: &str, params: Option<Value>) -> Result<(), CallError> {
    // Pipelined: stdin's bytes follow the header at once, a round trip
    // sooner than after the leading response, which is printed when it comes.
    let call = client
        .raw_pipelined::<_, Value>(method, &params.unwrap_or(Value::Object(Default::default())))
        .await?;
    let mut writer = call.writer;
    let response = call.response;
    let up = async move {
        tokio::io::copy(&mut tokio::io::stdin(), &mut writer).await?;
        writer.shutdown().await?;
        Ok::<_, CallError>(())
    };
    let down = async move {
        let mut response = response.leading().await?;
        print(&response.leading)?;
        let mut stdout = tokio::io::stdout();
        tokio::io::copy(&mut response.reader, &mut stdout).await?;
        stdout.flush().await?;
        Ok::<_, CallError>(())
    };
    both_ways(up, down).await
}

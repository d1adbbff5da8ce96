//! `strand demo`: every call kind over every transport (memory, ws, wss,
//! quic), as a table of checked calls and their median times.

use std::process::ExitCode;
use std::time::Duration;

use crate::checks::{run_checks, Check, CHECKS, TIMED_CALLS};
use clap::Args;
use strand::tls::{Identity, ServerVerification};
use strand::{Endpoint, Serving};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Time each call may take, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout: u64,
}

pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    let per_call = Duration::from_millis(args.timeout);
    let identity = match Identity::dev() {
        Ok(identity) => identity,
        Err(e) => return crate::fail(format!("generating a certificate: {e}")),
    };
    let server = strand::demo::server(None);
    let endpoints: Vec<Endpoint> = [
        "ws://127.0.0.1:0",
        "wss://127.0.0.1:0",
        "quic://127.0.0.1:0",
    ]
    .iter()
    .filter_map(|url| Endpoint::from_url(url).ok())
    .map(|e| e.with_identity(identity.clone()))
    .collect();
    let serving = match Serving::start(&server, &endpoints).await {
        Ok(serving) => serving,
        Err(e) => return crate::fail(format!("starting the demo server: {e}")),
    };
    tracing::info!(urls = ?serving.urls(), "demo server started");

    let mut columns: Vec<(String, Vec<Check>)> = Vec::new();
    // The same server over the in-memory transport: no sockets at all.
    let (client_side, server_side) = strand::core::memory::pair();
    server.spawn_connection(std::sync::Arc::new(server_side));
    let memory_client = strand::Client::new(client_side);
    columns.push(("memory".into(), run_checks(&memory_client, per_call).await));
    drop(memory_client);
    for url in serving.urls() {
        let transport = url.split("://").next().unwrap_or("?").to_string();
        let checks = column(url, &identity, per_call).await;
        columns.push((transport, checks));
    }
    serving.shutdown(Duration::from_secs(1)).await;

    print_table(&columns);
    let failures: Vec<String> = columns
        .iter()
        .flat_map(|(t, checks)| {
            checks.iter().filter_map(move |c| match &c.result {
                Ok(_) => None,
                Err(e) => Some(format!("{} over {t}: {e}", c.kind)),
            })
        })
        .collect();
    out(format_args!(
        "\neach time: the median of {TIMED_CALLS} calls after a warm-up call, \
         every answer checked (deadline: one call, 50 ms timeout)"
    ));
    if failures.is_empty() {
        out(format_args!(
            "all {} checks ok",
            columns.iter().map(|(_, c)| c.len()).sum::<usize>()
        ));
        ExitCode::SUCCESS
    } else {
        out("");
        for f in &failures {
            out(format_args!("failed: {}", f.replace('\n', " ")));
        }
        ExitCode::FAILURE
    }
}

async fn column(url: &str, identity: &Identity, per_call: Duration) -> Vec<Check> {
    let endpoint = match Endpoint::from_url(url) {
        Ok(e) => e.with_server_verification(ServerVerification::Ca(identity.cert_chain().to_vec())),
        Err(e) => return all_failed(&e.to_string()),
    };
    let client = match tokio::time::timeout(per_call, endpoint.connect()).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return all_failed(&format!("connect: {e}")),
        Err(_) => return all_failed("connect timed out"),
    };
    let checks = run_checks(&client, per_call).await;
    crate::call::close(&client).await;
    checks
}

fn all_failed(reason: &str) -> Vec<Check> {
    CHECKS
        .iter()
        .map(|kind| Check {
            kind,
            result: Err(reason.to_string()),
        })
        .collect()
}

/// Prints a line; a closed stdout (`strand demo | head`) is not an error
/// worth a panic.
fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn print_table(columns: &[(String, Vec<Check>)]) {
    let mut header = format!("{:<10}", "kind");
    for (transport, _) in columns {
        header.push_str(&format!("{transport:<16}"));
    }
    out(header.trim_end());
    for (row, kind) in CHECKS.iter().enumerate() {
        let mut line = format!("{kind:<10}");
        for (_, checks) in columns {
            let cell = match checks.get(row).map(|c| &c.result) {
                Some(Ok(latency)) => format!("ok {:>7.3} ms", latency.as_secs_f64() * 1000.0),
                Some(Err(_)) | None => "error".to_string(),
            };
            line.push_str(&format!("{cell:<16}"));
        }
        out(line.trim_end());
    }
}

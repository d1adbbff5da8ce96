//! `strand`: run the demo, serve the demo service, call any strand or JS
//! server from the command line.

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

mod call;
mod checks;
mod codegen;
mod connect;
mod demo;
mod describe;
mod load;
mod metrics_http;
mod schema;
mod serve;

/// jemalloc, with background threads that give freed memory back to the OS
/// (feature `jemalloc`, on by default; docs/reliability.md).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// strand: JSON-RPC over multiplexed WebSocket streams or QUIC.
#[derive(Debug, Parser)]
#[command(name = "strand", version, about, propagate_version = true)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace). `RUST_LOG`
    /// overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a server on ws, wss and quic (loopback, ephemeral ports, in-memory
    /// self-signed certificate) and on the in-memory transport, run every call
    /// kind over every transport and print a table. Exits non-zero if any call failed.
    Demo(demo::DemoArgs),
    /// Serve the built-in demo service (echo, count, sum, chat, upper, whoami,
    /// sleep, stats) until Ctrl-C, and the browser demo page on GET /demo.
    Serve(serve::ServeArgs),
    /// Call a method on any strand or JS server and print the results as JSON
    /// lines.
    Call(call::CallArgs),
    /// Print a server's OpenRPC document (`rpc.discover`), or a table of its
    /// methods with --table.
    Describe(describe::DescribeArgs),
    /// Keep calls of one kind running on N workers for a while and print
    /// calls, errors by kind, latency percentiles and calls/s. Exits
    /// non-zero if any call failed.
    Load(load::LoadArgs),
    /// Generate a typed client from an OpenRPC document (a server's URL or a
    /// file).
    #[command(subcommand)]
    Codegen(codegen::Codegen),
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Prints one line for a failure: newlines in nested messages are folded.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    let text = message.to_string().replace('\n', " ");
    eprintln!("error: {text}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Call(args) => call::run(args).await,
            Command::Describe(args) => describe::run(args).await,
            Command::Load(args) => load::run(args).await,
            Command::Codegen(codegen) => codegen::run(codegen).await,
        }
    });
    // Do not wait for blocked stdin readers.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

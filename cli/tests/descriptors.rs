//! A `strand serve` process that runs out of file descriptors
//! (docs/reliability.md, "Hostile peers"): the accept loop warns (rate
//! limited) and backs off, and once the connections that took the
//! descriptors close, a good client is served again. ws only: a QUIC
//! listener takes one UDP socket for all its connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strand");

/// The descriptor limit the server runs under: small, so that a test
/// reaches it with a few dozen connections.
const NOFILE: u32 = 64;

/// What the accept loop logs when accepting fails for lack of descriptors.
const WARNING: &str = "ws: accepting connections failed";

/// A child process, killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An upgrade request; the answer's first line says whether it was served.
const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// Connects and upgrades; the socket if the server answered 101 within
/// `wait`, `None` if it did not (not accepted: out of descriptors).
fn upgraded(addr: &str, wait: Duration) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(addr).expect("the kernel completes the connection");
    tcp.write_all(UPGRADE).unwrap();
    tcp.set_read_timeout(Some(wait)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    head.starts_with(b"HTTP/1.1 101").then_some(tcp)
}

#[test]
fn a_server_out_of_descriptors_warns_and_serves_again_once_they_are_free() {
    // `ulimit -n` in a shell that then becomes the server: no extra tool.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {NOFILE} && exec \"$0\" serve --ws 127.0.0.1:0"
        ))
        .arg(BIN)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let stdout = strand_test_support::js::stdout_lines(&mut child);
    let stderr = child.stderr.take().unwrap();
    let server = Killed(child);
    let (tx, warnings) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(WARNING) && tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = stdout
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed its listening line");
    let addr = line
        .strip_prefix("listening ws://")
        .expect("a ws url")
        .trim_end_matches('/')
        .to_string();

    // Upgraded connections (one handshake at a time, within the per-source
    // bound) until one is not accepted: every descriptor is taken.
    let started = Instant::now();
    let mut held = Vec::new();
    loop {
        assert!(
            held.len() < NOFILE as usize,
            "{} connections served",
            held.len()
        );
        match upgraded(&addr, Duration::from_secs(2)) {
            Some(tcp) => held.push(tcp),
            None => break,
        }
    }
    let first = warnings
        .recv_timeout(Duration::from_secs(10))
        .expect("the accept loop warned");
    println!(
        "{} connections held at {NOFILE} descriptors; {first}",
        held.len()
    );
    assert!(!held.is_empty());

    // The connections close: the descriptors come back, a client is served.
    drop(held);
    let mut served = None;
    for _ in 0..50 {
        if let Some(tcp) = upgraded(&addr, Duration::from_secs(2)) {
            served = Some(tcp);
            break;
        }
    }
    assert!(
        served.is_some(),
        "not served again once descriptors were free"
    );
    let out = Command::new(BIN)
        .args(["call", &format!("ws://{addr}"), "echo", r#""again""#])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#""again""#);

    // Rate limited: at most one warning per 5 s (and the first).
    let elapsed = started.elapsed();
    let count = 1 + warnings.try_iter().count();
    println!("{count} warnings in {elapsed:?}");
    assert!(
        count as u64 <= 1 + elapsed.as_secs() / 5 + 1,
        "{count} warnings in {elapsed:?}"
    );
    drop(server);
}

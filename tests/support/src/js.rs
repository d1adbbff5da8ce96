//! The real JS peers, installed with npm into `tests/js/node_modules` on first use.
//!
//! `tests/js/package.json` and its lockfile pin the versions (and `bitset`
//! 5.1.1, see docs/protocol.md, "Testing against the JS peers"). Installation
//! is serialised across test processes with a file lock, and happens once per
//! checkout.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The folder holding `package.json` and the JS scripts of the interop tests.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("js")
}

/// Installs the npm packages (`npm install`) if they are missing and returns the JS folder.
///
/// Panics with the npm output if the install fails: an interop test cannot run
/// without its peer, and a silent skip would hide a broken CI.
pub fn ensure_installed() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = js_dir();
            install(&dir).unwrap_or_else(|e| panic!("npm install in {}: {e}", dir.display()));
            dir
        })
        .clone()
}

fn install(dir: &Path) -> io::Result<()> {
    let lock = File::create(dir.join(".npm-install.lock"))?;
    lock.lock()?;
    let marker = dir.join("node_modules").join(".package-lock.json");
    if marker.exists() {
        return Ok(());
    }
    // `npm install`, not `npm ci`: the lockfile pins every version, but npm
    // leaves @matrixai/quic's optional per-platform packages for other
    // platforms out of it, and `npm ci` then refuses the lockfile as out of sync.
    let output = Command::new("npm")
        .arg("install")
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "npm exited with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// Starts `node <script> <args…>` in the JS folder, with piped stdout and
/// inherited stderr. The child is killed when dropped through [`NodeProcess`].
pub fn node(script: &str, args: &[&str]) -> NodeProcess {
    let dir = ensure_installed();
    let child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting node {script}: {e}"));
    NodeProcess { child }
}

/// A running node process, killed on drop so a failed test leaves nothing behind.
pub struct NodeProcess {
    /// The child process (stdin and stdout are piped).
    pub child: Child,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a child prints on stdout, read on a thread of their own so a
/// test can wait for one with a timeout (`recv_timeout`). Takes the child's
/// piped stdout.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

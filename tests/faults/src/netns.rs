//! Two network namespaces joined by a veth pair, made by the test and torn
//! down on drop (a panicking test included), and runtimes whose sockets
//! live in one of them.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};
use tokio::sync::oneshot;

/// The server's address on the link.
pub const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 199, 0, 1));
/// The client's address on the link.
pub const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 199, 0, 2));

/// The nftables table the faults live in (in the server's namespace).
const TABLE: &str = "strand_faults";

/// Why namespaces cannot be made here; `Ok` when they can.
///
/// Under `CI=true` a missing capability is a failure, not a skip: CI runs as
/// root with `ip` and `nft` installed (`.ci/run`).
pub fn require() -> Option<String> {
    let missing = ["ip", "nft"]
        .into_iter()
        .find(|tool| run(&[tool, "-V"]).is_err());
    let reason = match missing {
        Some(tool) => Some(format!("`{tool}` is not installed")),
        None if !is_root() => Some("not running as root".to_string()),
        None => None,
    };
    if let Some(reason) = &reason {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("network namespaces are required in CI: {reason}");
        }
        eprintln!("fault test skipped: network namespaces cannot be made ({reason})");
    }
    reason
}

/// Whether we run as root (namespaces and nftables need it).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs a command, failing with its stderr.
fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs an nftables script in a namespace.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| format!("nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A server namespace and a client namespace joined by a veth pair
/// (`SERVER_IP` – `CLIENT_IP`), unique per test so tests run in parallel.
pub struct Link {
    /// The server's namespace.
    pub server_ns: String,
    /// The client's namespace.
    pub client_ns: String,
    veth: String,
}

impl Link {
    /// Makes the namespaces and the link; `None` (after `require` said why)
    /// where that cannot be done.
    pub fn new() -> Option<Link> {
        if require().is_some() {
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Interface names have at most 15 bytes; the pid keeps two test
        // processes apart, the counter two tests.
        let tag = format!("{}x{n}", std::process::id() % 1_000_000);
        let link = Link {
            server_ns: format!("strand-faults-{tag}-s"),
            client_ns: format!("strand-faults-{tag}-c"),
            veth: format!("sf{tag}"),
        };
        link.setup()
            .unwrap_or_else(|e| panic!("making the test link: {e}"));
        Some(link)
    }

    fn setup(&self) -> Result<(), String> {
        let (s, c) = (self.server_ns.as_str(), self.client_ns.as_str());
        let (vs, vc) = (format!("{}s", self.veth), format!("{}c", self.veth));
        run(&["ip", "netns", "add", s])?;
        run(&["ip", "netns", "add", c])?;
        run(&[
            "ip", "link", "add", &vs, "netns", s, "type", "veth", "peer", "name", &vc, "netns", c,
        ])?;
        for (ns, dev, ip) in [(s, &vs, SERVER_IP), (c, &vc, CLIENT_IP)] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        nft(
            s,
            &format!(
                "table inet {TABLE} {{
                   chain input {{ type filter hook input priority 0; policy accept; }}
                   chain output {{ type filter hook output priority 0; policy accept; }}
                 }}"
            ),
        )?;
        Ok(())
    }

    /// Drops `percent` % of the packets crossing the link, each way, at
    /// random (nftables `numgen random`); 100 cuts the link, 0 restores it.
    pub fn set_loss(&self, percent: u32) {
        let dev = format!("{}s", self.veth);
        let rule = |hook: &str, dir: &str| match percent {
            0 => String::new(),
            100 => format!("add rule inet {TABLE} {hook} {dir} \"{dev}\" drop\n"),
            p => format!(
                "add rule inet {TABLE} {hook} {dir} \"{dev}\" numgen random mod 100 < {p} drop\n"
            ),
        };
        let script = format!(
            "flush chain inet {TABLE} input\nflush chain inet {TABLE} output\n{}{}",
            rule("input", "iifname"),
            rule("output", "oifname")
        );
        nft(&self.server_ns, &script).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and the pair.
        for ns in [&self.server_ns, &self.client_ns] {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("tearing down the test link: {e}");
            }
        }
    }
}

/// A thread in a network namespace running a current-thread Tokio runtime:
/// every socket its tasks make is in that namespace.
pub struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NsRuntime {
    /// Starts the thread in namespace `ns` (`None`: the test's own).
    pub fn start(ns: Option<&str>) -> NsRuntime {
        let path = ns.map(|ns| format!("/run/netns/{ns}"));
        let (handle_tx, handle_rx) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Some(path) = path {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            handle_tx.send(rt.handle().clone()).expect("handle");
            rt.block_on(async {
                let _ = stopped.await;
            });
        });
        let handle = handle_rx.recv().expect("runtime started");
        NsRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The runtime's handle (to spawn onto it, or to read its metrics).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `fut` on this runtime and waits for its output.
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(out) => out,
            Err(_) => panic!("the task on the namespace runtime panicked"),
        }
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

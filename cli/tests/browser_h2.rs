//! Headless Chromium opens `wss://` as a WebSocket over HTTP/2 (RFC 8441):
//! it loads the demo page over HTTPS from `strand serve` (so an HTTP/2
//! connection to the origin exists), the page runs a call of every kind over
//! `wss://` to the same origin, and the server's metrics show the WebSocket
//! arrived as an extended CONNECT stream, not an HTTP/1.1 upgrade.
//!
//! Chromium pools a WebSocket onto an HTTP/2 connection only for a trusted
//! certificate, so the test makes a CA, imports it into a fresh NSS
//! database (`certutil`, Debian's libnss3-tools) under a fresh HOME, and
//! serves a certificate the CA signed. Needs `/usr/bin/chromium` (or
//! `CHROMIUM`), `certutil`, node and npm: without them the test is skipped,
//! except under `CI=true`, where that is a failure. `clients/ts`'s packages
//! (playwright-core drives the browser) are installed with `npm ci` when
//! missing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Whether the test must run (CI) rather than skip when its tools are missing.
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What is missing to run the test, if anything.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} (apt-get install chromium)"));
    }
    for tool in ["certutil", "node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!("{tool} (certutil: apt-get install libnss3-tools)"));
        }
    }
    None
}

/// `npm ci` in clients/ts unless playwright-core is there (serialised with a
/// file lock, like the JS peers' install).
fn install_playwright() {
    let dir = repo_root().join("clients/ts");
    let lock = std::fs::File::create(dir.join(".npm-install.lock")).unwrap();
    lock.lock().unwrap();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .expect("run npm ci");
    assert!(
        out.status.success(),
        "npm ci in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("strand-browser-h2-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `ca.pem`, and `cert.pem` + `key.pem` for localhost signed by it.
fn make_certificates(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "strand browser test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf_cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
}

/// A fresh NSS database under `home` that trusts `ca.pem` for TLS servers.
fn trust_ca(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    for args in [
        vec!["-d", &db, "-N", "--empty-password"],
        vec![
            "-d",
            &db,
            "-A",
            "-t",
            "C,,",
            "-n",
            "strand-test-ca",
            "-i",
            ca.to_str().unwrap(),
        ],
    ] {
        let out = Command::new("certutil")
            .args(&args)
            .env("HOME", home)
            .output()
            .expect("run certutil");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts `strand serve` on wss with the certificate; its wss port and
/// metrics address.
fn serve(dir: &Path) -> (Killed, u16, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["serve", "--wss", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strand serve");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let served = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut port, mut metrics) = (None, None);
    while port.is_none() || metrics.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve printed its listening and metrics lines");
        if let Some(url) = line.strip_prefix("listening wss://") {
            let authority = url.split('/').next().unwrap();
            port = Some(authority.rsplit(':').next().unwrap().parse().unwrap());
        } else if let Some(m) = line.strip_prefix("metrics http://") {
            metrics = Some(m.trim_end_matches("/metrics").to_string());
        }
    }
    (served, port.unwrap(), metrics.unwrap())
}

/// The samples of the metrics endpoint, keyed by series as printed.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(tcp, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Runs the page in Chromium; the script's JSON line.
fn run_browser(url: &str, home: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ws_over_h2.mjs");
    let profile = home.join("profile");
    let child = Command::new("node")
        .arg(script)
        .arg(repo_root().join("clients/ts"))
        .arg(url)
        .arg(&profile)
        .env("HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("the browser run finished within 180 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn chromium_opens_wss_as_an_extended_connect_stream() {
    if let Some(what) = missing() {
        if required() {
            panic!("CI=true and the browser test cannot run: missing {what}");
        }
        eprintln!("skipped: missing {what}");
        return;
    }
    install_playwright();
    let dir = TempDir::new();
    make_certificates(&dir.0);
    let home = dir.0.join("home");
    trust_ca(&home, &dir.0.join("ca.pem"));
    let (_served, port, metrics) = serve(&dir.0);
    let out = run_browser(&format!("https://localhost:{port}/demo"), &home);
    assert_eq!(
        out["protocol"], "h2",
        "the page itself came over HTTP/2: {out}"
    );
    let results = out["results"].as_array().expect("results");
    assert!(results.len() >= 8, "{out}");
    for r in results {
        assert_eq!(r["ok"], true, "{r}");
    }
    let samples = scrape(&metrics);
    let upgrades = |http: &str| {
        samples
            .get(&format!("strand_ws_upgrades_total{{http=\"{http}\"}}"))
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(
        (upgrades("2"), upgrades("1.1")),
        (1.0, 0.0),
        "the WebSocket came as an extended CONNECT on the page's connection: {samples:?}"
    );
    // At least the page's (a speculative preconnect may add another).
    let h2_connections = samples.get("strand_h2_connections_total").copied();
    assert!(h2_connections >= Some(1.0), "{samples:?}");
}

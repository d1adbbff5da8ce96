//! Turning results into target verdicts, a Markdown table and an SVG chart.

use std::fmt::Write as _;

use serde_json::{json, Value};

/// The metric each case is charted and compared by, its label, and whether
/// more is better.
pub fn headline(case: &str) -> (&'static str, &'static str, bool) {
    match case {
        "unary1" | "unary64" | "js_client" => ("calls_per_s", "calls/s", true),
        "throughput" => ("mb_per_s", "MB/s", true),
        "connect_tls" => ("conns_per_s", "new TLS connections/s", true),
        "idle_conn10k" => (
            "heap_kib_per_conn",
            "KiB live heap per idle connection, both ends (10,000)",
            false,
        ),
        "call_start" => (
            "worst_p50_us",
            "slowest call kind's p50 µs to the first response",
            false,
        ),
        "loaded_latency" => ("p99_ratio", "unary p99 loaded / unloaded", false),
        "stream_items" => ("items_per_s", "items/s", true),
        "open_latency" => ("p50_us", "p50 µs", false),
        "idle_conn" => (
            "heap_bytes_per_conn",
            "live heap per idle connection, both ends",
            false,
        ),
        "idle_stream" => (
            "heap_bytes_per_stream",
            "live heap per idle stream, both ends",
            false,
        ),
        "stalled" => (
            "heap_delta_bytes",
            "live heap growth with one stalled consumer",
            false,
        ),
        _ => ("", "", true),
    }
}

/// Folds the repeats of one (case, system) into one result: the run with the
/// median headline metric (so its other figures stay consistent), plus every
/// run's headline value. Any failed run makes the result a failure.
pub fn median_result(case: &str, system: &str, outcomes: Vec<Result<Value, String>>) -> Value {
    let (key, _, _) = headline(case);
    let mut ok = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(m) => ok.push(m),
            Err(e) => return json!({ "case": case, "system": system, "error": e }),
        }
    }
    let values: Vec<f64> = ok.iter().filter_map(|m| m[key].as_f64()).collect();
    ok.sort_by(|a, b| {
        let a = a[key].as_f64().unwrap_or(0.0);
        let b = b[key].as_f64().unwrap_or(0.0);
        a.total_cmp(&b)
    });
    let metrics = ok.get(ok.len() / 2).cloned().unwrap_or(Value::Null);
    json!({ "case": case, "system": system, "metrics": metrics, "runs": values })
}

/// Columns printed per case.
fn columns(case: &str) -> &'static [(&'static str, &'static str)] {
    match case {
        "unary1" | "unary64" => &[
            ("calls_per_s", "calls/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
        ],
        "js_client" => &[
            ("calls_per_s", "calls/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("server_cpu_us_per_call", "server CPU µs/call"),
            ("server_cpu_pct", "server CPU %"),
        ],
        "throughput" => &[("mb_per_s", "MB/s")],
        "idle_conn10k" => &[
            ("heap_kib_per_conn", "heap KiB/conn (both ends)"),
            ("rss_kib_per_conn", "RSS KiB/conn (both ends)"),
            ("server_heap_bytes_per_conn", "server heap/conn"),
            ("client_heap_bytes_per_conn", "client heap/conn"),
            ("server_rss_bytes_per_conn", "server RSS/conn"),
            ("client_rss_bytes_per_conn", "client RSS/conn"),
        ],
        "connect_tls" => &[
            ("conns_per_s", "connections/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
        ],
        "call_start" => &[
            ("unary_p50_us", "unary p50 µs"),
            ("server_p50_us", "server p50 µs"),
            ("client_p50_us", "client p50 µs"),
            ("duplex_p50_us", "duplex p50 µs"),
            ("raw_p50_us", "raw p50 µs"),
            ("raw_p99_us", "raw p99 µs"),
            ("raw_pipelined_p50_us", "raw pipelined p50 µs"),
        ],
        "loaded_latency" => &[
            ("p50_unloaded_us", "p50 µs unloaded"),
            ("p99_unloaded_us", "p99 µs unloaded"),
            ("p50_loaded_us", "p50 µs loaded"),
            ("p99_loaded_us", "p99 µs loaded"),
            ("p99_ratio", "p99 loaded/unloaded"),
            ("bulk_mb_per_s", "bulk MB/s"),
        ],
        "stream_items" => &[("items_per_s", "items/s")],
        "open_latency" => &[
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("opens", "opens"),
        ],
        "idle_conn" => &[
            ("bytes_per_conn", "RSS/conn (both ends)"),
            ("heap_bytes_per_conn", "heap/conn (both ends)"),
            ("count", "conns"),
            ("peak_rss_bytes", "peak RSS"),
        ],
        "idle_stream" => &[
            ("bytes_per_stream", "RSS/stream (both ends)"),
            ("heap_bytes_per_stream", "heap/stream (both ends)"),
            ("count", "streams"),
            ("peak_rss_bytes", "peak RSS"),
        ],
        "stalled" => &[
            ("rss_delta_bytes", "RSS growth"),
            ("heap_delta_bytes", "heap growth (both ends)"),
            ("consumer_heap_delta_bytes", "consumer end"),
            ("producer_heap_delta_bytes", "producer end"),
            ("pushed_bytes", "accepted by writer"),
            ("window_bytes", "window"),
        ],
        _ => &[],
    }
}

fn metric(results: &[Value], case: &str, system: &str, key: &str) -> Option<f64> {
    results
        .iter()
        .find(|r| r["case"] == case && r["system"] == system)?
        .get("metrics")?
        .get(key)?
        .as_f64()
}

/// Evaluates the targets of the issue against one run.
pub fn targets(results: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut ratio = |name: &str, case: &str, ours: &str, peers: &[&str], min: f64| {
        let key = headline(case).0;
        let a = metric(results, case, ours, key);
        let best = peers
            .iter()
            .filter_map(|p| metric(results, case, p, key).map(|v| (*p, v)))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        let (value, met, against) = match (a, best) {
            (Some(a), Some((p, b))) if b > 0.0 => (Some(a / b), Some(a / b >= min), Some(p)),
            _ => (None, None, None),
        };
        out.push(json!({
            "target": name, "case": case, "system": ours, "against": against,
            "ratio": value, "min_ratio": min, "met": met,
        }));
    };
    // Round 2's targets (round 1's, where round 2 did not raise them).
    ratio(
        "unary, 1 caller: strand-ws >= 1.0x jsonrpsee",
        "unary1",
        "strand-ws",
        &["jsonrpsee"],
        1.0,
    );
    ratio(
        "unary, 64 callers: strand-ws >= 1.5x best peer",
        "unary64",
        "strand-ws",
        &["jsonrpsee", "tarpc"],
        1.5,
    );
    ratio(
        "unary, 64 callers: strand-ws >= 0.8x strand over memory",
        "unary64",
        "strand-ws",
        &["strand-mem"],
        0.8,
    );
    for case in ["unary1", "unary64"] {
        ratio(
            &format!("{case}: strand-quic >= 0.9x raw quinn, stream per request"),
            case,
            "strand-quic",
            &["quinn"],
            0.9,
        );
    }
    ratio(
        "JS-like client, 64 callers: strand-ws >= 0.9x a bare mux echo server",
        "js_client",
        "strand-ws",
        &["mux-echo"],
        0.9,
    );
    ratio(
        "@matrixai/ws client in Node, 64 callers: strand-ws >= 0.9x a bare mux echo server",
        "js_client",
        "strand-ws-node",
        &["mux-echo-node"],
        0.9,
    );
    ratio(
        "new TLS connections/s: strand wss >= 0.9x tokio-tungstenite + rustls",
        "connect_tls",
        "strand-ws",
        &["tungstenite"],
        0.9,
    );
    ratio(
        "new TLS connections/s: strand quic >= 0.9x raw quinn",
        "connect_tls",
        "strand-quic",
        &["quinn"],
        0.9,
    );
    ratio(
        "one-stream throughput: strand-ws >= 0.9x tokio-tungstenite",
        "throughput",
        "strand-ws",
        &["tungstenite"],
        0.9,
    );
    ratio(
        "one-stream throughput: strand-quic >= 0.9x quinn",
        "throughput",
        "strand-quic",
        &["quinn"],
        0.9,
    );
    ratio(
        "server streaming: strand-ws >= 1.5x jsonrpsee subscriptions",
        "stream_items",
        "strand-ws",
        &["jsonrpsee"],
        1.5,
    );
    ratio(
        "server streaming: strand-quic >= 1.5x jsonrpsee subscriptions",
        "stream_items",
        "strand-quic",
        &["jsonrpsee"],
        1.5,
    );
    // Memory. Both ends live in the one process, so a connection or stream
    // costs half the measured growth per end. Figures are live heap bytes
    // (the counting allocator); RSS is in the tables. "Beyond their buffers"
    // is read as beyond what the raw carrier (tokio-tungstenite, quinn) costs
    // for the same idle connection or stream.
    let mut limit = |name: &str,
                     case: &str,
                     system: &str,
                     base: Option<&str>,
                     key: &str,
                     max: f64,
                     halve: bool| {
        let ours = metric(results, case, system, key);
        let raw = base.map(|b| metric(results, case, b, key));
        let v = match raw {
            None => ours,
            Some(Some(r)) => ours.map(|o| o - r),
            Some(None) => None,
        }
        .map(|v| if halve { v / 2.0 } else { v });
        out.push(json!({
            "target": name, "case": case, "system": system, "beyond": base,
            "value": v, "max": max, "met": v.map(|v| v <= max),
        }));
    };
    limit(
        "idle connection, per end, beyond raw tokio-tungstenite <= 16 KiB (strand-ws)",
        "idle_conn",
        "strand-ws",
        Some("tungstenite"),
        "heap_bytes_per_conn",
        16384.0,
        true,
    );
    limit(
        "idle connection, per end, beyond raw quinn <= 16 KiB (strand-quic)",
        "idle_conn",
        "strand-quic",
        Some("quinn"),
        "heap_bytes_per_conn",
        16384.0,
        true,
    );
    limit(
        "idle stream, per end <= 1 KiB (strand-ws)",
        "idle_stream",
        "strand-ws",
        None,
        "heap_bytes_per_stream",
        1024.0,
        true,
    );
    limit(
        "idle stream, per end, beyond raw quinn <= 1 KiB (strand-quic)",
        "idle_stream",
        "strand-quic",
        Some("quinn"),
        "heap_bytes_per_stream",
        1024.0,
        true,
    );
    for sys in ["strand-ws", "strand-quic"] {
        // A stalled consumer may cost its window plus one message in flight.
        let window = metric(results, "stalled", sys, "window_bytes").unwrap_or(0.0);
        limit(
            &format!("stalled consumer, its end's heap <= window + one 64 KiB message ({sys})"),
            "stalled",
            sys,
            None,
            "consumer_heap_delta_bytes",
            window + 65536.0,
            false,
        );
        limit(
            &format!("stalled consumer, heap of both ends <= window + one 64 KiB message ({sys})"),
            "stalled",
            sys,
            None,
            "heap_delta_bytes",
            window + 65536.0,
            false,
        );
        limit(
            &format!("stalled consumer, RSS <= window + one 64 KiB message ({sys})"),
            "stalled",
            sys,
            None,
            "rss_delta_bytes",
            window + 65536.0,
            false,
        );
    }
    for kind in crate::kinds::KINDS {
        let key = format!("{kind}_p50_us");
        let quic = metric(results, "call_start", "strand-quic", &key);
        let ws = metric(results, "call_start", "strand-ws", &key);
        let v = match (quic, ws) {
            (Some(q), Some(w)) if w > 0.0 => Some(q / w),
            _ => None,
        };
        out.push(json!({
            "target": format!("call start, {kind}: strand-quic p50 <= 1.2x strand-ws"),
            "case": "call_start", "system": "strand-quic", "against": "strand-ws",
            "ratio": v, "max_ratio": 1.2, "met": v.map(|v| v <= 1.2),
        }));
    }
    for sys in ["strand-ws", "strand-quic"] {
        let v = metric(results, "idle_conn10k", sys, "heap_kib_per_conn").map(|k| k * 1024.0);
        out.push(json!({
            "target": format!("10,000 idle connections, both ends <= 48 KiB per connection ({sys})"),
            "case": "idle_conn10k", "system": sys,
            "value": v, "max": 48.0 * 1024.0, "met": v.map(|v| v <= 48.0 * 1024.0),
        }));
    }
    for sys in ["strand-ws", "strand-quic"] {
        let v = metric(results, "loaded_latency", sys, "p99_ratio");
        out.push(json!({
            "target": format!("unary p99 beside a bulk stream <= 2x unloaded p99 ({sys})"),
            "case": "loaded_latency", "system": sys, "against": "unloaded",
            "ratio": v, "max_ratio": 2.0, "met": v.map(|v| v <= 2.0),
        }));
    }
    out
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_bytes(v: f64) -> String {
    if v.abs() >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", v / 1048576.0)
    } else if v.abs() >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

fn fmt_metric(key: &str, v: &Value) -> String {
    match v.as_f64() {
        None => "–".into(),
        Some(x) if key.contains("bytes") => fmt_bytes(x),
        Some(x) => fmt_num(x),
    }
}

/// The result tables and the target verdicts, as Markdown.
pub fn markdown(doc: &Value) -> String {
    let empty = Vec::new();
    let results = doc["results"].as_array().unwrap_or(&empty);
    let mut s = String::new();
    let mut cases: Vec<&str> = Vec::new();
    for r in results {
        let c = r["case"].as_str().unwrap_or("");
        if !cases.contains(&c) {
            cases.push(c);
        }
    }
    for case in cases {
        let cols = columns(case);
        let _ = writeln!(s, "\n### {case}\n");
        let _ = write!(s, "| system |");
        for (_, label) in cols {
            let _ = write!(s, " {label} |");
        }
        let _ = write!(s, "\n|---|");
        for _ in cols {
            let _ = write!(s, "---:|");
        }
        s.push('\n');
        for r in results.iter().filter(|r| r["case"] == case) {
            let _ = write!(s, "| {} |", r["system"].as_str().unwrap_or(""));
            if let Some(e) = r.get("error") {
                let _ = write!(s, " FAILED: {} |", e.as_str().unwrap_or(""));
                for _ in 1..cols.len() {
                    s.push_str(" |");
                }
            } else {
                for (key, _) in cols {
                    let _ = write!(s, " {} |", fmt_metric(key, &r["metrics"][key]));
                }
            }
            s.push('\n');
        }
    }
    let _ = writeln!(
        s,
        "\n### Targets\n\n| target | figure | verdict |\n|---|---:|---|"
    );
    for t in doc["targets"].as_array().unwrap_or(&empty) {
        let figure = if let Some(r) = t["ratio"].as_f64() {
            format!("{r:.2}x vs {}", t["against"].as_str().unwrap_or("?"))
        } else if let Some(v) = t["value"].as_f64() {
            format!(
                "{} (limit {})",
                fmt_bytes(v),
                fmt_bytes(t["max"].as_f64().unwrap_or(0.0))
            )
        } else {
            "n/a".into()
        };
        let verdict = match t["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "no data",
        };
        let _ = writeln!(
            s,
            "| {} | {figure} | {verdict} |",
            t["target"].as_str().unwrap_or("")
        );
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One horizontal bar panel per case, bars scaled to the largest value.
pub fn svg(doc: &Value) -> String {
    let empty = Vec::new();
    let results = doc["results"].as_array().unwrap_or(&empty);
    let mut cases: Vec<&str> = Vec::new();
    for r in results {
        let c = r["case"].as_str().unwrap_or("");
        if !cases.contains(&c) {
            cases.push(c);
        }
    }
    let (width, label_w, bar_w, row_h) = (760.0, 120.0, 480.0, 20.0);
    let mut body = String::new();
    let mut y = 30.0;
    for case in cases {
        let (key, unit, higher) = headline(case);
        let rows: Vec<(&str, Option<f64>)> = results
            .iter()
            .filter(|r| r["case"] == case)
            .map(|r| {
                (
                    r["system"].as_str().unwrap_or(""),
                    r["metrics"][key].as_f64(),
                )
            })
            .collect();
        let max = rows.iter().filter_map(|r| r.1).fold(0.0f64, f64::max);
        let better = if higher {
            "higher is better"
        } else {
            "lower is better"
        };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{} — {} ({better})</text>"#,
            esc(case),
            esc(unit)
        );
        y += 8.0;
        for (system, v) in rows {
            let color = if system.starts_with("strand") {
                "#2b6cb0"
            } else {
                "#a0aec0"
            };
            let _ = writeln!(
                body,
                r#"<text x="10" y="{}">{}</text>"#,
                y + 14.0,
                esc(system)
            );
            match v {
                Some(v) => {
                    let w = if max > 0.0 {
                        (v / max * bar_w).max(1.0)
                    } else {
                        1.0
                    };
                    let text = if key.contains("bytes") {
                        fmt_bytes(v)
                    } else {
                        fmt_num(v)
                    };
                    let _ = writeln!(
                        body,
                        r##"<rect x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{}">{}</text>"##,
                        y + 3.0,
                        row_h - 6.0,
                        label_w + w + 6.0,
                        y + 14.0,
                        esc(&text)
                    );
                }
                None => {
                    let _ = writeln!(
                        body,
                        r##"<text x="{label_w}" y="{}" fill="#c53030">failed</text>"##,
                        y + 14.0
                    );
                }
            }
            y += row_h;
        }
        y += 26.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="16" font-size="14" font-weight="bold">strand-bench: strand (blue) vs peers (grey), loopback, {} cores</text>
{body}</svg>
"#,
        doc["cores"]
    )
}

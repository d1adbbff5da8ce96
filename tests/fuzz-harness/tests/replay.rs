//! Replays each fuzz target, on stable Rust and within `cargo test`: every
//! file of its checked-in corpus (`fuzz/corpus/<target>/`), then seeded
//! pseudo-random inputs (fresh bytes, and corpus files with a few bytes
//! changed), through the same harness function the libFuzzer target calls.
//! Deterministic: the seed is fixed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use strand_fuzz_harness::TARGETS;

/// Pseudo-random inputs per target, after its corpus.
const RANDOM_INPUTS: u64 = 2000;
/// Longest fresh pseudo-random input.
const MAX_RANDOM_LEN: u64 = 600;

/// splitmix64: a seeded generator, plenty for varied inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, len: u64) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/corpus/{target}"))
}

/// The corpus files of `target`, by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("a corpus file"))
        })
        .collect();
    files.sort();
    files
}

fn run_one(target: &str, run: fn(&[u8]), what: &str, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        panic!(
            "{target}: {what} fails; input ({} bytes): {hex}",
            input.len()
        );
    }
}

fn replay(name: &str) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .expect("a known target");
    let corpus = corpus(name);
    assert!(!corpus.is_empty(), "{name}: no checked-in corpus");
    for (file, input) in &corpus {
        run_one(name, target.run, &format!("corpus file {file}"), input);
    }
    let mut rng = SplitMix(0x5eed_0000 ^ name.len() as u64);
    for i in 0..RANDOM_INPUTS {
        let input = if i % 2 == 0 {
            let len = rng.below(MAX_RANDOM_LEN);
            rng.bytes(len)
        } else {
            let (_, seed) = &corpus[rng.below(corpus.len() as u64) as usize];
            let mut input = seed.clone();
            for _ in 0..1 + rng.below(4) {
                if input.is_empty() {
                    break;
                }
                let at = rng.below(input.len() as u64) as usize;
                input[at] = rng.next() as u8;
            }
            input
        };
        run_one(
            name,
            target.run,
            &format!("pseudo-random input {i}"),
            &input,
        );
    }
}

#[test]
fn every_target_is_replayed() {
    let tested = [
        "ws_frame",
        "ws_session",
        "ws_upgrade",
        "json_reader",
        "rpc_message",
        "credentials",
        "client_response",
    ];
    for target in TARGETS {
        assert!(
            tested.contains(&target.name),
            "{} has no replay test",
            target.name
        );
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../fuzz/fuzz_targets/{}.rs", target.name));
        assert!(bin.exists(), "{} has no libFuzzer target", target.name);
    }
}

#[test]
fn ws_frame() {
    replay("ws_frame");
}

#[test]
fn ws_session() {
    replay("ws_session");
}

#[test]
fn ws_upgrade() {
    replay("ws_upgrade");
}

#[test]
fn json_reader() {
    replay("json_reader");
}

#[test]
fn rpc_message() {
    replay("rpc_message");
}

#[test]
fn credentials() {
    replay("credentials");
}

#[test]
fn client_response() {
    replay("client_response");
}

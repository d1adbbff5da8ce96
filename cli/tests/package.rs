//! The crate packages on its own: `cargo package` takes only the files
//! under cli/, so every file the sources embed must be there.

use std::fs;
use std::path::{Path, PathBuf};

/// The macros that read a file at compile time, each with its `(`.
const INCLUDES: [&str; 3] = ["include_str!(", "include_bytes!(", "include!("];

/// The `.rs` files under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The literal paths of the include macros in `text` (a macro whose
/// argument is not a plain string literal, e.g. `concat!(env!(..))`, is
/// reported as such so that the test cannot pass it by silently).
fn included_paths(text: &str) -> Vec<Result<String, String>> {
    let mut found = Vec::new();
    for macro_ in INCLUDES {
        let mut rest = text;
        while let Some(at) = rest.find(macro_) {
            let before = &rest[..at];
            rest = &rest[at + macro_.len()..];
            // `include!(` is also the tail of the other two.
            if before.ends_with("_str") || before.ends_with("_bytes") {
                continue;
            }
            let arg = rest.trim_start();
            match arg.strip_prefix('"').and_then(|a| a.split_once('"')) {
                Some((path, _)) => found.push(Ok(path.to_string())),
                None => found.push(Err(arg.chars().take(60).collect())),
            }
        }
    }
    found
}

#[test]
fn embedded_files_are_inside_the_crate() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let mut files = Vec::new();
    sources(&crate_dir.join("src"), &mut files);
    let mut checked = 0;
    let mut bad = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for path in included_paths(&text) {
            match path {
                Ok(path) => {
                    // Relative to the including file, as rustc resolves it.
                    let target = file.parent().unwrap().join(&path);
                    match target.canonicalize() {
                        Ok(t) if t.starts_with(&crate_dir) => checked += 1,
                        Ok(t) => bad.push(format!("{}: {path} is {}", file.display(), t.display())),
                        Err(e) => bad.push(format!("{}: {path}: {e}", file.display())),
                    }
                }
                Err(arg) => bad.push(format!(
                    "{}: an include whose path is not a literal: {arg}",
                    file.display()
                )),
            }
        }
    }
    assert!(
        bad.is_empty(),
        "files embedded from outside cli/ (cargo package leaves them out):\n{}",
        bad.join("\n")
    );
    // The demo page and its client at least: the scan found them.
    assert!(checked >= 2, "only {checked} embedded files found");
}

#[test]
fn the_scan_sees_every_include_form() {
    let text = r#"
        const A: &str = include_str!("../demo/index.html");
        const B: &[u8] = include_bytes!( "x.bin");
        include!("gen.rs");
        const C: &str = include_str!(concat!(env!("OUT_DIR"), "/y"));
    "#;
    let found = included_paths(text);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.contains(&Ok("../demo/index.html".into())));
    assert!(found.contains(&Ok("x.bin".into())));
    assert!(found.contains(&Ok("gen.rs".into())));
    assert_eq!(found.iter().filter(|f| f.is_err()).count(), 1);
}

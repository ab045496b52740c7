//! The module rules of ARCHITECTURE.md, checked on the source itself.
//!
//! 1. Imports point down the layers: a module names only modules in lower
//!    layers (`crate::X` anywhere in its code, not only in `use` lines).
//! 2. The core is pure: no tokio, no I/O, no clocks, no threads, no
//!    environment, no logging or metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module may use only lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("core", 0),
    ("telemetry", 0),
    ("decode", 1),
    ("sinks", 1),
    ("wal", 1),
    ("store", 1),
    ("pipeline", 2),
    ("sources", 3),
    ("linking_args", 4),
    ("query", 4),
    ("serve", 5),
    ("replay", 5),
    ("cert", 5),
    ("config_file", 5),
    ("view", 6),
];

/// What the pure core never mentions.
const IMPURE: &[&str] = &[
    "tokio",
    "std::fs",
    "std::net",
    "std::io",
    "std::thread",
    "std::env",
    "SystemTime",
    "Instant",
    "metrics::",
    "tracing::",
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/core/engine.rs` → `core`,
/// `src/replay.rs` → `replay`); `None` for `lib.rs` and `main.rs`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The code of a file without its comments (doc comments name other modules
/// freely, and that is no dependency).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Every `crate::X` a line names.
fn crate_paths(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(at, _)| !line[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(at, m)| line[at + m.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .filter(|name: &String| !name.is_empty())
        .collect()
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let Some(own) = layer(&module) else {
            violations.push(format!("{}: module `{module}` has no layer in ARCHITECTURE.md", file.display()));
            continue;
        };
        *checked.entry(module.clone()).or_default() += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for (line_no, line) in code_lines(&text) {
            for used in crate_paths(line) {
                if used == module {
                    continue;
                }
                match layer(&used) {
                    Some(l) if l < own => {}
                    Some(l) => violations.push(format!(
                        "{}:{line_no}: `{module}` (layer {own}) uses `crate::{used}` (layer {l})",
                        file.display()
                    )),
                    None => violations.push(format!("{}:{line_no}: unknown module `crate::{used}`", file.display())),
                }
            }
        }
    }
    assert!(violations.is_empty(), "imports that point up or sideways:\n{}", violations.join("\n"));
    // The walk itself must have seen the tree, or the check proves nothing.
    for module in ["core", "decode", "sinks", "pipeline", "sources", "wal", "serve"] {
        assert!(checked.get(module).is_some_and(|n| *n > 0), "no file of `{module}` was checked");
    }
}

#[test]
fn the_core_is_pure() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(files.len() > 5, "the core's files were not found");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line_no, line) in code_lines(&text) {
            for word in IMPURE {
                if line.contains(word) {
                    found.push(format!("{}:{line_no}: `{word}` in `{}`", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "the core must not do I/O, read clocks or use tokio:\n{}", found.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    assert_eq!(crate_paths("use crate::pipeline::{Batch, IngestQueue};"), ["pipeline"]);
    assert_eq!(crate_paths("let x = crate::core::time::from_duration(d) + crate::wal::X;"), ["core", "wal"]);
    assert!(crate_paths("use kausal_crate::x;").is_empty(), "only the crate's own paths");
    assert_eq!(
        code_lines("let a = 1; // crate::serve\n/// crate::serve\n").map(|(_, l)| crate_paths(l).len()).sum::<usize>(),
        0
    );
}

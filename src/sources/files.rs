//! Recorded input for `kausal replay`: files, directories and stdin.
//!
//! Directories are walked recursively in name order (so a replay is
//! deterministic) and only `.json`, `.jsonl`, `.log` and their `.gz` forms are
//! read; a file named explicitly is read whatever its name.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::decode::{self, DecodeOptions, Decoded};

/// One input to read, and where a person would look for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    pub fn display(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".to_owned(),
        }
    }
}

const EXTENSIONS: &[&str] = &["json", "jsonl", "log"];

fn has_input_extension(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    Path::new(name).extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e))
}

/// Expands the command-line paths into the inputs to read, in order.
pub fn expand_paths(paths: &[String]) -> io::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = PathBuf::from(path);
        let meta = fs::metadata(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            walk(&path, &mut inputs)?;
        } else {
            inputs.push(Input::File(path));
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, out: &mut Vec<Input>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if has_input_extension(&path) {
            out.push(Input::File(path));
        }
    }
    Ok(())
}

/// Reads an input whole, un-gzipping by content (the gzip magic), not by name.
pub fn read_input(input: &Input) -> io::Result<Vec<u8>> {
    let raw = match input {
        Input::File(path) => fs::read(path)?,
        Input::Stdin => {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf)?;
            buf
        }
    };
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads and decodes one input. Unreadable input becomes a bad record instead
/// of an error, so one broken file never stops a replay.
pub fn decode_input(input: &Input, options: &DecodeOptions) -> Decoded {
    match read_input(input) {
        Ok(bytes) => decode::decode(&bytes, options),
        Err(e) => Decoded::unreadable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_extensions() {
        assert!(has_input_extension(Path::new("a/audit.log")));
        assert!(has_input_extension(Path::new("a/audit.jsonl.gz")));
        assert!(has_input_extension(Path::new("batch-000001.json")));
        assert!(!has_input_extension(Path::new("notes.txt")));
        assert!(!has_input_extension(Path::new("deployment.yaml")));
    }
}

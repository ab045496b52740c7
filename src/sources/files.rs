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

/// How much of an input is read and decoded at once, about: a long audit
/// log is decoded piece by piece, so that memory does not grow with it.
pub const PIECE_BYTES: usize = 32 << 20;

/// Reads an input (gunzipped when it is gzip) in pieces of about
/// [`PIECE_BYTES`], each cut just before a line that starts a top-level JSON
/// value (`{` or `[` in column 0), as every line of an audit log or an Event
/// dump in JSON lines does. A document with no such line (one pretty-printed
/// value) stays one piece, however large. Each piece comes with the number
/// of lines before it, so that bad records keep their line in the file.
pub fn read_pieces(input: &Input) -> io::Result<Pieces> {
    let raw: Box<dyn Read> = match input {
        Input::File(path) => Box::new(fs::File::open(path)?),
        Input::Stdin => Box::new(io::stdin()),
    };
    let mut reader = io::BufReader::with_capacity(1 << 20, raw);
    let gzip = io::BufRead::fill_buf(&mut reader)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(reader)) } else { Box::new(reader) };
    Ok(Pieces { reader, carry: Vec::new(), lines_before: 0, done: false })
}

/// The pieces of one input: see [`read_pieces`].
pub struct Pieces {
    reader: Box<dyn Read>,
    carry: Vec<u8>,
    lines_before: usize,
    done: bool,
}

/// One piece of an input and how many lines of the input come before it.
pub struct Piece {
    pub bytes: Vec<u8>,
    pub lines_before: usize,
}

impl Iterator for Pieces {
    type Item = io::Result<Piece>;

    fn next(&mut self) -> Option<io::Result<Piece>> {
        if self.done {
            return None;
        }
        let mut buffer = std::mem::take(&mut self.carry);
        let mut searched = 0;
        loop {
            if buffer.len() >= PIECE_BYTES {
                if let Some(cut) = last_value_start(&buffer[searched..]).map(|at| searched + at) {
                    self.carry = buffer.split_off(cut);
                    break;
                }
                // Only what comes next needs looking at (from the last newline's place).
                searched = buffer.len().saturating_sub(1);
            }
            match (&mut self.reader).take(PIECE_BYTES as u64).read_to_end(&mut buffer) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let lines_before = self.lines_before;
        self.lines_before += memchr::memchr_iter(b'\n', &buffer).count();
        Some(Ok(Piece { bytes: buffer, lines_before }))
    }
}

/// Where the last line that starts with `{` or `[` begins, if not at 0.
fn last_value_start(bytes: &[u8]) -> Option<usize> {
    memchr::memrchr_iter(b'\n', bytes)
        .map(|nl| nl + 1)
        .find(|&start| start < bytes.len() && matches!(bytes[start], b'{' | b'['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_is_cut_only_before_lines_that_start_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line = format!("{{\"a\": \"{}\"}}\n", "x".repeat(1000));
        let lines = 2 * PIECE_BYTES / line.len() + 7;
        std::fs::write(&path, line.repeat(lines)).unwrap();
        let pieces: Vec<Piece> = read_pieces(&Input::File(path)).unwrap().map(Result::unwrap).collect();
        assert!(pieces.len() >= 2, "{} pieces", pieces.len());
        let mut before = 0;
        for piece in &pieces {
            assert_eq!(piece.lines_before, before);
            assert!(piece.bytes.starts_with(b"{") && piece.bytes.ends_with(b"}\n"), "cut inside a line");
            before += piece.bytes.iter().filter(|b| **b == b'\n').count();
        }
        assert_eq!(before, lines);
        // One pretty-printed document has no line to cut before: one piece.
        let pretty = dir.path().join("events.json");
        let item = format!("  {{\"a\": \"{}\"}},\n", "x".repeat(1000));
        std::fs::write(&pretty, format!("{{\"items\": [\n{}  {{}}\n]}}\n", item.repeat(lines))).unwrap();
        assert_eq!(read_pieces(&Input::File(pretty)).unwrap().count(), 1);
    }

    #[test]
    fn input_extensions() {
        assert!(has_input_extension(Path::new("a/audit.log")));
        assert!(has_input_extension(Path::new("a/audit.jsonl.gz")));
        assert!(has_input_extension(Path::new("batch-000001.json")));
        assert!(!has_input_extension(Path::new("notes.txt")));
        assert!(!has_input_extension(Path::new("deployment.yaml")));
    }
}

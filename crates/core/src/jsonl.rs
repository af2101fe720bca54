//! Line-oriented input with precise error locations.
//!
//! Contract: every record read through this module carries its 1-based line number, and
//! every failure (I/O, invalid UTF-8, malformed JSON, missing field) is reported as
//! [`CoreError::BadLine`] `file:line: reason`. Blank lines are skipped. A UTF-8 byte-order
//! mark at the start of the file is dropped (editors on Windows write one). Reading
//! streams: memory does not grow with the file.

use crate::error::{CoreError, Result};
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The UTF-8 byte-order mark, `U+FEFF` encoded.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Streams the non-blank lines of a text file as `(line_number, line)`, failing with
/// `file:line` on invalid UTF-8. A trailing `\r` is removed, and so is a UTF-8 byte-order
/// mark at the start of line 1.
pub struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    line_no: usize,
    buf: Vec<u8>,
}

impl Lines {
    /// Opens `path` for line reading.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| CoreError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 16, f),
            line_no: 0,
            buf: Vec::new(),
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error located at `line` of this file.
    pub fn error_at(&self, line: usize, reason: impl Into<String>) -> CoreError {
        CoreError::BadLine {
            path: self.path.clone(),
            line,
            reason: reason.into(),
        }
    }
}

impl Iterator for Lines {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(CoreError::io(&self.path, e))),
            }
            self.line_no += 1;
            if self.line_no == 1 && self.buf.starts_with(UTF8_BOM) {
                self.buf.drain(..UTF8_BOM.len());
            }
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let line = match std::str::from_utf8(&self.buf) {
                Ok(s) => s.to_owned(),
                Err(e) => {
                    return Some(Err(self.error_at(
                        self.line_no,
                        format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                    )))
                }
            };
            return Some(Ok((self.line_no, line)));
        }
    }
}

/// Reads a whole text file (a TOML config, an ids list): a leading UTF-8 byte-order mark
/// is dropped, and invalid UTF-8 is a `file:line` error (the line holding the first bad
/// byte) instead of a bare "stream did not contain valid UTF-8".
pub fn read_text(path: &Path) -> Result<String> {
    let mut bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = at
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
        CoreError::BadLine {
            path: path.to_path_buf(),
            line,
            reason: format!("invalid UTF-8 at byte {col} of the line"),
        }
    })
}

/// Streams a JSONL file, deserialising each non-blank line into `T`.
pub fn read_jsonl<T: DeserializeOwned>(
    path: &Path,
) -> Result<impl Iterator<Item = Result<(usize, T)>>> {
    let lines = Lines::open(path)?;
    let path = path.to_path_buf();
    Ok(lines.map(move |r| {
        let (n, line) = r?;
        serde_json::from_str::<T>(&line)
            .map(|v| (n, v))
            .map_err(|e| CoreError::BadLine {
                path: path.clone(),
                line: n,
                reason: format!("invalid JSON: {e}"),
            })
    }))
}

/// Reads a whole JSONL file into memory (for small files such as queries).
pub fn read_jsonl_all<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    read_jsonl(path)?.map(|r| r.map(|(_, v)| v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(serde::Deserialize, Debug)]
    struct Rec {
        id: String,
    }

    #[test]
    fn malformed_line_reports_file_and_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{{\"id\": \"a\"}}\n\n{{\"id\": 3}}").unwrap();
        let r: Result<Vec<Rec>> = read_jsonl_all(f.path());
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains(&format!("{}:3:", f.path().display())), "{msg}");
    }

    #[test]
    fn invalid_utf8_reports_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"{\"id\":\"a\"}\r\n{\"id\":\"\xff\"}\n")
            .unwrap();
        let r: Result<Vec<Rec>> = read_jsonl_all(f.path());
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains(":2: invalid UTF-8"), "{msg}");
    }

    #[test]
    fn utf8_bom_at_the_start_is_dropped() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"\xEF\xBB\xBF{\"id\":\"a\"}\n{\"id\":\"b\"}\n")
            .unwrap();
        let v: Vec<Rec> = read_jsonl_all(f.path()).unwrap();
        assert_eq!(
            v.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let lines: Vec<_> = Lines::open(f.path()).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(lines[0], (1, "{\"id\":\"a\"}".to_string()));
        // a BOM anywhere else is data: the JSON parser rejects it with the line number
        let mut g = tempfile::NamedTempFile::new().unwrap();
        g.write_all(b"{\"id\":\"a\"}\n\xEF\xBB\xBF{\"id\":\"b\"}\n")
            .unwrap();
        let msg = read_jsonl_all::<Rec>(g.path()).unwrap_err().to_string();
        assert!(msg.contains(":2: invalid JSON"), "{msg}");
    }

    #[test]
    fn read_text_drops_the_bom_and_locates_invalid_utf8() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"\xEF\xBB\xBFa = 1\nb = 2\n").unwrap();
        assert_eq!(read_text(f.path()).unwrap(), "a = 1\nb = 2\n");
        let mut g = tempfile::NamedTempFile::new().unwrap();
        g.write_all(b"a = 1\nb = 2\nc = \"\xff\"\n").unwrap();
        let msg = read_text(g.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&format!(
                "{}:3: invalid UTF-8 at byte 5",
                g.path().display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn crlf_and_blank_lines_are_fine() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"{\"id\":\"a\"}\r\n\r\n{\"id\":\"b\"}")
            .unwrap();
        let v: Vec<Rec> = read_jsonl_all(f.path()).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].id, "b");
    }
}

//! Shared helpers of the benchmark examples: `--key value` arguments, a streaming
//! safetensors reader (reads one tensor at a time with positioned reads, so the input
//! file is neither loaded nor memory-mapped and peak RSS reflects the index build
//! alone), and /proc/self/status memory figures.
#![allow(dead_code)]

use colzero_core::MultiVector;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `--key value` pairs and bare `--flag`s.
pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse() -> Self {
        let mut m = HashMap::new();
        let v: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < v.len() {
            let k = v[i].trim_start_matches("--").to_string();
            if i + 1 < v.len() && !v[i + 1].starts_with("--") {
                m.insert(k, v[i + 1].clone());
                i += 2;
            } else {
                m.insert(k, "true".into());
                i += 1;
            }
        }
        Args(m)
    }
    pub fn str(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
    pub fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.0
            .get(k)
            .map(|v| v.parse().unwrap_or_else(|_| panic!("--{k}: bad value {v}")))
            .unwrap_or(default)
    }
    pub fn flag(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
}

/// A safetensors file of F32 [tokens, dim] tensors, read tensor by tensor.
pub struct StreamStore {
    file: File,
    base: u64,
    /// (id, shape, start, end), sorted by id.
    pub entries: Vec<(String, [usize; 2], u64, u64)>,
}

impl StreamStore {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let mut len = [0u8; 8];
        file.read_exact_at(&mut len, 0)?;
        let n = u64::from_le_bytes(len);
        let mut header = vec![0u8; n as usize];
        file.read_exact_at(&mut header, 8)?;
        let h: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)?;
        let mut entries = Vec::new();
        for (k, v) in h {
            if k == "__metadata__" {
                continue;
            }
            assert_eq!(v["dtype"], "F32", "{k}: only F32 stores");
            let s = &v["shape"];
            let o = &v["data_offsets"];
            entries.push((
                k,
                [
                    s[0].as_u64().unwrap() as usize,
                    s[1].as_u64().unwrap() as usize,
                ],
                o[0].as_u64().unwrap(),
                o[1].as_u64().unwrap(),
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self {
            file,
            base: 8 + n,
            entries,
        })
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn dim(&self) -> usize {
        self.entries.first().map(|e| e.1[1]).unwrap_or(0)
    }
    pub fn total_tokens(&self) -> usize {
        self.entries.iter().map(|e| e.1[0]).sum()
    }
    /// Reads entry `i`.
    pub fn read(&self, i: usize) -> (String, MultiVector) {
        let (id, shape, s, e) = &self.entries[i];
        let mut b = vec![0u8; (e - s) as usize];
        self.file
            .read_exact_at(&mut b, self.base + s)
            .expect("read tensor");
        let data: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (
            id.clone(),
            MultiVector::new(shape[1].max(1), data).expect("shape"),
        )
    }
}

/// A field of /proc/self/status in kB (VmHWM, VmRSS, RssAnon...).
pub fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// CPU seconds (user + system, all threads) used by this process so far, from
/// /proc/self/stat (clock ticks of 1/100 s).
pub fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

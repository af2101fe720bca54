//! `colzero serve`: the HTTP search service (crate `colzero-serve`) on the command line.
//!
//! Contract: this file only turns flags into a `colzero_serve::ServeConfig` and starts
//! the service; it binds 127.0.0.1 unless `--host` says otherwise, prints
//! `listening on http://HOST:PORT` on stdout once the port is bound (port 0 picks a free
//! one), and returns when SIGINT/SIGTERM ended the service after in-flight requests.

use super::{Ctx, EncoderArgs};
use anyhow::{bail, Result};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Options of `colzero serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory: queries and documents sent as text are encoded with it.
    #[arg(long)]
    pub model: PathBuf,
    /// An index to serve, as NAME=DIR (repeat for several).
    #[arg(long = "index", value_name = "NAME=DIR")]
    pub indexes: Vec<String>,
    /// Directory where `POST /indices` creates indexes; the indexes already in it are served.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to bind (loopback by default; binding elsewhere exposes the service).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to bind (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Requests holding CPU work at once, queued or running (503 with Retry-After above).
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// CPU jobs (encoding, search, writes) running at once.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Runs `colzero serve`.
pub fn run(args: Args, _ctx: &Ctx) -> Result<()> {
    let mut cfg = colzero_serve::ServeConfig::new(&args.model);
    cfg.load = args.encoder.load_options();
    cfg.encode_batch_size = args.encoder.batch_size.max(1);
    for spec in &args.indexes {
        let Some((name, dir)) = spec.split_once('=') else {
            bail!("--index {spec}: expected NAME=DIR");
        };
        cfg.indexes.push((name.to_string(), PathBuf::from(dir)));
    }
    if cfg.indexes.is_empty() && args.data_dir.is_none() {
        bail!("give at least one --index NAME=DIR or a --data-dir");
    }
    cfg.data_dir = args.data_dir;
    cfg.limits.max_body_bytes = args.max_body_bytes;
    cfg.limits.max_queue = args.max_queue;
    cfg.limits.workers = args.workers;
    let addr = SocketAddr::new(args.host, args.port);
    colzero_serve::serve(&cfg, addr, |bound| {
        println!("listening on http://{bound}");
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("colzero serve: stopped");
    Ok(())
}

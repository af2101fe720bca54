//! Fault injection for crash tests: a named point where a test can have the process
//! killed, so that "kill -9 at every write step" is a deterministic test, not timing luck.
//!
//! Contract:
//! - [`point`]`(name)` does nothing unless the environment variable `COLZERO_FAULT`
//!   names that point: `COLZERO_FAULT=<name>` kills the process (SIGKILL: no destructor,
//!   no flush, exactly like `kill -9`) the first time the point is reached;
//!   `COLZERO_FAULT=<name>@<n>` kills it the n-th time (1-based).
//! - Points are named `<area>.<step>` (e.g. `index.commit.manifest`); [`points_hit`] lists
//!   the points reached so far in this process, in order, so a test can enumerate them
//!   (`COLZERO_FAULT_TRACE=<file>` appends each name to that file as it is reached).
//! - The cost when the variable is unset is one environment lookup per point; points sit
//!   on write steps (a few per command), never in loops over data.

use std::sync::Mutex;

static HITS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A fault-injection point (see module docs).
pub fn point(name: &str) {
    let count = {
        let mut hits = HITS.lock().unwrap_or_else(|e| e.into_inner());
        hits.push(name.to_string());
        hits.iter().filter(|h| *h == name).count()
    };
    if let Some(trace) = std::env::var_os("COLZERO_FAULT_TRACE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
        {
            let _ = writeln!(f, "{name}");
        }
    }
    let Ok(spec) = std::env::var("COLZERO_FAULT") else {
        return;
    };
    let (want, nth) = match spec.split_once('@') {
        Some((n, k)) => (n, k.parse::<usize>().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if want == name && count == nth {
        kill_self();
    }
}

/// The points reached so far in this process, in order.
pub fn points_hit() -> Vec<String> {
    HITS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn kill_self() -> ! {
    #[cfg(unix)]
    {
        // SAFETY: kill(2) on our own pid with SIGKILL; it does not return.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    std::process::abort()
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_are_recorded_in_order() {
        super::point("test.a");
        super::point("test.b");
        let hits = super::points_hit();
        let a = hits.iter().position(|h| h == "test.a").unwrap();
        let b = hits.iter().position(|h| h == "test.b").unwrap();
        assert!(a < b);
    }
}

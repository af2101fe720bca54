//! Process-wide CPU floating-point setup: flush subnormal floats to zero on every thread
//! that does numeric work; bound the worker-thread count by the machine's CPUs.
//!
//! Contract: [`init`] sets the calling thread's FTZ (flush-to-zero) and DAZ
//! (denormals-are-zero) modes and builds rayon's global pool — the pool our loops and
//! candle's matmuls run on — with `threads` threads (rayon's default when `None`), each
//! started with the same modes. Call it once, at the start of `main`, before any rayon or
//! candle work; it returns false when the global pool already existed (its threads then
//! keep their modes; the calling thread is still switched). [`bound_threads`] clamps a
//! requested thread count to the CPUs available (the binary applies it to `--threads`
//! before [`init`]). [`flush_denormals`] switches
//! only the calling thread. On targets other than x86/x86_64 both change nothing.
//!
//! Why: training produces subnormal values (attention probabilities of masked or distant
//! keys, tiny gradients), and on Intel cores every FMA that touches one takes a microcode
//! assist of ~100 cycles. Measured on a MiniLM ColBERT training step (batch 32, q 32 /
//! d 180, Xeon with AVX-512, 2 threads): 50 s per step with subnormals, 17–20 s with
//! FTZ/DAZ, the same losses to the printed digits. A subnormal f32 is below 1.2e-38: flushing
//! it changes no score or gradient that matters (PyTorch's oneDNN kernels run with the
//! same modes).

/// The number of CPUs this process may run on (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker-thread count to use for a requested `threads` on a machine with `cpus`
/// CPUs: `requested` clamped to `1..=cpus`, since more threads than CPUs only add memory
/// (one stack and one set of scratch buffers each) and scheduling cost — `--threads 20000`
/// used to hang. Returns the count and, when it differs from the request, a note saying so.
pub fn bound_threads(requested: usize, cpus: usize) -> (usize, Option<String>) {
    let cpus = cpus.max(1);
    let n = requested.clamp(1, cpus);
    let note = (n != requested)
        .then(|| format!("--threads {requested}: this machine has {cpus} CPUs; using {n} threads"));
    (n, note)
}

/// Sets FTZ and DAZ on the calling thread (x86/x86_64 only; a no-op elsewhere).
#[allow(deprecated)] // _mm_getcsr/_mm_setcsr: deprecated in favour of inline asm, still exact
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        // SAFETY: writes only the FTZ (bit 15) and DAZ (bit 6) control bits of this
        // thread's MXCSR; SSE is part of the x86_64 baseline.
        unsafe { _mm_setcsr(_mm_getcsr() | 0x8040) };
    }
    #[cfg(all(target_arch = "x86", target_feature = "sse"))]
    {
        use std::arch::x86::{_mm_getcsr, _mm_setcsr};
        // SAFETY: as above.
        unsafe { _mm_setcsr(_mm_getcsr() | 0x8040) };
    }
}

/// Switches the calling thread and builds rayon's global pool (`threads` threads, or
/// rayon's default) with every worker switched. Returns false if the pool already existed.
pub fn init(threads: Option<usize>) -> bool {
    flush_denormals();
    let mut builder = rayon::ThreadPoolBuilder::new().start_handler(|_| flush_denormals());
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    builder.build_global().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    #[test]
    fn thread_counts_are_bounded_by_the_cpus() {
        assert_eq!(bound_threads(4, 8), (4, None));
        assert_eq!(bound_threads(8, 8), (8, None));
        let (n, note) = bound_threads(20000, 16);
        assert_eq!(n, 16);
        assert_eq!(
            note.as_deref(),
            Some("--threads 20000: this machine has 16 CPUs; using 16 threads")
        );
        assert_eq!(bound_threads(0, 4).0, 1);
        assert_eq!(bound_threads(3, 0).0, 1);
        assert!(available_cpus() >= 1);
    }

    #[test]
    fn subnormal_products_flush_to_zero_on_the_switched_thread() {
        // A fresh thread, so the test harness's own threads keep their modes.
        let (before, after) = std::thread::spawn(|| {
            let tiny = black_box(1.0e-30f32) * black_box(1.0e-10f32);
            flush_denormals();
            let flushed = black_box(1.0e-30f32) * black_box(1.0e-10f32);
            let normal = black_box(1.0e-20f32) * black_box(1.0e-10f32);
            (tiny, (flushed, normal))
        })
        .join()
        .unwrap();
        assert!(before > 0.0 && before < f32::MIN_POSITIVE, "{before}");
        if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
            assert_eq!(after.0, 0.0);
        }
        assert!(
            (after.1 - 1.0e-30).abs() < 1.0e-36,
            "normal values are untouched"
        );
    }
}

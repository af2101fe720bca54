//! The memory allocator of the `colzero` binary and of the benchmarks (feature `mimalloc`).
//!
//! Contract: [`MiMalloc`] is the allocator to declare with `#[global_allocator]`, and
//! [`retain_freed_memory`] — called once at the start of `main` — turns off mimalloc's
//! delayed purging of freed pages, so most freed memory is reused without a round trip
//! through the OS.
//!
//! Why: a training step or an encoding batch allocates and frees activation buffers of
//! tens of megabytes hundreds of times. glibc serves every block of 32 MB or more with a
//! fresh `mmap` and unmaps it on free, so each buffer is page-faulted and zeroed by the
//! kernel again: on a MiniLM ColBERT training step (batch 32, q 32 / d 180) that was 11.4
//! million page faults and 43% of the CPU time in the kernel. mimalloc with purging
//! disabled took 80 thousand faults and 28% less CPU time for the same step (identical
//! loss); mimalloc with its default 1 s purge delay was worse than glibc.
//!
//! Known limit: the largest blocks are still given back and faulted in again as 2 MB
//! transparent huge pages (idle machine: 9.5 thousand such faults per warmup + one step,
//! a third of the step's CPU time in the kernel's page clearing). Removing that is the
//! next step for training speed.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc v3 sources that libmimalloc-sys 0.1.49 builds
/// by default (the crate does not export this constant). Its default there is 1000 (ms).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_DEFAULT: std::ffi::c_long = 1000;

/// Disables purging of freed memory. Returns false (and changes nothing) when the
/// linked mimalloc does not look like the version this was written for.
pub fn retain_freed_memory() -> bool {
    // SAFETY: mi_option_get/mi_option_set only read/write mimalloc's option table; the
    // index is checked against its documented default before anything is written.
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) != PURGE_DELAY_DEFAULT {
            return false;
        }
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_get(PURGE_DELAY) == -1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn purge_delay_option_is_found_and_disabled() {
        // Not the global allocator in this test binary, but the same linked library and
        // option table: the index must point at the purge delay (default 1000 ms).
        let before = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert!(
            super::retain_freed_memory(),
            "purge delay option reads {before}"
        );
    }
}

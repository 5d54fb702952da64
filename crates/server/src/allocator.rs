//! Process-wide tuning of glibc's allocator, set once before anything allocates much.
//!
//! glibc serves a large allocation with its own `mmap` (returned to the system when
//! freed) only above a threshold that it raises, by default, to the size of every such
//! block freed, up to 32 MiB. After the first multi-MiB buffer is freed (an S3 part, a
//! large manifest list), every later one comes from the heap and is kept there when freed:
//! a node streaming a 2 GiB upload to S3 in 10 MiB parts peaked at 88 MiB RSS. Fixed at
//! 1 MiB: 34 MiB for the same upload after a 512 MiB push, and a docker-style image push
//! on the filesystem peaks at 34-39 MiB instead of 47-52 (a 4 MiB threshold helped S3 but
//! not that one). Measured with `berth-bench run` (`push-large`, `push-chunked-2g` over
//! radosgw; `memory`), single runs; the price is some CPU for the page faults of fresh
//! mappings (6.1 s instead of 4.5 s of server CPU for the 2 GiB upload). Blocks of a MiB
//! and more stay out of the heap, so memory goes back when a request ends. An operator's
//! own `MALLOC_MMAP_THRESHOLD_` wins.

/// Allocations from this size up get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Fixes the threshold (which also stops glibc from moving it), unless the operator set
/// glibc's own `MALLOC_MMAP_THRESHOLD_`, which glibc has applied already.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: `mallopt` only changes allocator parameters; it is called before the
        // runtime starts its threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

//! Process-wide tuning of glibc's allocator, set once before anything allocates much.
//!
//! glibc serves a large allocation with its own `mmap` (returned to the system when
//! freed) only above a threshold that it raises, by default, to the size of every such
//! block freed, up to 32 MiB. After the first multi-MiB buffer is freed (an S3 part, a
//! large manifest list), every later one comes from the heap and is kept there when freed:
//! a node streaming a 2 GiB upload to S3 in 10 MiB parts peaked at 88 MiB, against 44 MiB
//! with the threshold fixed at 4 MiB after the benchmark's push-large had run too
//! (`berth-bench run --scenario push-chunked-2g` over radosgw; about 30% more CPU for
//! the page faults of fresh mappings). Fixing it keeps blocks of a few MiB and more out
//! of the heap, so memory goes back when a request ends.

/// Allocations from this size up get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;

/// Fixes the threshold (which also stops glibc from moving it).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; it is called before the
    // runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

//! The allocator setting of the `gpo` binary and its benchmarks (both use mimalloc).
//!
//! A training update allocates and frees tens of megabytes of tensors. By default mimalloc hands
//! freed memory back to the OS after a delay (it "purges" it), and later updates fault the same
//! amount in again, each page zeroed by the kernel: measured, 31% of a training update's time
//! (docs/development.md, "Training speed"). [`keep_freed_memory`] turns purging off, so freed
//! pages stay with the process for its next allocations; the process keeps its peak memory until
//! it ends.

use core::ffi::{c_int, c_long};

// The linked mimalloc: the crate pulls in the C library these symbols come from.
use mimalloc as _;

/// `mi_option_purge_delay` in mimalloc's `enum mi_option_e` (mimalloc.h; the same index in v2
/// and in v3, the version the `mimalloc` crate builds by default): milliseconds before freed
/// memory is purged, -1 for never.
const MI_OPTION_PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
}

/// Freed memory stays with the process instead of going back to the OS (mimalloc's purge delay
/// set to "never"). Call once, first thing in `main`; results do not depend on it.
pub fn keep_freed_memory() {
    // SAFETY: mimalloc's option setters only store a value; any option index is accepted.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// mimalloc's current purge delay in milliseconds (-1: never).
pub fn purge_delay() -> c_long {
    // SAFETY: reads an option value.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_mimallocs_purge_delay() {
        // mimalloc v3's default purge delay is 1000 ms (src/options.c; v2's is 10): a wrong
        // option index would read another option's default (its neighbours' are 1 and 0).
        assert_eq!(purge_delay(), 1000, "the default purge delay");
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }
}

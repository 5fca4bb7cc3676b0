//! The allocator Baton's binaries run on: mimalloc, told to keep the memory
//! it frees for ten seconds rather than one before handing it back to the
//! kernel.
//!
//! The projector frees most of a batch's memory (decoded events, the views
//! it folded, sled's copied tree nodes) as the next batch allocates as much
//! again. With mimalloc's default purge delay the freed pages went back to
//! the kernel and were faulted in again, 2 MiB transparent huge pages zeroed
//! each time: 15% of a 500,000-event projection's samples were the kernel
//! clearing pages. Kept for ten seconds, memory freed by one batch is there
//! for the next: the page faults of that projection fell from 7,174 to 655,
//! and a rebuild by the projector binary used 3-13% less CPU (bench/HISTORY.md).
//! A process idle for ten seconds still gives memory back;
//! never purging at all (-1) was no faster and left more resident.
//!
//! An operator's `MIMALLOC_PURGE_DELAY` always wins. This crate holds the
//! workspace's only unsafe code, one call into mimalloc's option API, and
//! must never hold any other.

use std::ffi::c_long;

pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (the same index in
/// its v2 and v3); libmimalloc-sys does not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's environment variable for the same option.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Milliseconds freed memory is kept before it goes back to the kernel:
/// many of the projector's batches long, and short enough that an idle
/// process shrinks. mimalloc's own default is 1,000.
pub const KEEP_FREED_MS: i64 = 10_000;

/// What [`keep_freed_memory`] left in force, in milliseconds (-1: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeDelay {
    /// Baton's [`KEEP_FREED_MS`].
    Baton(i64),
    /// What the operator set in `MIMALLOC_PURGE_DELAY`.
    FromEnvironment(i64),
}

/// Has mimalloc keep freed memory for [`KEEP_FREED_MS`] before returning
/// it to the kernel, unless the operator chose otherwise through
/// `MIMALLOC_PURGE_DELAY`. Call it first thing in `main`.
pub fn keep_freed_memory() -> PurgeDelay {
    if std::env::var_os(PURGE_DELAY_ENV).is_some() {
        return PurgeDelay::FromEnvironment(purge_delay());
    }
    // Fits a c_long on every target (at least 32 bits).
    set_purge_delay(KEEP_FREED_MS as c_long);
    PurgeDelay::Baton(purge_delay())
}

/// The purge delay in force, in milliseconds (-1: never).
pub fn purge_delay() -> i64 {
    // SAFETY: mi_option_get reads one entry of mimalloc's option table and
    // checks the index against the table's length; it takes no pointers.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    // c_long is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    i64::from(value)
}

fn set_purge_delay(milliseconds: c_long) {
    // SAFETY: as for mi_option_get; mi_option_set stores one integer in
    // that table, which mimalloc reads atomically, from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, milliseconds)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index is mimalloc's purge delay: before it is set it reads as the
    /// environment's value or mimalloc v3's documented default of 1,000 ms,
    /// and setting it through the index changes what mimalloc reports.
    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        let configured = std::env::var(PURGE_DELAY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok());
        assert_eq!(purge_delay(), configured.unwrap_or(1_000));

        let applied = keep_freed_memory();
        match configured {
            Some(ms) => {
                assert_eq!(applied, PurgeDelay::FromEnvironment(ms));
                assert_eq!(purge_delay(), ms);
            }
            None => {
                assert_eq!(applied, PurgeDelay::Baton(KEEP_FREED_MS));
                assert_eq!(purge_delay(), KEEP_FREED_MS);
            }
        }
    }
}

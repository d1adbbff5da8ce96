//! A counting global allocator: live heap bytes, for the memory cases. It
//! forwards to the platform's allocator, or to jemalloc with the harness's
//! `jemalloc` feature.
//!
//! RSS (what the issue asks for) also counts pages the allocator keeps after
//! a free, so it overstates what a connection or a stalled stream really
//! holds. The memory cases report both. Counting is off unless a case turns it
//! on, so the timed cases pay one relaxed load per allocation.
//!
//! Bytes are counted per end: a thread that [`mark_producer_thread`] was
//! called on counts for the producing end, every other thread for the
//! consuming end. The stalled case runs its producer on a runtime of its own
//! so the two can be told apart (each end frees what it allocated: they only
//! share a socket).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The allocator the counting one forwards to.
#[cfg(not(feature = "jemalloc"))]
use std::alloc::System as Base;
#[cfg(feature = "jemalloc")]
use tikv_jemallocator::Jemalloc as Base;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Live bytes of the consuming end (index 0) and the producing end (1).
static LIVE: [AtomicI64; 2] = [AtomicI64::new(0), AtomicI64::new(0)];

thread_local! {
    /// Which end this thread counts for (an index into `LIVE`).
    static END: Cell<usize> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // `try_with`: a thread being torn down still frees memory.
    let end = END.try_with(Cell::get).unwrap_or(0);
    LIVE[end].fetch_add(delta, Ordering::Relaxed);
}

/// The base allocator, counting live bytes while enabled.
pub struct Counting;

// SAFETY: every method forwards to `Base` with the caller's arguments
// unchanged; the counters are plain atomics and never affect allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            count(layout.size() as i64);
        }
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { Base.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            count(layout.size() as i64);
        }
        // SAFETY: as above.
        unsafe { Base.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Ordering::Relaxed) {
            count(-(layout.size() as i64));
        }
        // SAFETY: as above; `ptr` came from this allocator with `layout`.
        unsafe { Base.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            count(new_size as i64 - layout.size() as i64);
        }
        // SAFETY: as above.
        unsafe { Base.realloc(ptr, layout, new_size) }
    }
}

/// Starts counting. Call it before the runtime starts. Blocks allocated
/// before are not counted but their frees are, so the absolute figure can be
/// off; the cases only use differences between two readings taken later.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Live heap bytes counted so far, both ends.
pub fn live() -> i64 {
    live_consumer() + live_producer()
}

/// Live heap bytes counted on the consuming end's threads.
pub fn live_consumer() -> i64 {
    LIVE[0].load(Ordering::Relaxed)
}

/// Live heap bytes counted on the producing end's threads.
pub fn live_producer() -> i64 {
    LIVE[1].load(Ordering::Relaxed)
}

/// Counts this thread's allocations for the producing end (a runtime's
/// `on_thread_start` hook).
pub fn mark_producer_thread() {
    END.with(|end| end.set(1));
}

//! `kubesim`: deterministic simulation testing of a Kubernetes control plane's storage path.
//! The command line is the library's (`kubesim::main`); the binary adds its allocator.
//!
//! SIGPIPE stays ignored, as Rust sets it up: a reader that closes the pipe early
//! (`kubesim campaign ... | head -1`) must not kill the process before its verdict, which
//! is the exit code (`kubesim::cli::out` stops printing, `kubesim::cli::exit_code` keeps the
//! verdict).

use std::process::ExitCode;

/// mimalloc: a simulation allocates and frees small objects (messages, futures, history
/// records) at a high rate; it runs the default campaign about 5% faster than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in mimalloc v3's `mi_option_e`, for which
/// libmimalloc-sys has no constant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// That option's default in the mimalloc the lock file pins (v3 `options.c`: 1000 ms). Finding
/// it there is how `keep_freed_memory` knows option 15 is the purge delay.
const MI_PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1000;

/// Freed memory stays with the process instead of going back to the OS a second after it is
/// freed: a campaign worker drops a whole seed's world and builds the next seed's at once,
/// and purging the pages in between, then faulting them back in, cost 5 to 8% of a
/// campaign's wall time. A worker's footprint stays that of its largest seed, which it
/// reached anyway. Allocation only: no simulation sees it, so no trace hash moves.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins, and a default other than the one
/// expected (another mimalloc, whose option 15 may be something else) leaves mimalloc as it is.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: called first thing in `main`, before any other thread exists (mimalloc's
    // option calls are not thread safe), with an option id that exists in both v2 and v3.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    kubesim::main()
}

//! glibc's malloc arenas, capped for `serve` before the runtime starts.
//!
//! Why: glibc gives threads that contend for the heap arenas of their own, up to eight per
//! core, and an arena keeps the pages its threads freed. The server's blocking threads each
//! parse mail and touch the store, so after a burst of deliveries every arena holds its own
//! free memory: `bench/imap.sh` (5,000 deliveries, then 20 IMAP clients) measured 136 MB RSS
//! with glibc's default and 104 MB with at most two arenas. The cap is a glibc tunable read
//! only when a process starts, so `serve` sets it and executes itself again, once (same pid,
//! same arguments). An operator's own `GLIBC_TUNABLES` naming `glibc.malloc.arena_max` is
//! left as it is; on a libc without the tunable the variable is simply ignored.
//!
//! The same variable fixes glibc's mmap threshold at its 128 KiB default. Left dynamic,
//! glibc raises it to the size of the largest mapped block freed so far: sled's 512 KiB log
//! buffers, zstd's windows and a large message's buffers then come from the heap instead of
//! their own mappings, and each one freed leaves a hole the heap cannot give back.
//! `bench/storage.sh`-style runs (20,000 deliveries of 4 KB, arena cap 2 in both) measured
//! 193 MB RSS after delivery with the dynamic threshold and 171 MB with it fixed, at the
//! same CPU per message. An operator's own `glibc.malloc.mmap_threshold` wins here too.

use std::os::unix::process::CommandExt;

const VAR: &str = "GLIBC_TUNABLES";
const ARENA_MAX: &str = "glibc.malloc.arena_max";
const MMAP_THRESHOLD: &str = "glibc.malloc.mmap_threshold";
/// glibc's own default, fixed (which also stops it from moving).
const MMAP_THRESHOLD_BYTES: u32 = 128 * 1024;

/// The `GLIBC_TUNABLES` value to run with, or None when `current` already sets both.
fn tunables(current: &str, cores: usize) -> Option<String> {
    let mut add = Vec::new();
    if !current.contains(ARENA_MAX) {
        add.push(format!("{ARENA_MAX}={}", cores.max(2)));
    }
    if !current.contains(MMAP_THRESHOLD) {
        add.push(format!("{MMAP_THRESHOLD}={MMAP_THRESHOLD_BYTES}"));
    }
    if add.is_empty() {
        return None;
    }
    let add = add.join(":");
    Some(if current.is_empty() {
        add
    } else {
        format!("{current}:{add}")
    })
}

/// Executes this binary again with the cap and the fixed threshold, unless both are set;
/// returns only when they are or the new image cannot be started (then the server runs with
/// glibc's defaults).
pub fn cap_for_serve() {
    let current = std::env::var(VAR).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let Some(value) = tunables(&current, cores) else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd.args(args).env(VAR, value).exec();
    eprintln!("note: running without a cap on malloc arenas ({err})");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_added_once_and_an_operators_own_wins() {
        let fixed = "glibc.malloc.mmap_threshold=131072";
        assert_eq!(
            tunables("", 1),
            Some(format!("glibc.malloc.arena_max=2:{fixed}"))
        );
        assert_eq!(
            tunables("glibc.malloc.tcache_count=0", 4),
            Some(format!(
                "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4:{fixed}"
            ))
        );
        assert_eq!(
            tunables("glibc.malloc.arena_max=8", 2),
            Some(format!("glibc.malloc.arena_max=8:{fixed}"))
        );
        assert_eq!(
            tunables("glibc.malloc.mmap_threshold=65536", 2).as_deref(),
            Some("glibc.malloc.mmap_threshold=65536:glibc.malloc.arena_max=2")
        );
        assert_eq!(
            tunables("glibc.malloc.arena_max=8:glibc.malloc.mmap_threshold=1", 2),
            None
        );
    }
}

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

use std::os::unix::process::CommandExt;

const VAR: &str = "GLIBC_TUNABLES";
const ARENA_MAX: &str = "glibc.malloc.arena_max";

/// The `GLIBC_TUNABLES` value to run with, or None when `current` already sets the cap.
fn tunables(current: &str, cores: usize) -> Option<String> {
    if current.contains(ARENA_MAX) {
        return None;
    }
    let cap = format!("{ARENA_MAX}={}", cores.max(2));
    Some(if current.is_empty() {
        cap
    } else {
        format!("{current}:{cap}")
    })
}

/// Executes this binary again with the cap, unless it is already set; returns only when it
/// is set or the new image cannot be started (then the server runs uncapped).
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
        assert_eq!(tunables("", 1).as_deref(), Some("glibc.malloc.arena_max=2"));
        assert_eq!(
            tunables("glibc.malloc.tcache_count=0", 4).as_deref(),
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4")
        );
        assert_eq!(tunables("glibc.malloc.arena_max=8", 2), None);
    }
}

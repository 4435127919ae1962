//! Exit codes, the same whether a command ran on the server or on the data directory
//! (README "Exit codes").

use legate::admin::AdminError;
use std::process::ExitCode;

/// The command did what it was asked.
pub(super) const OK: u8 = 0;
/// A check ran and found a problem (`audit verify`, `dns check`, `store verify`, `doctor`).
pub(super) const PROBLEM: u8 = 1;
/// The request was refused: bad arguments, unknown agent or key, conflict, not allowed.
pub(super) const REFUSED: u8 = 3;
/// The command could not run: no data directory, store in use or unreadable, socket or
/// I/O failure, internal error.
pub(super) const FAILED: u8 = 4;
// 2 is clap's: the command line itself was wrong.

/// The exit code for an error that ended a command.
pub(super) fn code_of(e: &anyhow::Error) -> ExitCode {
    let refused = e
        .chain()
        .find_map(|c| c.downcast_ref::<AdminError>())
        .is_some_and(AdminError::is_refusal);
    ExitCode::from(if refused { REFUSED } else { FAILED })
}

pub(super) fn problem_if(found: bool) -> ExitCode {
    ExitCode::from(if found { PROBLEM } else { OK })
}

//! The `legate` binary: a thin entry point over [`cli`], which holds the argument types and one
//! module per command group.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

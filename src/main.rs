//! The thin shell: parse the command line, run, turn the outcome into an exit code.
//!
//! clap exits 2 on a usage error, but 2 means "drift" here (docs/design.md,
//! "Exit codes"): a CI job with a mistyped flag would read as fleet drift.
//! So parsing goes through `try_parse` and every usage error exits 1, while
//! `--help` and `--version` print to stdout and exit 0.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything opens a file or a socket, or starts a thread: see
    // `rampart::limits`.
    rampart::limits::cap_malloc_arenas();
    let _ = rampart::limits::raise_nofile();
    let cli = match rampart::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap writes help and version to stdout, errors to stderr.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                rampart::exit::BAD_INPUT
            } else {
                rampart::exit::OK
            });
        }
    };
    match rampart::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote input files (and their positions): inert text.
            eprintln!(
                "rampart: error: {}",
                rampart::report::inert::text(&e.to_string())
            );
            ExitCode::from(rampart::exit::BAD_INPUT)
        }
    }
}

//! The thin shell: parse the command line, run, turn the outcome into an exit code.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rampart::cli::Cli::parse();
    match rampart::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rampart: error: {e}");
            ExitCode::from(1)
        }
    }
}

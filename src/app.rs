//! Dispatch of the commands: load inputs, call the layer that does the work,
//! return the exit code of SPEC §5.

use crate::cli::{Cli, Command};
use crate::error::Result;

pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Apply(args) => crate::converge::cli(args, false),
        Command::Audit(args) => crate::converge::cli(args, true),
        Command::Render(args) => crate::playbook::cli_render(&args),
        Command::Inventory(args) => crate::inventory::cli(&args),
        Command::Lab(args) => crate::lab::cli(&args.command),
    }
}

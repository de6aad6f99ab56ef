//! The `lanyard` binary: parse the command line, run the command, and turn
//! its error into a message on stderr (control characters escaped, see
//! [`lanyard_cli::output`]) and the exit code of [`lanyard_cli::error`]
//! (clap's own usage errors exit 2).

use std::process::ExitCode;

use clap::Parser as _;
use lanyard_cli::cli::Cli;

fn main() -> ExitCode {
    match lanyard_cli::commands::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            lanyard_cli::output::note(&format!("lanyard: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

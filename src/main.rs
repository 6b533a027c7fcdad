//! The kcluster command: parse arguments, run, print the error if any, exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = kcluster::cli::main();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

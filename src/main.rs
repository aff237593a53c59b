use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`bale status | head`), like other tools.
    // SAFETY: restoring the default disposition of a signal before any
    // thread starts has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = bale::cli::Cli::parse();
    match bale::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            bale::cli::report(e.as_ref());
            ExitCode::from(1)
        }
    }
}

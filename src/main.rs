use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default), so that a closed stdout is an
    // error bale handles: it ends quietly with exit code 1.
    bale::memory::map_large_allocations();
    let cli = bale::cli::Cli::parse();
    match bale::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<bale::cli::BrokenPipe>() => ExitCode::from(1),
        Err(e) => {
            bale::cli::report(e.as_ref());
            ExitCode::from(1)
        }
    }
}

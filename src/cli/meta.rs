//! `bale completions SHELL` and `bale man`: generated from the argument
//! definitions, so they never drift from them.

use clap::CommandFactory;

use super::{Cli, Ctx};

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: clap_complete::Shell,
}

pub fn completions(ctx: &Ctx, args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "bale", &mut out);
    ctx.print(String::from_utf8_lossy(&out).trim_end());
    Ok(())
}

pub fn man(ctx: &Ctx) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    ctx.print(String::from_utf8_lossy(&out).trim_end());
    Ok(())
}

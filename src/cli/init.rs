//! `bale init [--force]`.

use crate::repo::Repo;

use super::Ctx;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Restore the default configuration of an existing repository (the
    /// cache and the state DB are kept)
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let dir = Repo::init(&ctx.cwd, args.force)?;
    ctx.say(format!(
        "Initialized a bale repository in {}",
        dir.display()
    ));
    Ok(())
}

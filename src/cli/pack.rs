//! `bale pack [--dry-run]`: move small loose objects into packs.

use crate::ops::pack;

use super::{Ctx, human_size, plural};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only say what would be packed
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Pack even though cache.dir is set (only when no other repository
    /// links files from this cache as hardlinks or symlinks)
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let opts = pack::Options {
        dry_run: args.dry_run,
        force: args.force,
        quiet: ctx.quiet,
        wait: ctx.wait,
    };
    let p = pack::run(&repo, opts)?;
    ctx.say(format!(
        "{} {} ({}) into packs under {}; kept {} loose that workspace links use",
        if args.dry_run { "would pack" } else { "packed" },
        plural(p.packed, "object"),
        human_size(p.bytes),
        human_size(repo.settings.pack_threshold),
        p.linked
    ));
    if !p.corrupt.is_empty() {
        return Err(super::corrupt_found(&repo.cache, &p.corrupt).into());
    }
    Ok(())
}

//! `bale add PATH...`: hash and store, link the workspace per `cache.type`,
//! write `PATH.bale`, and keep the data out of git.

use std::path::PathBuf;

use crate::ops::add;

use super::{Ctx, human_size, plural, warn};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or folders to track
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Leave out symlinks inside a folder (naming them) instead of refusing
    #[arg(long)]
    pub skip_symlinks: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let mut state = repo.state()?;
    let opts = add::Options {
        skip_symlinks: args.skip_symlinks,
        quiet: ctx.quiet,
        list_stored: ctx.verbose,
    };
    let done = add::run(&repo, &mut state, &ctx.cwd, &args.paths, opts)?;
    for a in &done.outs {
        a.warnings.iter().for_each(warn);
        ctx.say(format!(
            "{}: added {}, {} ({} new, linked as {})",
            a.key,
            plural(a.nfiles as usize, "file"),
            human_size(a.size),
            plural(a.new_objects, "object"),
            a.link_type
        ));
        if let Some(h) = &a.hint {
            super::hint(h);
        }
        for f in &a.stored {
            ctx.say(format!("  stored:   {f}"));
        }
    }
    match done.failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

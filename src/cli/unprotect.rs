//! `bale unprotect PATH...`: turn linked (read-only, shared with the cache)
//! files into private writable copies, so they can be edited in place.

use std::path::PathBuf;

use crate::ops::unprotect;
use crate::paths;

use super::{Ctx, plural};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tracked outs, or files and folders inside them
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    for p in &args.paths {
        let abs = paths::normalize(&ctx.cwd.join(p));
        let made = unprotect::run(&repo, &abs, p)?;
        ctx.say(format!(
            "{}: {} made writable",
            p.display(),
            plural(made, "file")
        ));
    }
    Ok(())
}

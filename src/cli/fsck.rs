//! `bale fsck [--rebuild-index]`: re-hash every object in the cache, loose
//! and packed, and name the corrupt ones (which are set aside or dropped so
//! that they are never served again). Damaged pack records, whether found
//! now or by an earlier command, are named by pack file and offset until
//! they are dealt with.

use crate::error::Error;
use crate::ops::fsck;

use super::{Ctx, human_size, plural};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// First rebuild the pack index from the packs alone
    #[arg(long)]
    pub rebuild_index: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let opts = fsck::Options {
        rebuild_index: args.rebuild_index,
        wait: ctx.wait,
        quiet: ctx.quiet,
    };
    let done = fsck::run(&repo, opts)?;
    if let Some((objects, packs)) = done.rebuilt {
        ctx.say(format!(
            "rebuilt the pack index: {} in {}",
            plural(objects, "object"),
            plural(packs, "pack")
        ));
    }
    ctx.say(format!(
        "checked {} ({}): {} corrupt, {}",
        plural(done.objects, "object"),
        human_size(done.bytes),
        done.corrupt,
        plural(done.damaged, "damaged pack record")
    ));
    done.errors.iter().for_each(|e| super::report(e));
    if !done.errors.is_empty() {
        return Err(Error::Errors {
            count: done.errors.len(),
        }
        .into());
    }
    Ok(())
}

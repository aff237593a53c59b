//! `bale fsck [--rebuild-index]`: re-hash every object in the cache, loose
//! and packed, and name the corrupt ones (which are set aside or dropped so
//! that they are never served again).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::progress::Bar;

use super::{Ctx, human_size, plural, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// First rebuild the pack index from the packs alone
    #[arg(long)]
    pub rebuild_index: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    if args.rebuild_index {
        let (objects, packs) = repo.cache.packs().rebuild_index(ctx.wait)?;
        ctx.say(format!(
            "rebuilt the pack index: {} in {}",
            plural(objects, "object"),
            plural(packs, "pack")
        ));
    }
    let objects = repo.cache.list()?;
    let bar = Bar::new(
        objects.len() as u64,
        "checking",
        ctx.quiet || objects.len() < 1000,
    );
    let results: Vec<(Hash, Result<Option<bool>>)> = objects
        .par_iter()
        .map(|&h| {
            let r = repo.cache.verify(h);
            bar.inc(1);
            (h, r)
        })
        .collect();
    bar.finish();
    let mut corrupt = 0;
    let mut bytes = 0;
    for (h, r) in results {
        match r? {
            Some(true) => bytes += repo.cache.size(h)?.unwrap_or(0),
            Some(false) => {
                // `verify` has set it aside already.
                report(&repo.cache.corrupt(h, "the cache"));
                corrupt += 1;
            }
            None => {}
        }
    }
    ctx.say(format!(
        "checked {} ({}): {} corrupt",
        plural(objects.len(), "object"),
        human_size(bytes),
        corrupt
    ));
    if corrupt > 0 {
        return Err(Error::CorruptFound { count: corrupt }.into());
    }
    Ok(())
}

//! `bale fsck`: re-hash every object in the cache and name the corrupt ones
//! (which are set aside so that they are never served again).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::progress::Bar;

use super::{Ctx, human_size, plural, report};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
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
            Some(true) => bytes += repo.cache.stat(h)?.map_or(0, |s| s.size),
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
        return Err(Error::Incomplete { count: corrupt }.into());
    }
    Ok(())
}

//! `bale fsck [--rebuild-index]`: re-hash every object in the cache, loose
//! and packed, and name the corrupt ones (which are set aside or dropped so
//! that they are never served again). Damaged pack records, whether found
//! now or by an earlier command, are named by pack file and offset until
//! they are dealt with.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::progress::Bar;

use super::{Ctx, human_size, plural};

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
    // A pack cut short loses every object past its end: told once, as a
    // truncated pack, not object by object.
    repo.cache.packs().drop_truncated(ctx.wait)?;
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
    let mut corrupt = Vec::new();
    let mut bytes = 0;
    for (h, r) in results {
        match r? {
            Some(true) => bytes += repo.cache.size(h)?.unwrap_or(0),
            // `verify` has set it aside (loose) or dropped it (packed).
            Some(false) => corrupt.push(h),
            None => {}
        }
    }
    let damage = repo.cache.pack_damage()?;
    // Packed objects found corrupt now are among the damaged records.
    corrupt.retain(|h| !damage.iter().any(|d| d.hash == Some(*h)));
    ctx.say(format!(
        "checked {} ({}): {} corrupt, {}",
        plural(objects.len(), "object"),
        human_size(bytes),
        corrupt.len(),
        plural(damage.len(), "damaged pack record")
    ));
    if !corrupt.is_empty() {
        super::report(&super::corrupt_found(&repo.cache, &corrupt));
    }
    if !damage.is_empty() {
        let lines: Vec<String> = damage
            .iter()
            .map(|d| {
                format!(
                    "{} at byte {} ({}): {}{}",
                    crate::paths::quoted(&d.pack),
                    d.offset,
                    human_size(d.length),
                    d.reason,
                    d.hash.map(|h| format!("; object {h}")).unwrap_or_default()
                )
            })
            .collect();
        super::report(&Error::DamagedPacks {
            count: damage.len(),
            list: super::capped_lines(&lines),
        });
    }
    if !corrupt.is_empty() || !damage.is_empty() {
        return Err(Error::Errors {
            count: usize::from(!corrupt.is_empty()) + usize::from(!damage.is_empty()),
        }
        .into());
    }
    Ok(())
}

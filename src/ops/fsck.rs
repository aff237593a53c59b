//! fsck: re-hash every object in the cache, loose and packed; the corrupt
//! ones are set aside or dropped so that they are never served again, and
//! damaged pack records are named by pack file and offset until they are
//! dealt with.

use std::time::Duration;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::human::human_size;
use crate::progress::Bar;
use crate::repo::Repo;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// First rebuild the pack index from the packs alone.
    pub rebuild_index: bool,
    /// How long to wait for the cache's lock.
    pub wait: Duration,
    /// No progress bar.
    pub quiet: bool,
}

/// What fsck checked and found.
pub struct FsckReport {
    /// With `rebuild_index`: the objects and packs the new index holds.
    pub rebuilt: Option<(usize, usize)>,
    /// Objects checked, and the bytes of the sound ones.
    pub objects: usize,
    pub bytes: u64,
    /// Objects found corrupt now (not counting damaged pack records).
    pub corrupt: usize,
    pub damaged: usize,
    /// One error for the corrupt objects, one for the damaged records.
    pub errors: Vec<Error>,
}

pub fn run(repo: &Repo, opts: Options) -> Result<FsckReport> {
    let rebuilt = if opts.rebuild_index {
        Some(repo.cache.packs().rebuild_index(opts.wait)?)
    } else {
        None
    };
    // A pack cut short loses every object past its end: told once, as a
    // truncated pack, not object by object.
    repo.cache.packs().drop_truncated(opts.wait)?;
    let objects = repo.cache.list()?;
    let bar = Bar::new(
        objects.len() as u64,
        "checking",
        opts.quiet || objects.len() < 1000,
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
    let mut errors = Vec::new();
    if !corrupt.is_empty() {
        errors.push(super::corrupt_found(&repo.cache, &corrupt));
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
        errors.push(Error::DamagedPacks {
            count: damage.len(),
            list: super::capped_lines(&lines),
        });
    }
    Ok(FsckReport {
        rebuilt,
        objects: objects.len(),
        bytes,
        corrupt: corrupt.len(),
        damaged: damage.len(),
        errors,
    })
}

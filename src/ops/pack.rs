//! `bale pack`: moves small loose objects into packs, leaving loose every
//! object that a workspace link may use.

use std::collections::HashSet;
use std::time::Duration;

use rayon::prelude::*;

use crate::cache::pack::{Found, PackWriter, Record};
use crate::error::Result;
use crate::fsutil::LinkType;
use crate::hash::Hash;
use crate::manifest;
use crate::progress::Bar;
use crate::repo::Repo;

/// What `pack_loose` did.
#[derive(Debug, Default)]
pub struct Packed {
    /// Objects now packed (their loose files deleted).
    pub packed: usize,
    pub bytes: u64,
    /// Small objects kept loose because a hard link or symlink uses them.
    pub linked: usize,
    /// Loose objects found corrupt (set aside, not packed).
    pub corrupt: Vec<Hash>,
}

/// What packing a loose object comes to.
enum Skip {
    No(Record),
    Manifest,
    /// Missing or corrupt (set aside).
    Gone,
}

/// Objects, and bytes, per committed batch.
const BATCH: usize = 4096;
const BATCH_BYTES: u64 = 64 << 20;

/// `todo` cut into batches of at most `BATCH` objects and about
/// `BATCH_BYTES` bytes (all of a batch is in memory at once).
fn chunks(todo: &[(Hash, u64)]) -> impl Iterator<Item = &[(Hash, u64)]> {
    let mut rest = todo;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let n = rest
            .iter()
            .take(BATCH)
            .take_while(|(_, size)| {
                let first = bytes == 0;
                bytes += size;
                first || bytes <= BATCH_BYTES
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// What `bale pack` is asked for.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Only say what would be packed.
    pub dry_run: bool,
    /// Pack even though `cache.dir` is set.
    pub force: bool,
    pub quiet: bool,
    pub wait: Duration,
}

/// `bale pack`: refuses a shared cache without `force` (another
/// repository may link its objects), then packs the small loose objects.
pub fn run(repo: &Repo, opts: Options) -> Result<Packed> {
    if repo.settings.cache_dir.is_some() && !opts.force && !opts.dry_run {
        return Err(crate::error::Error::SharedCache(
            repo.cache.dir().to_path_buf(),
        ));
    }
    pack_loose(repo, opts.dry_run, opts.quiet, opts.wait)
}

/// Packs every loose object smaller than `pack.threshold` that no workspace
/// file is linked to: not hard-linked anywhere (its link count is 1), and
/// not the target of a symlink that a snapshot of this repository records.
/// Each batch is committed before its loose files are deleted, so a crash
/// leaves an object loose, packed, or both, never neither.
pub fn pack_loose(repo: &Repo, dry_run: bool, quiet: bool, wait: Duration) -> Result<Packed> {
    let symlinked = symlinked_objects(repo)?;
    let threshold = repo.settings.pack_threshold;
    let compress = repo.settings.pack_compression;
    let mut out = Packed::default();
    let mut todo = Vec::new();
    for h in repo.cache.list_loose()? {
        let Some(st) = repo.cache.loose_stat(h) else {
            continue;
        };
        if st.size >= threshold {
            continue;
        }
        if st.nlink > 1 || symlinked.contains(&h) {
            out.linked += 1;
            continue;
        }
        todo.push((h, st.size));
    }
    if dry_run {
        out.packed = todo.len();
        out.bytes = todo.iter().map(|(_, s)| s).sum();
        return Ok(out);
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let bar = Bar::new(todo.len() as u64, "packing", quiet || todo.len() < 1000);
    let mut w = PackWriter::open(repo.cache.packs(), wait)?;
    for chunk in chunks(&todo) {
        let records: Vec<Result<Skip>> = chunk
            .par_iter()
            .map(|&(h, _)| match repo.cache.read_loose(h)? {
                // Manifests stay loose: they are few, and every changed
                // checkout, status and gc reads them.
                Some(b) if b.starts_with(manifest::HEADER.as_bytes()) => Ok(Skip::Manifest),
                Some(b) => Ok(Skip::No(Record::encode(h, b, compress))),
                None => Ok(Skip::Gone),
            })
            .collect();
        let mut done = Vec::with_capacity(chunk.len());
        let mut packed_before = Vec::new();
        for (r, &(h, size)) in records.into_iter().zip(chunk) {
            match r? {
                Skip::No(rec) => {
                    if w.add(rec)? {
                        done.push(h);
                    } else {
                        packed_before.push(h);
                    }
                    out.bytes += size;
                }
                Skip::Manifest => {}
                Skip::Gone if !repo.cache.is_loose(h) => out.corrupt.push(h),
                Skip::Gone => {}
            }
        }
        w.commit()?;
        // An object packed before is dropped from loose only when its
        // packed record reads back sound (a corrupt one is dropped from the
        // index by the read, and the loose copy kept: the next run packs it).
        for h in packed_before {
            if matches!(repo.cache.packs().read(h)?, Found::Bytes(_)) {
                done.push(h);
            }
        }
        for h in done {
            // Linked meanwhile (by another repository sharing the cache)?
            // Then it stays loose as well.
            if repo.cache.loose_stat(h).is_some_and(|s| s.nlink == 1) {
                repo.cache.remove_loose(h)?;
            }
            out.packed += 1;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    repo.cache.remove_empty_folders();
    Ok(out)
}

/// Every object that a snapshot of this repository records as symlinked
/// into the workspace.
fn symlinked_objects(repo: &Repo) -> Result<HashSet<Hash>> {
    let state = repo.state()?;
    let mut out = HashSet::new();
    for (key, _, _) in state.link_types()? {
        if let Some(s) = state.load(&key)? {
            out.extend(
                s.entries()
                    .filter(|e| e.link == Some(LinkType::Symlink))
                    .map(|e| e.hash),
            );
        }
    }
    Ok(out)
}

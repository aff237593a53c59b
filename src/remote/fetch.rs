//! `fetch`: download every object the outs reference that the cache lacks.
//! Every object is re-hashed before it is stored; one that does not match
//! its name is named and not stored. Objects from remote packs are stored
//! in local packs (their records kept as they are) or loose, by the rule
//! of `bale import`; single objects stream into a temp file, hashed on the
//! way, and are published under their name only once they check out.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use super::index::{self, Packed, RemoteIndex};
use super::{Remote, in_parallel, layout};
use crate::cache::pack::{Record, write_batches};
use crate::error::{Error, RemoteProblem, Result};
use crate::hash::Hash;
use crate::manifest::Manifest;
use crate::out::Out;
use crate::out::display_path;
use crate::progress::Bar;
use crate::repo::Repo;

/// Ranges of a pack closer than this are read in one request.
const COALESCE_GAP: u64 = 1 << 20;

pub struct Options {
    pub threads: usize,
    pub threshold: u64,
    /// Small objects to local packs (`None`: decide by how many there are).
    pub packed: Option<bool>,
    pub wait: Duration,
    pub quiet: bool,
}

#[derive(Debug, Default)]
pub struct Fetched {
    pub objects: usize,
    pub bytes: u64,
    pub packed: bool,
    /// Objects the remote lacks or holds damaged, and outs left out.
    pub errors: Vec<Error>,
}

enum Job {
    Pack(u32, Vec<Packed>),
    Single(Hash),
}

/// The manifest of each out, fetched from the remote when the cache lacks
/// it (a folder's manifest is the first thing needed to know the rest).
/// Outs whose manifest cannot be had are reported in `errors`.
pub fn manifests(
    repo: &Repo,
    remote: &Remote,
    outs: &[Out],
    errors: &mut Vec<Error>,
) -> Result<Vec<(String, Manifest)>> {
    let mut got = Vec::new();
    for o in outs {
        if !o.is_dir() {
            got.push((o.key.clone(), crate::out::expected_of(repo, o)?));
            continue;
        }
        let hash = o.record.hash;
        if !repo.cache.contains(hash) {
            match remote.get(&layout::object_key(hash))? {
                None => {
                    errors.push(not_on_remote(remote, hash, &o.key));
                    continue;
                }
                Some(b) if Hash::of_bytes(&b) != hash => {
                    remote.put(&layout::bad_key(hash, None), bytes::Bytes::new())?;
                    errors.push(corrupt_on_remote(remote, hash, &o.key));
                    continue;
                }
                Some(b) => {
                    repo.cache.store_new(&b, hash)?;
                }
            }
        }
        match repo.cache.read_manifest(hash, &o.root) {
            Ok(m) => got.push((o.key.clone(), m)),
            Err(e) => errors.push(e),
        }
    }
    Ok(got)
}

fn not_on_remote(remote: &Remote, hash: Hash, path: &str) -> Error {
    Error::Remote {
        remote: remote.name.clone(),
        problem: RemoteProblem::ObjectMissing,
        message: format!("the object {hash} for {path} is not on the remote"),
    }
}

fn corrupt_on_remote(remote: &Remote, hash: Hash, path: &str) -> Error {
    Error::Remote {
        remote: remote.name.clone(),
        problem: RemoteProblem::ObjectCorrupt,
        message: format!(
            "the remote's copy of the object {hash} for {path} does not match its hash; it was not stored"
        ),
    }
}

pub fn fetch(
    repo: &Repo,
    remote: &Remote,
    outs: &[(String, Manifest)],
    opts: &Options,
) -> Result<Fetched> {
    let mut fetched = Fetched::default();
    // What the cache lacks, with a path to name each by.
    let mut names: HashMap<Hash, String> = HashMap::new();
    let mut needed = Vec::new();
    for (key, m) in outs {
        for e in m.entries() {
            if !names.contains_key(&e.hash) && !repo.cache.contains(e.hash) {
                names.insert(e.hash, display_path(key, e.path));
                needed.push((e.hash, e.size));
            }
        }
    }
    if needed.is_empty() {
        return Ok(fetched);
    }
    let dir = index::local_dir(&repo.bale_dir, &remote.identity);
    let idx = RemoteIndex::sync(remote, dir, false, opts.threads)?;
    let mut by_pack: HashMap<u32, Vec<Packed>> = HashMap::new();
    let mut jobs = Vec::new();
    let mut small = 0usize;
    let total: u64 = needed.iter().map(|(_, s)| s).sum();
    for &(h, size) in &needed {
        small += usize::from(size < opts.threshold);
        match idx.packed(h) {
            Some(p) => by_pack.entry(p.pack).or_default().push(*p),
            None => jobs.push(Job::Single(h)),
        }
    }
    let mut packs: Vec<(u32, Vec<Packed>)> = by_pack.into_iter().collect();
    packs.sort_unstable_by_key(|(p, _)| *p);
    jobs.extend(packs.into_iter().map(|(p, mut v)| {
        v.sort_unstable_by_key(|e| e.offset);
        Job::Pack(p, v)
    }));
    let packed = opts
        .packed
        .unwrap_or(small >= crate::import::PACK_WHEN_MANY);
    fetched.packed = packed;

    let bar = Bar::bytes(total, "fetching", opts.quiet);
    let errors = Mutex::new(Vec::new());
    let report = |e: Error| errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    let sizes: HashMap<Hash, u64> = needed.iter().copied().collect();
    let (tx, rx) = sync_channel::<Vec<Record>>(opts.threads);
    let (results, written) = std::thread::scope(|s| {
        let writer = s.spawn(move || write_batches(repo.cache.packs(), opts.wait, rx));
        let results = in_parallel(jobs, opts.threads, |job| -> Result<(usize, u64)> {
            match job {
                Job::Single(h) => {
                    let mut inc = repo.cache.incoming()?;
                    let found = remote.get_into(&layout::object_key(h), &mut |chunk| {
                        bar.inc(chunk.len() as u64);
                        inc.write(chunk)
                    })?;
                    let size = inc.size();
                    if !found {
                        report(not_on_remote(remote, h, &names[&h]));
                        Ok((0, 0))
                    } else if size != sizes[&h] || !repo.cache.finish_incoming(inc, h)? {
                        idx.mark_bad(remote, h, None)?;
                        report(corrupt_on_remote(remote, h, &names[&h]));
                        Ok((0, 0))
                    } else {
                        Ok((1, size))
                    }
                }
                Job::Pack(p, entries) => {
                    let pack = &idx.packs[p as usize];
                    let spans = coalesce(&entries);
                    let ranges: Vec<Range<u64>> = spans.iter().map(|s| s.0.clone()).collect();
                    let data = remote.get_ranges(&layout::pack_key(pack), &ranges)?;
                    let mut records = Vec::new();
                    let (mut n, mut bytes) = (0, 0);
                    for ((range, members), chunk) in spans.iter().zip(&data) {
                        for e in &entries[members.clone()] {
                            let at = (e.offset - range.start) as usize;
                            let rec = &chunk[at..at + e.len as usize];
                            let size = sizes[&e.hash];
                            bar.inc(size);
                            let checked = Record::received(rec, e.hash)
                                .filter(|(_, raw)| raw.len() as u64 == size);
                            let Some((record, raw)) = checked else {
                                idx.mark_bad(remote, e.hash, Some(pack))?;
                                report(corrupt_on_remote(remote, e.hash, &names[&e.hash]));
                                continue;
                            };
                            if packed && size < opts.threshold {
                                records.push(record);
                            } else {
                                repo.cache.store_new(&raw, e.hash)?;
                            }
                            n += 1;
                            bytes += size;
                        }
                    }
                    if !records.is_empty() && tx.send(records).is_err() {
                        return Err(Error::io(
                            "write",
                            repo.cache.packs().dir(),
                            std::io::Error::other("the pack writer stopped"),
                        ));
                    }
                    Ok((n, bytes))
                }
            }
        });
        drop(tx);
        let written = writer.join().unwrap_or_else(|_| {
            Err(Error::io(
                "write",
                repo.cache.packs().dir(),
                std::io::Error::other("the pack writer stopped"),
            ))
        });
        (results, written)
    });
    bar.finish();
    written?;
    let mut first = None;
    for r in results {
        match r {
            Ok((n, b)) => {
                fetched.objects += n;
                fetched.bytes += b;
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    fetched.errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    match first {
        Some(e) => Err(e),
        None => Ok(fetched),
    }
}

/// The byte ranges to download for `entries` (sorted by offset): records
/// closer than `COALESCE_GAP` are read in one range. Each range comes with
/// the entries it covers.
fn coalesce(entries: &[Packed]) -> Vec<(Range<u64>, Range<usize>)> {
    let mut spans: Vec<(Range<u64>, Range<usize>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let end = e.offset + e.len;
        match spans.last_mut() {
            Some((r, m)) if e.offset <= r.end + COALESCE_GAP => {
                r.end = r.end.max(end);
                m.end = i + 1;
            }
            _ => spans.push((e.offset..end, i..i + 1)),
        }
    }
    spans
}

/// How much of an out is on a remote.
#[derive(Debug)]
pub struct OnRemote {
    pub key: String,
    /// Objects the remote lacks and objects in all, counting a folder's
    /// manifest as one; `None` when the manifest is neither here nor there.
    pub missing_of: Option<(usize, usize)>,
}

/// How much of each out is on the remote.
pub fn compare(
    repo: &Repo,
    remote: &Remote,
    outs: &[Out],
    threads: usize,
) -> Result<Vec<OnRemote>> {
    let dir = index::local_dir(&repo.bale_dir, &remote.identity);
    let idx = RemoteIndex::sync(remote, dir, true, threads)?;
    let mut out = Vec::new();
    for o in outs {
        let manifest = if o.is_dir() {
            let on_remote = idx.has(o.record.hash);
            let m = match repo.cache.read_manifest(o.record.hash, &o.root) {
                Ok(m) => Some(m),
                Err(_) if on_remote => remote
                    .get(&layout::object_key(o.record.hash))?
                    .and_then(|b| Manifest::decode(&b, o.record.hash).ok()),
                Err(_) => None,
            };
            m.map(|m| (m, usize::from(!on_remote)))
        } else {
            Some((crate::out::expected_of(repo, o)?, 0))
        };
        let counted = manifest.map(|(m, top_missing)| {
            let mut seen = HashSet::new();
            let missing = m
                .entries()
                .filter(|e| seen.insert(e.hash) && !idx.has(e.hash))
                .count();
            (missing + top_missing, seen.len() + usize::from(o.is_dir()))
        });
        out.push(OnRemote {
            key: o.key.clone(),
            missing_of: counted,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_records_are_read_in_one_range() {
        let e = |offset, len| Packed {
            hash: Hash(offset as u128),
            pack: 0,
            offset,
            len,
        };
        let entries = [e(0, 10), e(10, 10), e(100, 5), e(10 << 20, 7)];
        assert_eq!(
            coalesce(&entries),
            [(0..105, 0..3), ((10 << 20)..(10 << 20) + 7, 3..4)]
        );
        assert!(coalesce(&[]).is_empty());
    }
}

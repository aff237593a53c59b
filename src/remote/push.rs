//! `push`: upload every object the outs reference that the remote lacks.
//! Small objects travel as remote packs of about `PACK_TARGET` bytes, large
//! ones singly (in parts above `MULTIPART_MIN`); a folder's manifest goes
//! last, and only once every object it lists is on the remote, so that a
//! remote never holds a folder whose content is incomplete.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;

use bytes::Bytes;

use super::index::{self, RemoteIndex};
use super::layout::{self, IdxEntry};
use super::{MULTIPART_MIN, Remote, in_parallel};
use crate::error::{Error, RemoteProblem, Result};
use crate::hash::Hash;
use crate::manifest::Manifest;
use crate::out::display_path;
use crate::progress::Bar;
use crate::repo::Repo;

/// A remote pack takes objects until it holds about this many bytes.
pub const PACK_TARGET: u64 = 4 << 20;

/// One out's objects: a folder's manifest (`top`) and the files it lists,
/// or a file out's one object (its manifest has one entry named "").
pub struct OutObjects {
    pub key: String,
    pub top: Option<Hash>,
    pub manifest: Manifest,
}

pub struct Options {
    pub threads: usize,
    pub threshold: u64,
    pub compress: bool,
    pub quiet: bool,
}

#[derive(Debug, Default)]
pub struct Pushed {
    pub objects: usize,
    pub bytes: u64,
    pub packs: usize,
    /// Outs whose content is now all on the remote.
    pub complete: usize,
    /// Objects that could not be read here, and outs left incomplete.
    pub errors: Vec<Error>,
}

enum Job {
    Pack(Vec<(Hash, u64)>),
    Single(Hash, u64),
}

pub fn push(repo: &Repo, remote: &Remote, outs: &[OutObjects], opts: &Options) -> Result<Pushed> {
    let dir = index::local_dir(&repo.bale_dir, &remote.identity);
    let mut idx = RemoteIndex::sync(remote, dir, true, opts.threads)?;

    let mut seen = HashSet::new();
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for o in outs {
        for e in o.manifest.entries() {
            if !idx.has(e.hash) && seen.insert(e.hash) {
                if e.size < opts.threshold {
                    small.push((e.hash, e.size));
                } else {
                    large.push((e.hash, e.size));
                }
            }
        }
    }
    let total: u64 = small.iter().chain(&large).map(|(_, s)| s).sum();
    let singles: HashSet<Hash> = large.iter().map(|(h, _)| *h).collect();
    let mut jobs: Vec<Job> = large.into_iter().map(|(h, s)| Job::Single(h, s)).collect();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for (h, s) in small {
        chunk.push((h, s));
        bytes += s;
        if bytes >= PACK_TARGET {
            jobs.push(Job::Pack(std::mem::take(&mut chunk)));
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        jobs.push(Job::Pack(chunk));
    }

    let bar = Bar::bytes(total, "pushing", opts.quiet || total == 0);
    let unreadable: Mutex<HashSet<Hash>> = Mutex::new(HashSet::new());
    let lost = |h: Hash| {
        unreadable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(h);
    };
    let results = in_parallel(jobs, opts.threads, |job| -> Result<(usize, u64, usize)> {
        match job {
            Job::Pack(objects) => {
                let mut buf = Vec::with_capacity(PACK_TARGET as usize + (1 << 20));
                let mut entries = Vec::with_capacity(objects.len());
                let mut raw = 0;
                for (h, size) in objects {
                    match repo.cache.record_of(h, opts.compress)? {
                        Some(rec) => {
                            entries.push(IdxEntry {
                                hash: h,
                                offset: buf.len() as u64,
                                len: rec.len() as u64,
                            });
                            buf.extend_from_slice(&rec);
                            raw += size;
                        }
                        None => lost(h),
                    }
                }
                if entries.is_empty() {
                    return Ok((0, 0, 0));
                }
                let idx_bytes = Bytes::from(layout::encode_idx(&entries));
                let name = layout::pack_name(&idx_bytes);
                remote.put(&layout::pack_key(&name), Bytes::from(buf))?;
                remote.put(&layout::idx_key(&name), idx_bytes.clone())?;
                idx.add_uploaded(&name, &idx_bytes)?;
                bar.inc(raw);
                Ok((entries.len(), raw, 1))
            }
            Job::Single(h, size) => {
                if push_single(repo, remote, h, &bar)? {
                    Ok((1, size, 0))
                } else {
                    lost(h);
                    Ok((0, 0, 0))
                }
            }
        }
    });
    let mut pushed = Pushed::default();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok((n, b, p)) => {
                pushed.objects += n;
                pushed.bytes += b;
                pushed.packs += p;
            }
            Err(e) => failures.push(e),
        }
    }
    bar.finish();
    if let Some(first) = failures.into_iter().next() {
        // The remote failed: what arrived stays (its packs are indexed and
        // are not sent again), and no manifest is sent, so no folder looks
        // complete.
        return Err(first);
    }
    let unreadable = unreadable.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut resent: HashSet<Hash> = singles.difference(&unreadable).copied().collect();

    // Manifests last, each only once all it lists is on the remote.
    let mut manifests = Vec::new();
    for o in outs {
        let bad: Vec<&str> = o
            .manifest
            .entries()
            .filter(|e| unreadable.contains(&e.hash))
            .map(|e| e.path)
            .collect();
        if !bad.is_empty() {
            for p in bad.iter().take(10) {
                let hash = o.manifest.entries().find(|e| e.path == *p).map(|e| e.hash);
                if let Some(h) = hash {
                    let mut e = repo.cache.missing(h, display_path(&o.key, p));
                    // The remote pushed to lacks it too: its hint would be
                    // to fetch from there.
                    if let Error::MissingObject { remote: r, .. } = &mut e
                        && r.as_deref() == Some(remote.name.as_str())
                    {
                        *r = None;
                    }
                    pushed.errors.push(e);
                }
            }
            pushed.errors.push(Error::Remote {
                remote: remote.name.clone(),
                problem: RemoteProblem::ObjectMissing,
                message: format!(
                    "{} is not complete on the remote: {} of its objects are not in this cache, so its manifest was not pushed",
                    o.key,
                    bad.len()
                ),
            });
            continue;
        }
        match o.top {
            Some(m) if !idx.has(m) => manifests.push((m, o.key.as_str())),
            _ => pushed.complete += 1,
        }
    }
    let sent = in_parallel(manifests, opts.threads, |(m, key)| -> Result<Hash> {
        let bytes = repo
            .cache
            .read_manifest(m, std::path::Path::new(key))
            .map(|man| man.encode())?;
        remote.put(&layout::object_key(m), Bytes::from(bytes))?;
        Ok(m)
    });
    for r in sent {
        match r {
            Ok(m) => {
                idx.add_single(m);
                resent.insert(m);
                pushed.complete += 1;
                pushed.objects += 1;
            }
            Err(e) => return Err(e),
        }
    }
    idx.clear_bad_singles(remote, &resent)?;
    Ok(pushed)
}

/// Uploads one object singly, hashing it on the way: a loose object whose
/// content no longer matches its name is not sent (the upload is
/// abandoned). `false`: the cache holds no sound copy.
fn push_single(repo: &Repo, remote: &Remote, hash: Hash, bar: &Bar) -> Result<bool> {
    let Some((mut r, size)) = repo.cache.reader(hash)? else {
        return Ok(false);
    };
    let key = layout::object_key(hash);
    if size < MULTIPART_MIN {
        let mut bytes = Vec::with_capacity(size as usize);
        r.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", &key, e))?;
        if Hash::of_bytes(&bytes) != hash {
            repo.cache.set_aside(hash);
            return Ok(false);
        }
        remote.put(&key, Bytes::from(bytes))?;
        bar.inc(size);
        return Ok(true);
    }
    let hasher = std::cell::RefCell::new(xxhash_rust::xxh3::Xxh3::new());
    let mut corrupt = false;
    let result = remote.put_parts(
        &key,
        &mut r,
        &mut |chunk| {
            hasher.borrow_mut().update(chunk);
            bar.inc(chunk.len() as u64);
        },
        &mut || {
            if Hash(hasher.borrow().digest128()) == hash {
                Ok(())
            } else {
                corrupt = true;
                Err(repo.cache.corrupt(hash, &key))
            }
        },
    );
    match result {
        Ok(()) => Ok(true),
        Err(_) if corrupt => {
            repo.cache.set_aside(hash);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

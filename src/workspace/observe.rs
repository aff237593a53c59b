//! Observe: what the workspace holds for an out, with every file's content
//! hash known — from the snapshot when its stat can be trusted, read and
//! hashed (in parallel) otherwise. A file whose content no longer matches
//! the object it is linked to (an edit in place through a hard link or a
//! symlink) reveals a corrupt cache object; those are collected here.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::walk;
use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{Kind, LinkType, stat::Compared};
use crate::hash::{self, Hash};
use crate::paths;
use crate::progress::Bar;
use crate::state::{Snapshot, SnapshotEntry};

/// An out's workspace side, every file's content known.
#[derive(Debug)]
pub struct Observation {
    pub root: Root,
    /// Non-directory entries, sorted by path.
    pub files: Vec<Actual>,
    /// Folders, sorted by path.
    pub dirs: Vec<String>,
    pub stale_temps: Vec<PathBuf>,
    /// Cache objects found corrupt (hash, path of the file linked to it).
    pub corrupt: Vec<(Hash, String)>,
}

/// What the out's root is in the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    Missing,
    Dir,
    /// A file, symlink or special file (listed in `files` as path "").
    NotDir,
}

/// A non-directory entry of the workspace, with what is known of its
/// content (`known`, filled in by `observe`).
pub type Actual = walk::Entry;

pub use walk::Known;

/// Looks walk entries up in a snapshot. Both are sorted by path, so the
/// lookups are a merge: entries must be asked for in path order.
pub struct KnownHashes<'a> {
    recorded: std::iter::Peekable<Box<dyn Iterator<Item = SnapshotEntry<'a>> + 'a>>,
    taken_ns: i64,
    cache: &'a Cache,
}

impl<'a> KnownHashes<'a> {
    pub fn new(snapshot: Option<&'a Snapshot>, cache: &'a Cache) -> Self {
        let recorded: Box<dyn Iterator<Item = SnapshotEntry<'a>> + 'a> = match snapshot {
            Some(s) => Box::new(s.entries()),
            None => Box::new(std::iter::empty()),
        };
        KnownHashes {
            recorded: recorded.peekable(),
            taken_ns: snapshot.map_or(i64::MIN, |s| s.taken_ns),
            cache,
        }
    }

    fn recorded_at(&mut self, path: &str) -> Option<SnapshotEntry<'a>> {
        while self.recorded.next_if(|r| r.path < path).is_some() {}
        self.recorded.next_if(|r| r.path == path)
    }

    pub fn lookup(&mut self, e: &walk::Entry) -> Known {
        match e.stat.kind {
            Kind::File => {
                let Some(r) = self.recorded_at(&e.path) else {
                    return Known::default();
                };
                let trusted = crate::fsutil::stat::compare(&r.stat, &e.stat, self.taken_ns)
                    != Compared::Suspect;
                let mut k = Known::default();
                k.recorded_link = r.link.filter(|_| r.stat.is_same_file(&e.stat));
                k.set_hash(trusted.then_some(r.hash));
                k.set_recorded_hash(Some(r.hash));
                k
            }
            Kind::Symlink => {
                let recorded = self.recorded_at(&e.path);
                let Some(named) = e.link_target().and_then(|t| {
                    self.cache
                        .symlink_object(t)
                        .or_else(|| self.cache.moved_object(t))
                }) else {
                    return Known::default();
                };
                // Trusted when the snapshot recorded this link to this
                // object, and the object's stat has not moved since.
                let trusted = match (recorded, e.content_stat()) {
                    (Some(r), Some(now)) => {
                        r.hash == named
                            && crate::fsutil::stat::compare(&r.stat, &now, self.taken_ns)
                                != Compared::Suspect
                    }
                    _ => false,
                };
                let mut k = Known::default();
                k.cache_link = true;
                k.recorded_link = Some(LinkType::Symlink);
                k.set_hash(trusted.then_some(named));
                k.set_recorded_hash(Some(named));
                k
            }
            Kind::Dir | Kind::Other => Known::default(),
        }
    }
}

/// Hashes the file at `path`, counting its bytes on `bar`.
pub fn hash_file(path: &Path, bar: &Bar) -> Result<Hash> {
    let f = std::fs::File::open(path).at("read", path)?;
    hash::with_buffer(|buf| hash::hash_reader(bar.reading(f), buf))
        .map(|(h, _)| h)
        .at("read", path)
}

/// Whether a fresh walk reproduces a snapshot exactly: the same files, each
/// with the same type, mode, size, mtime, ctime and inode (a symlink: its
/// target's), none of them racy, and nothing odd to deal with. One pass over
/// both sorted lists.
pub fn matches_snapshot(w: &walk::Walk, s: &Snapshot) -> bool {
    matches!(departures(w, s, 0), Departures::None)
}

/// Where a fresh walk departs from a snapshot.
#[derive(Debug)]
pub enum Departures {
    /// Nowhere: the walk reproduces the snapshot (`matches_snapshot`).
    None,
    /// Only at files the snapshot holds, none of which is a folder now:
    /// each is gone or has another stat. Sorted by path.
    Few(Vec<Departed>),
    /// At more files than asked for, or otherwise: a file the snapshot
    /// does not hold, a folder where it holds a file, leftover temporary
    /// files, names that are not UTF-8.
    Other,
}

/// A file of a snapshot that a walk does not reproduce.
#[derive(Debug)]
pub struct Departed {
    /// What the snapshot holds for it (path included).
    pub recorded: crate::state::OwnedEntry,
    /// Its index in the walk's entries; `None`: gone.
    pub walked: Option<usize>,
}

/// Compares a walk with a snapshot in one pass over both sorted lists,
/// collecting at most `limit` departures.
pub fn departures(w: &walk::Walk, s: &Snapshot, limit: usize) -> Departures {
    if !w.stale_temps.is_empty() || !w.bad_names.is_empty() {
        return Departures::Other;
    }
    let mut found = Vec::new();
    let mut recorded = s.entries().peekable();
    let mut depart = |r: SnapshotEntry<'_>, walked: Option<usize>| {
        found.push(Departed {
            recorded: r.into(),
            walked,
        });
        found.len() <= limit
    };
    for (i, e) in w.entries.iter().enumerate() {
        while let Some(r) = recorded.next_if(|r| r.path < &*e.path) {
            if !depart(r, None) {
                return Departures::Other;
            }
        }
        let here = recorded.next_if(|r| r.path == &*e.path);
        if e.stat.kind == Kind::Dir {
            if here.is_some() {
                return Departures::Other;
            }
            continue;
        }
        let Some(r) = here else {
            return Departures::Other;
        };
        let same = e.content_stat().is_some_and(|now| {
            crate::fsutil::stat::compare(&r.stat, &now, s.taken_ns) == Compared::Identical
        });
        if !same && !depart(r, Some(i)) {
            return Departures::Other;
        }
    }
    for r in recorded {
        if !depart(r, None) {
            return Departures::Other;
        }
    }
    if found.is_empty() {
        Departures::None
    } else {
        Departures::Few(found)
    }
}

/// The error for names a walk could not list.
pub fn check_names(w: &walk::Walk) -> Result<()> {
    if w.bad_names.is_empty() {
        Ok(())
    } else {
        Err(Error::BadNames(w.bad_names.clone()))
    }
}

/// Resolves the content of every file of a walk (`None`: the root is
/// missing).
pub fn observe(
    root: &Path,
    walked: Option<walk::Walk>,
    snapshot: Option<&Snapshot>,
    cache: &Cache,
    quiet: bool,
) -> Result<Observation> {
    let Some(w) = walked else {
        return Ok(Observation {
            root: Root::Missing,
            files: Vec::new(),
            dirs: Vec::new(),
            stale_temps: Vec::new(),
            corrupt: Vec::new(),
        });
    };
    check_names(&w)?;
    let root_kind = match w.entries.first() {
        Some(e) if e.path.is_empty() => Root::NotDir,
        _ => Root::Dir,
    };
    let mut dirs = Vec::new();
    let mut known = KnownHashes::new(snapshot, cache);
    // In place: the walk's list becomes the observation's.
    let mut files: Vec<Actual> = w
        .entries
        .into_iter()
        .filter_map(|mut e| {
            if e.stat.kind == Kind::Dir {
                dirs.push(String::from(std::mem::take(&mut e.path)));
                return None;
            }
            e.known = known.lookup(&e);
            Some(e)
        })
        .collect();
    let corrupt = hash_suspects(root, &mut files, cache, quiet)?;
    Ok(Observation {
        root: root_kind,
        files,
        dirs,
        stale_temps: w.stale_temps,
        corrupt,
    })
}

/// Whether an entry's content must be read to be known: a file, or a
/// symlink into the cache whose target is there, not trusted by the stat.
fn is_suspect(a: &Actual) -> bool {
    a.known.hash().is_none()
        && match a.stat.kind {
            Kind::File => true,
            Kind::Symlink => a.known.cache_link && a.content_stat().is_some(),
            _ => false,
        }
}

/// Reads and hashes every suspect, in parallel. A file that is linked to
/// the object the snapshot recorded for it (its symlink names it, or it is a
/// hard link of it) but no longer hashes to it shows that object corrupt:
/// the pairs (object, path) are returned, and such a file counts as content
/// of the user's own, never as a cache link safe to replace.
fn hash_suspects(
    root: &Path,
    files: &mut [Actual],
    cache: &Cache,
    quiet: bool,
) -> Result<Vec<(Hash, String)>> {
    let suspects: Vec<usize> = (0..files.len())
        .filter(|&i| is_suspect(&files[i]))
        .collect();
    let bytes = suspects
        .iter()
        .map(|&i| files[i].content_stat().unwrap_or(files[i].stat).size)
        .sum();
    let bar = Bar::files(suspects.len() as u64, bytes, "hashing", quiet);
    let hashes: Vec<Result<Hash>> = suspects
        .par_iter()
        .map(|&i| {
            let r = hash_file(&paths::join(root, &files[i].path), &bar);
            bar.file_done();
            r
        })
        .collect();
    bar.finish();
    let mut corrupt = Vec::new();
    for (&i, h) in suspects.iter().zip(hashes) {
        // A file bale may not read (chmod 000) has content it cannot know:
        // not the cache's, so kept unless forced, and replaceable then
        // (a rename over it needs only its folder to be writable).
        let h = match h {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                continue;
            }
            h => h?,
        };
        let a = &mut files[i];
        a.known.set_hash(Some(h));
        let Some(linked) = a.known.recorded_hash().filter(|&r| r != h) else {
            continue;
        };
        let is_link = a.known.cache_link
            || (a.stat.kind == Kind::File && cache.is_hardlink_of(linked, &a.stat));
        if is_link {
            a.known.cache_link = false;
            corrupt.push((linked, a.path.to_string()));
        }
    }
    Ok(corrupt)
}

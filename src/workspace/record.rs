//! add and commit: store what an out holds now (reading only files whose
//! stat changed since the snapshot), link the stored files per the chain,
//! and build the manifest and the next snapshot.

use std::path::Path;

use rayon::prelude::*;

use super::apply;
use super::link::Linker;
use super::observe::{self, Actual, KnownHashes};
use super::rows;
use super::walk;
use crate::cache::{Adopted, Cache, StoreMode};
use crate::error::{Error, Result};
use crate::fsutil::{FileStat, Kind, LinkType, is_unsupported};
use crate::hash::Hash;
use crate::manifest::{Entry, Manifest};
use crate::pointer::{self, OutKind, OutRecord, PointerFile};
use crate::progress::Bar;
use crate::state::{Snapshot, SnapshotEntries};

#[derive(Clone, Copy, Debug, Default)]
pub struct RecordOptions {
    /// Leave symlinks that do not point into the cache out (and name them),
    /// rather than refusing the out.
    pub skip_symlinks: bool,
}

/// The result of recording an out's current content (add, commit).
#[derive(Debug)]
pub struct Recorded {
    pub is_dir: bool,
    pub hash: Hash,
    pub size: u64,
    pub nfiles: u64,
    pub executable: bool,
    pub manifest: Manifest,
    pub snapshot_entries: SnapshotEntries,
    /// Files read and stored this time, as indices into the manifest's
    /// entries (its paths are not copied again). `u32`: a manifest holds
    /// at most 4 GiB of paths, so fewer than 2^32 entries, and a bigger
    /// tree is refused before these are read.
    pub stored: Vec<u32>,
    /// Objects the cache did not hold before (file objects; the manifest
    /// not counted).
    pub new_objects: usize,
    /// Symlinks left out (with `skip_symlinks`).
    pub skipped: Vec<String>,
    /// The out leaves symlinks out, now and later (`skip_symlinks`).
    pub skip_symlinks: bool,
    /// Cache objects found corrupt, set aside: (hash, path of the file).
    pub corrupt: Vec<(Hash, String)>,
    pub link_type: LinkType,
    pub cache_type: String,
}

impl Recorded {
    /// Writes what was recorded into an out's pointer record.
    pub fn update(&self, o: &mut OutRecord) {
        o.hash = self.hash;
        o.kind = if self.is_dir {
            OutKind::Dir
        } else {
            OutKind::File
        };
        o.size = self.size;
        o.nfiles = self.is_dir.then_some(self.nfiles);
        o.executable = self.executable;
        o.skip_symlinks = self.is_dir && self.skip_symlinks;
    }

    /// The snapshot to record; `taken_ns` is set when it is saved.
    pub fn snapshot(self, taken_ns: i64) -> Snapshot {
        Snapshot::new(
            self.hash,
            self.link_type,
            self.cache_type,
            taken_ns,
            self.snapshot_entries,
        )
    }
}

/// A file as recorded: the stat to remember, its content's hash and size.
struct Stored {
    stat: FileStat,
    hash: Hash,
    size: u64,
    link: Option<LinkType>,
    /// The object this file was linked to and no longer matches.
    corrupt: Option<Hash>,
    /// The object was new to the cache.
    fresh: bool,
}

/// Stores the content at `root` in the cache (reading only files whose stat
/// changed since `old`), then links the stored files per the link chain.
/// `old` is dropped once the walk is matched with it.
pub fn record(
    root: &Path,
    old: Option<Snapshot>,
    cache: &Cache,
    linker: &Linker,
    opts: RecordOptions,
    quiet: bool,
) -> Result<Recorded> {
    let w = walk::walk(root, old.as_ref().map_or(0, Snapshot::len))?
        .ok_or_else(|| Error::NotFound(root.to_path_buf()))?;
    observe::check_names(&w)?;
    let is_dir = !matches!(w.entries.first(), Some(e) if e.path.is_empty());
    let (mut special, mut foreign, mut dangling) = (Vec::new(), Vec::new(), Vec::new());
    let mut pointer_like = Vec::new();
    let mut known = KnownHashes::new(old.as_ref(), cache);
    let abs = |rel: &str| crate::paths::join(root, rel);
    // In place: the walk's list becomes the list of files to record.
    let mut files: Vec<Actual> = w
        .entries
        .into_iter()
        .filter_map(|mut e| {
            match e.stat.kind {
                Kind::Dir => return None,
                Kind::Other => {
                    special.push(abs(&e.path));
                    return None;
                }
                Kind::Symlink | Kind::File => {}
            }
            if e.stat.kind == Kind::File && e.path.ends_with(pointer::SUFFIX) {
                pointer_like.push(abs(&e.path));
            }
            let k = known.lookup(&e);
            if e.stat.kind == Kind::Symlink && !k.cache_link {
                foreign.push(String::from(e.path));
                return None;
            }
            if k.cache_link && e.target_stat().is_none() {
                dangling.push(abs(&e.path));
                return None;
            }
            e.known = k;
            Some(e)
        })
        .collect();
    // What the snapshot knew is in the entries now.
    drop(known);
    drop(old);
    // A remembered hash counts only if the object is still there.
    let mut remembered: Vec<Hash> = files.iter().filter_map(|e| e.known.hash()).collect();
    remembered.par_sort_unstable();
    remembered.dedup();
    let gone = cache.missing_of(&remembered);
    drop(remembered);
    if !gone.is_empty() {
        files.par_iter_mut().for_each(|e| {
            if e.known
                .hash()
                .is_some_and(|h| gone.binary_search(&h).is_ok())
            {
                e.known.set_hash(None);
            }
        });
    }
    refuse_untrackable(root, special, &foreign, dangling, opts)?;
    // Outs never overlap: a pointer file inside means another out is here.
    if let Some(p) = pointer_like.iter().find(|p| PointerFile::read(p).is_ok()) {
        return Err(Error::HoldsOut {
            path: root.to_path_buf(),
            out: p.with_extension(""),
        });
    }

    // Files read and stored now: those whose content the snapshot did not
    // vouch for. Each result is written back into its own entry, so that
    // nothing per file is collected beside the entries.
    let stored: Vec<u32> = (0..files.len())
        .filter(|&i| files[i].known.hash().is_none())
        .map(|i| i as u32)
        .collect();
    let stored_bytes = stored
        .iter()
        .map(|&i| &files[i as usize])
        .map(|f| f.content_stat().unwrap_or(f.stat).size)
        .sum();
    // The executable bits as walked (a stored file's stat is replaced by
    // the stat of what now stands there).
    let executable: Vec<bool> = files.iter().map(Actual::executable).collect();
    let bar = Bar::files(stored.len() as u64, stored_bytes, "storing", quiet);
    let corrupt = std::sync::Mutex::new(Vec::new());
    let new_objects = std::sync::atomic::AtomicUsize::new(0);
    files.par_iter_mut().try_for_each(|a| -> Result<()> {
        if a.known.hash().is_some() {
            return Ok(());
        }
        let s = record_one(cache, linker, root, a, &bar)?;
        bar.file_done();
        if s.fresh {
            new_objects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(h) = s.corrupt {
            corrupt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((h, a.path.to_string()));
        }
        a.known.set_hash(Some(s.hash));
        // The size is the object's (what was read), the rest the stat to
        // remember; should they differ, the file changed meanwhile and its
        // next stat will not match. With `symlink` gone, `stat` is the
        // content's stat (see `content_stat`).
        a.stat = FileStat {
            size: s.size,
            ..s.stat
        };
        a.symlink = None;
        a.known.recorded_link = s.link;
        Ok(())
    })?;
    bar.finish();
    let mut corrupt = corrupt.into_inner().unwrap_or_else(|p| p.into_inner());
    corrupt.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    for (h, _) in &corrupt {
        cache.set_aside(*h);
    }
    let rows = || files.iter().filter_map(rows::row_of);
    let encoded = rows::encode(root, rows, files.len(), None)?;
    let link_type = encoded.common_link.unwrap_or_else(|| linker.current());
    let snapshot_entries = encoded.entries;
    // The walk sorted the files by path: the manifest is built from them
    // as they are, with no list of entries beside them.
    let entries = || {
        files
            .iter()
            .zip(&executable)
            .filter_map(|(a, &executable)| {
                Some(Entry {
                    path: &a.path,
                    hash: a.known.hash()?,
                    size: a.content_stat()?.size,
                    executable,
                })
            })
    };
    let size = entries().map(|e| e.size).sum();
    let manifest = if is_dir {
        let path_bytes = files.iter().map(|a| a.path.len()).sum();
        Manifest::from_sorted(entries(), files.len(), path_bytes).map_err(|reason| {
            Error::Unsupported {
                path: root.to_path_buf(),
                reason,
            }
        })?
    } else {
        let e = entries()
            .next()
            .ok_or_else(|| Error::NotFound(root.to_path_buf()))?;
        Manifest::single_file(e.hash, e.size, e.executable)
    };
    drop(files);
    let (hash, executable) = if is_dir {
        (cache.store_manifest(&manifest)?, false)
    } else {
        let e = manifest.get(0);
        (e.hash, e.executable)
    };
    Ok(Recorded {
        is_dir,
        hash,
        size,
        nfiles: manifest.len() as u64,
        executable,
        manifest,
        snapshot_entries,
        stored,
        new_objects: new_objects.into_inner(),
        skipped: foreign,
        skip_symlinks: opts.skip_symlinks,
        corrupt,
        link_type,
        cache_type: linker.describe(),
    })
}

/// Refuses an out holding what bale cannot track, naming every such entry;
/// with `skip_symlinks`, foreign symlinks are left out instead.
fn refuse_untrackable(
    root: &Path,
    special: Vec<std::path::PathBuf>,
    foreign: &[String],
    dangling: Vec<std::path::PathBuf>,
    opts: RecordOptions,
) -> Result<()> {
    if !special.is_empty() {
        return Err(Error::Untrackable {
            what: "not regular files (sockets, fifos or devices)",
            paths: special,
            fix: "remove them or move them out of the folder",
        });
    }
    if !dangling.is_empty() {
        return Err(Error::Untrackable {
            what: "symlinks to cache objects that are gone",
            paths: dangling,
            fix: "run `bale checkout` to restore them from the pointer file, or remove them",
        });
    }
    if !foreign.is_empty() && !opts.skip_symlinks {
        return Err(Error::Untrackable {
            what: "symlinks, which bale does not track",
            paths: foreign
                .iter()
                .map(|p| crate::paths::join(root, p))
                .collect(),
            fix: "replace them by what they point to, remove them, or pass --skip-symlinks",
        });
    }
    Ok(())
}

/// Records one file whose content is not known from the snapshot.
fn record_one(
    cache: &Cache,
    linker: &Linker,
    root: &Path,
    a: &Actual,
    bar: &Bar,
) -> Result<Stored> {
    let abs = crate::paths::join(root, &a.path);
    if a.known.cache_link {
        // A symlink into the cache whose target's stat moved: the object
        // may have been written through the link.
        let named = a.known.recorded_hash();
        let hash = observe::hash_file(&abs, bar)?;
        let content = a.content_stat().unwrap_or(a.stat);
        if Some(hash) == named {
            return Ok(Stored {
                stat: content,
                hash,
                size: content.size,
                link: Some(LinkType::Symlink),
                corrupt: None,
                fresh: false,
            });
        }
        let mut s = store_and_link(cache, linker, &abs, &a.path, a.stat, bar)?;
        s.corrupt = named;
        return Ok(s);
    }
    let mut s = store_and_link(cache, linker, &abs, &a.path, a.stat, bar)?;
    if let Some(h) = a.known.recorded_hash()
        && h != s.hash
        && cache.is_hardlink_of(h, &a.stat)
    {
        s.corrupt = Some(h);
    }
    Ok(s)
}

/// Stores one workspace file and leaves it linked per the chain. For a
/// hardlink or symlink the file itself becomes the object (nothing copied);
/// for a reflink it is cloned; for a copy it is copied while hashed and the
/// workspace file, already a private copy, is left alone.
fn store_and_link(
    cache: &Cache,
    linker: &Linker,
    abs: &Path,
    rel: &str,
    walked: FileStat,
    bar: &Bar,
) -> Result<Stored> {
    let executable = walked.kind == Kind::File && walked.is_executable();
    let wanted = linker.wanted(executable);
    let link = |hash, size, fresh| {
        let e = Entry {
            path: rel,
            hash,
            size,
            executable,
        };
        apply::place(cache, linker, e, abs).map(|(stat, t)| Stored {
            stat,
            hash,
            size,
            link: Some(t),
            corrupt: None,
            fresh,
        })
    };
    if let Some(t) = wanted.filter(|t| t.shares_object()) {
        match cache.adopt_file(abs, bar)? {
            Adopted::Linked { hash, size, stat } if t == LinkType::Hardlink => {
                return Ok(Stored {
                    stat,
                    hash,
                    size,
                    link: Some(LinkType::Hardlink),
                    corrupt: None,
                    fresh: true,
                });
            }
            Adopted::Linked { hash, size, .. } => return link(hash, size, true),
            Adopted::Exists { hash, size } => return link(hash, size, false),
            Adopted::Changed => {}
        }
    }
    let (hash, size, mode, fresh) = store(cache, linker, abs, bar)?;
    // A clone of a file whose content was already stored shares blocks with
    // nothing: it is made again from the object. A symlink read through is
    // replaced by a link of the chain's type.
    if linker
        .wanted(executable)
        .is_some_and(LinkType::shares_object)
        || (mode == StoreMode::Reflink && !fresh)
        || walked.kind == Kind::Symlink
    {
        return link(hash, size, fresh);
    }
    Ok(Stored {
        stat: walked,
        hash,
        size,
        // The workspace file stays: a clone of the object, or a copy of it.
        link: Some(match mode {
            StoreMode::Reflink => LinkType::Reflink,
            StoreMode::Copy => LinkType::Copy,
        }),
        corrupt: None,
        fresh,
    })
}

/// Stores one file, cloning it when the chain starts with reflink and the
/// file system supports it, copying it otherwise. Only what was really done
/// is reported: on a file system without reflinks, a copy.
fn store(
    cache: &Cache,
    linker: &Linker,
    abs: &Path,
    bar: &Bar,
) -> Result<(Hash, u64, StoreMode, bool)> {
    if linker.current() == LinkType::Reflink {
        match cache.store_file(abs, StoreMode::Reflink, bar) {
            Err(Error::Io { source, .. }) if is_unsupported(&source) => {
                linker.drop_type_because(LinkType::Reflink, &source);
            }
            other => return other.map(|(h, n, fresh)| (h, n, StoreMode::Reflink, fresh)),
        }
    }
    cache
        .store_file(abs, StoreMode::Copy, bar)
        .map(|(h, n, fresh)| (h, n, StoreMode::Copy, fresh))
}

//! add and commit: store what an out holds now (reading only files whose
//! stat changed since the snapshot), link the stored files per the chain,
//! and build the manifest and the next snapshot.

use std::path::Path;

use rayon::prelude::*;

use super::apply;
use super::link::Linker;
use super::observe::{self, Actual, KnownHashes};
use super::plan::Write;
use super::snapshot;
use super::walk;
use crate::cache::{Adopted, Cache, StoreMode};
use crate::error::{Error, Result};
use crate::fsutil::{FileStat, Kind, LinkType, is_unsupported};
use crate::hash::Hash;
use crate::manifest::{Manifest, ManifestEntry};
use crate::pointer::{self, OutKind, OutRecord, PointerFile};
use crate::progress::Bar;
use crate::state::{Snapshot, SnapshotEntries, SnapshotEntry};

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
    /// entries (its paths are not copied again).
    pub stored: Vec<usize>,
    /// Symlinks left out (with `skip_symlinks`).
    pub skipped: Vec<String>,
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
}

/// Stores the content at `root` in the cache (reading only files whose stat
/// changed since `old`), then links the stored files per the link chain.
pub fn record(
    root: &Path,
    old: Option<&Snapshot>,
    cache: &Cache,
    linker: &Linker,
    opts: RecordOptions,
    quiet: bool,
) -> Result<Recorded> {
    let w = walk::walk(root, old.map_or(0, Snapshot::len))?
        .ok_or_else(|| Error::NotFound(root.to_path_buf()))?;
    observe::check_names(&w)?;
    let is_dir = !matches!(w.entries.first(), Some(e) if e.path.is_empty());
    let mut files = Vec::with_capacity(w.entries.len());
    let (mut special, mut foreign, mut dangling) = (Vec::new(), Vec::new(), Vec::new());
    let mut pointer_like = Vec::new();
    let mut known = KnownHashes::new(old, cache);
    let abs = |rel: &str| crate::paths::join(root, rel);
    for e in w.entries {
        match e.stat.kind {
            Kind::Dir => continue,
            Kind::Other => {
                special.push(abs(&e.path));
                continue;
            }
            Kind::Symlink | Kind::File => {}
        }
        if e.stat.kind == Kind::File && e.path.ends_with(pointer::SUFFIX) {
            pointer_like.push(abs(&e.path));
        }
        let mut k = known.lookup(&e);
        if e.stat.kind == Kind::Symlink && !k.cache_link {
            foreign.push(e.path);
            continue;
        }
        if k.cache_link && e.target_stat.is_none() {
            dangling.push(abs(&e.path));
            continue;
        }
        // A remembered hash counts only if the object is still there.
        if k.hash.is_some_and(|h| !cache.contains(h)) {
            k.hash = None;
        }
        files.push(Actual::new(e, k));
    }
    refuse_untrackable(root, special, &foreign, dangling, opts)?;
    // Outs never overlap: a pointer file inside means another out is here.
    if let Some(p) = pointer_like.iter().find(|p| PointerFile::read(p).is_ok()) {
        return Err(Error::HoldsOut {
            path: root.to_path_buf(),
            out: p.with_extension(""),
        });
    }

    let to_store = files.iter().filter(|a| a.hash.is_none()).count();
    let bar = Bar::new(to_store as u64, "storing", quiet || to_store < 1000);
    let results: Vec<Result<Stored>> = files
        .par_iter()
        .map(|a| -> Result<Stored> {
            if let Some(hash) = a.hash {
                return Ok(Stored {
                    stat: a.content.unwrap_or(a.stat),
                    hash,
                    size: a.content.map_or(a.stat.size, |c| c.size),
                    link: a.recorded_link,
                    corrupt: None,
                });
            }
            let r = record_one(cache, linker, root, a);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish();

    let mut entries = Vec::with_capacity(files.len());
    let mut rows = Vec::with_capacity(files.len());
    let mut stored = Vec::new();
    let mut corrupt = Vec::new();
    let mut size = 0u64;
    for (i, (a, r)) in files.iter().zip(results).enumerate() {
        let s = r?;
        if a.hash.is_none() {
            stored.push(i);
        }
        if let Some(h) = s.corrupt {
            corrupt.push((h, a.path.clone()));
        }
        size += s.size;
        entries.push(ManifestEntry {
            path: a.path.clone(),
            hash: s.hash,
            size: s.size,
            executable: a.executable(),
        });
        rows.push(SnapshotEntry {
            path: &a.path,
            stat: s.stat,
            hash: s.hash,
            link: s.link,
        });
    }
    for (h, _) in &corrupt {
        cache.set_aside(*h);
    }
    snapshot::restat_shared_inodes(root, &mut rows)?;
    let link_type = snapshot::common_link(&rows).unwrap_or_else(|| linker.current());
    let snapshot_entries = snapshot::encode(&rows);
    drop(rows);
    let manifest = if is_dir {
        Manifest::new(entries).map_err(|reason| Error::Unsupported {
            path: root.to_path_buf(),
            reason,
        })?
    } else {
        let e = entries
            .pop()
            .ok_or_else(|| Error::NotFound(root.to_path_buf()))?;
        Manifest::single_file(e.hash, e.size, e.executable)
    };
    let (hash, executable) = if is_dir {
        (cache.store_manifest(&manifest)?, false)
    } else {
        let e = &manifest.entries()[0];
        (e.hash, e.executable)
    };
    Ok(Recorded {
        is_dir,
        hash,
        size,
        nfiles: manifest.entries().len() as u64,
        executable,
        manifest,
        snapshot_entries,
        stored,
        skipped: foreign,
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
fn record_one(cache: &Cache, linker: &Linker, root: &Path, a: &Actual) -> Result<Stored> {
    let abs = crate::paths::join(root, &a.path);
    if a.cache_link {
        // A symlink into the cache whose target's stat moved: the object
        // may have been written through the link.
        let named = a.recorded_hash;
        let hash = observe::hash_file(&abs)?;
        let content = a.content.unwrap_or(a.stat);
        if Some(hash) == named {
            return Ok(Stored {
                stat: content,
                hash,
                size: content.size,
                link: Some(LinkType::Symlink),
                corrupt: None,
            });
        }
        let mut s = store_and_link(cache, linker, &abs, &a.path, a.stat)?;
        s.corrupt = named;
        return Ok(s);
    }
    let mut s = store_and_link(cache, linker, &abs, &a.path, a.stat)?;
    if let Some(h) = a.recorded_hash
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
) -> Result<Stored> {
    let executable = walked.kind == Kind::File && walked.is_executable();
    let wanted = linker.wanted(executable);
    let link = |hash, size| {
        let w = Write {
            path: rel.to_owned(),
            hash,
            size,
            executable,
            replaces: true,
        };
        apply::place(cache, linker, &w, abs).map(|(stat, t)| Stored {
            stat,
            hash,
            size,
            link: Some(t),
            corrupt: None,
        })
    };
    if let Some(t) = wanted.filter(|t| t.shares_object()) {
        match cache.adopt_file(abs)? {
            Adopted::Linked { hash, size, stat } if t == LinkType::Hardlink => {
                return Ok(Stored {
                    stat,
                    hash,
                    size,
                    link: Some(LinkType::Hardlink),
                    corrupt: None,
                });
            }
            Adopted::Linked { hash, size, .. } | Adopted::Exists { hash, size } => {
                return link(hash, size);
            }
            Adopted::Changed => {}
        }
    }
    let (hash, size, mode, fresh) = store(cache, linker, abs)?;
    // A clone of a file whose content was already stored shares blocks with
    // nothing: it is made again from the object. A symlink read through is
    // replaced by a link of the chain's type.
    if linker
        .wanted(executable)
        .is_some_and(LinkType::shares_object)
        || (mode == StoreMode::Reflink && !fresh)
        || walked.kind == Kind::Symlink
    {
        return link(hash, size);
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
    })
}

/// Stores one file, cloning it when the chain starts with reflink and the
/// file system supports it, copying it otherwise. Only what was really done
/// is reported: on a file system without reflinks, a copy.
fn store(cache: &Cache, linker: &Linker, abs: &Path) -> Result<(Hash, u64, StoreMode, bool)> {
    if linker.current() == LinkType::Reflink {
        match cache.store_file(abs, StoreMode::Reflink) {
            Err(Error::Io { source, .. }) if is_unsupported(&source) => {
                linker.drop_type(LinkType::Reflink);
            }
            other => return other.map(|(h, n, fresh)| (h, n, StoreMode::Reflink, fresh)),
        }
    }
    cache
        .store_file(abs, StoreMode::Copy)
        .map(|(h, n, fresh)| (h, n, StoreMode::Copy, fresh))
}

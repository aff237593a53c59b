//! The workspace side of an out. Data flows one way:
//! walk (bulk stat) → compare with the snapshot → plan → apply → record.

pub mod apply;
pub mod link;
pub mod plan;
pub mod relink;
pub mod stat;
pub mod walk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use self::link::{LinkType, Linker};
use self::plan::{Actual, Root, Write};
use self::stat::{FileStat, Kind, is_identical, is_unchanged};
use crate::cache::{Adopted, Cache, StoreMode};
use crate::error::{Error, IoContext, Result};
use crate::hash::{self, Hash};
use crate::manifest::{Manifest, ManifestEntry};
use crate::paths;
use crate::pointer::{OutKind, OutRecord};
use crate::progress::Bar;
use crate::state::{Snapshot, SnapshotEntries, SnapshotEntry};

/// What the workspace holds for an out, with every file's content hash
/// known: from the snapshot when its stat is unchanged, from the target's
/// name for a symlink into the cache, read and hashed otherwise.
#[derive(Debug)]
pub struct Observation {
    pub root: Root,
    /// Non-directory entries, sorted by path.
    pub files: Vec<Actual>,
    /// Folders, sorted by path.
    pub dirs: Vec<String>,
    pub stale_temps: Vec<PathBuf>,
}

/// What is known of a file's content without reading it.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    hash: Option<Hash>,
    /// A symlink into the cache: its content is the object it names.
    cache_link: bool,
    /// How the snapshot says the file was made, when it is still the very
    /// file the snapshot recorded (same inode and ctime).
    recorded_link: Option<LinkType>,
}

/// Looks walk entries up in a snapshot. Both are sorted by path, so the
/// lookups are a merge: entries must be asked for in path order.
struct KnownHashes<'a, I: Iterator<Item = SnapshotEntry<'a>>> {
    recorded: std::iter::Peekable<I>,
    taken_ns: i64,
    cache: &'a Cache,
}

impl<'a> KnownHashes<'a, Box<dyn Iterator<Item = SnapshotEntry<'a>> + 'a>> {
    fn new(snapshot: Option<&'a Snapshot>, cache: &'a Cache) -> Self {
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
}

impl<'a, I: Iterator<Item = SnapshotEntry<'a>>> KnownHashes<'a, I> {
    fn lookup(&mut self, e: &walk::Entry) -> Known {
        match e.stat.kind {
            Kind::File => {
                while self
                    .recorded
                    .next_if(|r| r.path < e.path.as_str())
                    .is_some()
                {}
                let Some(r) = self.recorded.next_if(|r| r.path == e.path.as_str()) else {
                    return Known::default();
                };
                let same_file = r.stat.kind == e.stat.kind
                    && r.stat.ino == e.stat.ino
                    && r.stat.ctime_ns == e.stat.ctime_ns;
                Known {
                    hash: is_unchanged(&r.stat, &e.stat, self.taken_ns).then_some(r.hash),
                    cache_link: false,
                    recorded_link: r.link.filter(|_| same_file),
                }
            }
            Kind::Symlink => {
                let hash = e
                    .link_target
                    .as_deref()
                    .and_then(|t| self.cache.hash_of_object_path(t));
                Known {
                    hash,
                    cache_link: hash.is_some(),
                    recorded_link: hash.map(|_| LinkType::Symlink),
                }
            }
            Kind::Dir | Kind::Other => Known::default(),
        }
    }
}

/// A file as a snapshot will record it.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub path: &'a str,
    pub stat: FileStat,
    pub hash: Hash,
    pub link: Option<LinkType>,
}

/// Encodes rows (in path order) for a snapshot.
pub fn snapshot_entries(rows: &[Row<'_>]) -> SnapshotEntries {
    let mut entries = SnapshotEntries::with_capacity(rows.len());
    for r in rows {
        entries.push(r.path, &r.stat, r.hash, r.link);
    }
    entries
}

/// Hardlinks to one object share one inode: making the second link changes
/// the ctime and link count of the first. Once files are placed, the rows of
/// files that share an inode with another row are stat'ed again, so that a
/// snapshot holds the stats the tree ends with.
pub fn restat_shared_inodes(root: &Path, rows: &mut [Row<'_>]) -> Result<()> {
    let mut links: HashMap<(u64, u64), u32> = HashMap::new();
    for r in rows.iter().filter(|r| r.stat.nlink > 1) {
        *links.entry((r.stat.dev, r.stat.ino)).or_default() += 1;
    }
    if links.values().all(|&n| n < 2) {
        return Ok(());
    }
    rows.par_iter_mut()
        .filter(|r| r.stat.nlink > 1 && links.get(&(r.stat.dev, r.stat.ino)) > Some(&1))
        .try_for_each(|r| {
            let abs = paths::join(root, r.path);
            r.stat = FileStat::from_metadata(&std::fs::symlink_metadata(&abs).at("read", &abs)?);
            Ok(())
        })
}

pub fn hash_file(path: &Path) -> Result<Hash> {
    let f = std::fs::File::open(path).at("read", path)?;
    hash::with_buffer(|buf| hash::hash_reader(f, buf))
        .map(|(h, _)| h)
        .at("read", path)
}

/// Whether a fresh walk reproduces a snapshot exactly: the same files, each
/// with the same type, mode, size, mtime, ctime and inode, none of them racy,
/// and no leftover temp file to clean. One pass over both sorted lists.
pub fn matches_snapshot(w: &walk::Walk, s: &Snapshot) -> bool {
    if !w.stale_temps.is_empty() {
        return false;
    }
    let mut recorded = s.entries();
    for e in w.files() {
        match recorded.next() {
            Some(r) if r.path == e.path && is_identical(&r.stat, &e.stat, s.taken_ns) => {}
            _ => return false,
        }
    }
    recorded.next().is_none()
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
        });
    };
    let root_kind = match w.entries.first() {
        Some(e) if e.path.is_empty() => Root::NotDir,
        _ => Root::Dir,
    };
    let mut dirs = Vec::new();
    let mut files = Vec::with_capacity(w.entries.len());
    let mut known = KnownHashes::new(snapshot, cache);
    for e in w.entries {
        if e.stat.kind == Kind::Dir {
            dirs.push(e.path);
            continue;
        }
        let k = known.lookup(&e);
        files.push(Actual {
            path: e.path,
            stat: e.stat,
            hash: k.hash,
            cache_link: k.cache_link,
            recorded_link: k.recorded_link,
        });
    }
    let suspects: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, a)| a.hash.is_none() && a.stat.kind == Kind::File)
        .map(|(i, _)| i)
        .collect();
    let bar = if suspects.len() > 1000 {
        Bar::new(suspects.len() as u64, "hashing", quiet)
    } else {
        Bar::hidden()
    };
    let hashes: Vec<Result<Hash>> = suspects
        .par_iter()
        .map(|&i| {
            let r = hash_file(&paths::join(root, &files[i].path));
            bar.inc(1);
            r
        })
        .collect();
    bar.finish();
    for (&i, h) in suspects.iter().zip(hashes) {
        files[i].hash = Some(h?);
    }
    Ok(Observation {
        root: root_kind,
        files,
        dirs,
        stale_temps: w.stale_temps,
    })
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
    /// Files read and stored this time.
    pub stored: usize,
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

struct Pending {
    path: String,
    stat: FileStat,
    hash: Option<Hash>,
    cache_link: bool,
    recorded_link: Option<LinkType>,
}

/// Stores the content at `root` in the cache (reading only files whose stat
/// changed since `old`), then links the stored files per the link chain.
pub fn record(
    root: &Path,
    old: Option<&Snapshot>,
    cache: &Cache,
    linker: &Linker,
    quiet: bool,
) -> Result<Recorded> {
    let w = walk::walk(root, old.map_or(0, Snapshot::len))?
        .ok_or_else(|| Error::NotFound(root.to_path_buf()))?;
    let is_dir = !matches!(w.entries.first(), Some(e) if e.path.is_empty());
    let mut pending = Vec::with_capacity(w.entries.len());
    let mut known = KnownHashes::new(old, cache);
    for e in w.entries {
        let abs = paths::join(root, &e.path);
        match e.stat.kind {
            Kind::Dir => continue,
            Kind::Other => {
                return Err(Error::Unsupported {
                    path: abs,
                    reason: "it is not a regular file (socket, fifo or device)".into(),
                });
            }
            Kind::Symlink | Kind::File => {}
        }
        let Known {
            hash,
            cache_link,
            recorded_link,
        } = known.lookup(&e);
        if e.stat.kind == Kind::Symlink && !cache_link {
            return Err(Error::Unsupported {
                path: abs,
                reason: "symlinks are not tracked; replace it by what it points to, or remove it"
                    .into(),
            });
        }
        // A remembered hash counts only if the object is still there; a
        // symlink to a vanished object has no content left to record.
        let hash = match hash {
            Some(h) if cache.contains(h) => Some(h),
            Some(_) if cache_link => {
                return Err(Error::io(
                    "read",
                    abs,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "it links to a cache object that is gone",
                    ),
                ));
            }
            _ => None,
        };
        pending.push(Pending {
            path: e.path,
            stat: e.stat,
            hash,
            cache_link,
            recorded_link,
        });
    }

    let to_store = pending.iter().filter(|p| p.hash.is_none()).count();
    let bar = Bar::new(to_store as u64, "storing", quiet || to_store < 1000);
    let results: Vec<Result<Stored>> = pending
        .par_iter()
        .map(|p| -> Result<Stored> {
            if let Some(hash) = p.hash {
                return Ok(Stored {
                    stat: p.stat,
                    hash,
                    size: p.stat.size,
                    link: p.recorded_link,
                });
            }
            let abs = paths::join(root, &p.path);
            let r = store_and_link(cache, linker, &abs, &p.path, p.stat);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish();

    let mut entries = Vec::with_capacity(pending.len());
    let mut rows = Vec::with_capacity(pending.len());
    let mut size = 0u64;
    for (p, r) in pending.iter().zip(results) {
        let Stored {
            stat,
            hash,
            size: stored_size,
            link,
        } = r?;
        let executable = !p.cache_link && p.stat.is_executable();
        let file_size = if p.cache_link {
            std::fs::metadata(cache.object_path(hash))
                .map(|m| m.len())
                .at("read", &cache.object_path(hash))?
        } else {
            stored_size
        };
        size += file_size;
        entries.push(ManifestEntry {
            path: p.path.clone(),
            hash,
            size: file_size,
            executable,
        });
        rows.push(Row {
            path: &p.path,
            stat,
            hash,
            link,
        });
    }
    restat_shared_inodes(root, &mut rows)?;
    let snapshot_entries = snapshot_entries(&rows);
    let manifest = Manifest::new(entries);
    let (hash, executable) = if is_dir {
        (cache.store_bytes(&manifest.encode())?, false)
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
        stored: to_store,
        link_type: linker.current(),
        cache_type: linker.describe(),
    })
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
    let executable = walked.is_executable();
    let wanted = linker.wanted(executable);
    let link = |hash, size| {
        let w = Write {
            path: rel.to_owned(),
            hash,
            size,
            executable,
        };
        apply::place(cache, linker, &w, abs).map(|(stat, t)| Stored {
            stat,
            hash,
            size,
            link: Some(t),
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
    // nothing: it is made again from the object.
    if linker
        .wanted(executable)
        .is_some_and(LinkType::shares_object)
        || (mode == StoreMode::Reflink && !fresh)
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
    })
}

/// A file as recorded: the stat to remember, its content's hash and size.
struct Stored {
    stat: FileStat,
    hash: Hash,
    size: u64,
    link: Option<LinkType>,
}

/// Stores one file, cloning it when the chain starts with reflink and the
/// file system supports it, copying it otherwise.
fn store(cache: &Cache, linker: &Linker, abs: &Path) -> Result<(Hash, u64, StoreMode, bool)> {
    if linker.current() == LinkType::Reflink {
        match cache.store_file(abs, StoreMode::Reflink) {
            Err(Error::Io { source, .. }) if link::is_unsupported(&source) => {
                linker.drop_type(LinkType::Reflink);
            }
            other => return other.map(|(h, n, fresh)| (h, n, StoreMode::Reflink, fresh)),
        }
    }
    cache
        .store_file(abs, StoreMode::Copy)
        .map(|(h, n, fresh)| (h, n, StoreMode::Copy, fresh))
}

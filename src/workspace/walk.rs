//! The bulk stat walk: one `lstat` per entry, directories read in parallel
//! (each directory is a rayon job), results sorted by path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{FileStat, Kind, LinkType, temp};
use crate::hash::Hash;

#[derive(Clone, Debug)]
pub struct Entry {
    /// '/'-separated, relative to the walked root; "" is the root itself
    /// (only for a root that is not a directory).
    pub path: Box<str>,
    pub stat: FileStat,
    /// For a symlink, what it points to, read in the same pass. Boxed: most
    /// entries are not symlinks, and an entry of 10^6 is kept small.
    pub symlink: Option<Box<Symlink>>,
    /// What is known of the content without reading it: empty from the
    /// walk, filled in by `observe` (an observed entry is an `Actual`). It
    /// lives here so that observing turns the walk's list into the
    /// observation in place, never holding two lists of 10^6 entries.
    pub known: Known,
}

/// What is known of a file's content without reading it. 40 bytes: the
/// two hashes' presence is held in flags beside the others (two
/// `Option<Hash>` take 48), as 10^6 of these live at once.
#[derive(Clone, Copy, Debug)]
pub struct Known {
    hash: Hash,
    recorded_hash: Hash,
    has_hash: bool,
    has_recorded_hash: bool,
    /// A symlink into the cache: its content is the object it names.
    pub cache_link: bool,
    /// How the snapshot says the file was made, when it is still the very
    /// file the snapshot recorded (same inode and ctime).
    pub recorded_link: Option<LinkType>,
}

impl Default for Known {
    /// Nothing known.
    fn default() -> Known {
        Known {
            hash: Hash(0),
            recorded_hash: Hash(0),
            has_hash: false,
            has_recorded_hash: false,
            cache_link: false,
            recorded_link: None,
        }
    }
}

impl Known {
    /// The content's hash, when the stat can be trusted (or once read).
    pub fn hash(&self) -> Option<Hash> {
        self.has_hash.then_some(self.hash)
    }

    pub fn set_hash(&mut self, h: Option<Hash>) {
        self.has_hash = h.is_some();
        self.hash = h.unwrap_or(Hash(0));
    }

    /// The hash the snapshot recorded at this path (a symlink: the object
    /// its target names), trusted or not.
    pub fn recorded_hash(&self) -> Option<Hash> {
        self.has_recorded_hash.then_some(self.recorded_hash)
    }

    pub fn set_recorded_hash(&mut self, h: Option<Hash>) {
        self.has_recorded_hash = h.is_some();
        self.recorded_hash = h.unwrap_or(Hash(0));
    }
}

/// A symlink's target and the stat of what it points to.
#[derive(Clone, Debug)]
pub struct Symlink {
    pub target: PathBuf,
    /// `None`: dangling.
    pub stat: Option<FileStat>,
}

impl Entry {
    /// The stat that stands for the entry's content, as snapshots record
    /// it (a symlink: `FileStat::of_symlink`); `None` for a dangling symlink.
    /// A symlink entry without `symlink` holds that stat already (`record`
    /// leaves entries so once it has stored them).
    pub fn content_stat(&self) -> Option<FileStat> {
        match (&self.symlink, self.stat.kind) {
            (Some(l), Kind::Symlink) => l.stat.map(|t| self.stat.of_symlink(&t)),
            _ => Some(self.stat),
        }
    }

    /// The executable bit as bale records it (a symlink's own mode means
    /// nothing; cache objects are never executable).
    pub fn executable(&self) -> bool {
        self.stat.kind == Kind::File && self.stat.is_executable()
    }

    /// A symlink's target.
    pub fn link_target(&self) -> Option<&Path> {
        self.symlink.as_ref().map(|l| l.target.as_path())
    }

    /// For a symlink, the stat of what it points to (`None`: dangling).
    pub fn target_stat(&self) -> Option<FileStat> {
        self.symlink.as_ref().and_then(|l| l.stat)
    }
}

#[derive(Debug, Default)]
pub struct Walk {
    /// Every entry below the root (directories included, the root excluded
    /// unless it is not a directory), sorted by path bytes.
    pub entries: Vec<Entry>,
    /// Leftover temporary files of an interrupted bale run.
    pub stale_temps: Vec<PathBuf>,
    /// Entries whose names are not UTF-8 (left out of `entries`).
    pub bad_names: Vec<PathBuf>,
}

impl Walk {
    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.stat.kind != Kind::Dir)
    }
}

/// Walks `root` without following symlinks. `Ok(None)` when `root` does
/// not exist. `expected` is how many entries the caller expects (from a
/// snapshot or manifest; 0 when unknown): the result is allocated once at
/// that size, so the walk's peak memory stays near one copy of its entries.
pub fn walk(root: &Path, expected: usize) -> Result<Option<Walk>> {
    let meta = match fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", root, e)),
    };
    let stat = FileStat::from_metadata(&meta);
    if stat.kind != Kind::Dir {
        let symlink = read_target(root, stat.kind)?;
        return Ok(Some(Walk {
            entries: vec![Entry {
                path: Box::default(),
                stat,
                symlink,
                known: Known::default(),
            }],
            ..Walk::default()
        }));
    }

    let found: Mutex<Vec<Entry>> = Mutex::new(Vec::with_capacity(expected + expected / 8));
    let odd: Mutex<Odd> = Mutex::new(Odd::default());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    rayon::scope(|scope| {
        read_dir_job(
            scope,
            root.to_path_buf(),
            String::new(),
            &found,
            &odd,
            &first_error,
        );
    });
    if let Some(e) = into_inner(first_error) {
        return Err(e);
    }
    let mut entries = into_inner(found);
    entries.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut odd = into_inner(odd);
    odd.bad_names.sort_unstable();
    Ok(Some(Walk {
        entries,
        stale_temps: odd.temps,
        bad_names: odd.bad_names,
    }))
}

/// What a walk sets aside rather than lists.
#[derive(Default)]
struct Odd {
    temps: Vec<PathBuf>,
    bad_names: Vec<PathBuf>,
}

fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|poison| poison.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn read_dir_job<'s>(
    scope: &rayon::Scope<'s>,
    dir: PathBuf,
    rel: String,
    found: &'s Mutex<Vec<Entry>>,
    odd: &'s Mutex<Odd>,
    first_error: &'s Mutex<Option<Error>>,
) {
    match read_one_dir(&dir, &rel) {
        Ok((mut entries, found_odd)) => {
            for e in entries.iter().filter(|e| e.stat.kind == Kind::Dir) {
                let sub_dir = dir.join(file_name(&e.path));
                let sub_rel = e.path.to_string();
                scope.spawn(move |s| read_dir_job(s, sub_dir, sub_rel, found, odd, first_error));
            }
            if !found_odd.temps.is_empty() || !found_odd.bad_names.is_empty() {
                let mut o = lock(odd);
                o.temps.extend(found_odd.temps);
                o.bad_names.extend(found_odd.bad_names);
            }
            lock(found).append(&mut entries);
        }
        Err(e) => {
            lock(first_error).get_or_insert(e);
        }
    }
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

fn read_one_dir(dir: &Path, rel: &str) -> Result<(Vec<Entry>, Odd)> {
    let mut entries = Vec::new();
    let mut odd = Odd::default();
    for item in fs::read_dir(dir).at("read the folder", dir)? {
        let item = item.at("read the folder", dir)?;
        let name = item.file_name();
        let Some(name_str) = name.to_str() else {
            odd.bad_names.push(dir.join(&name));
            continue;
        };
        if temp::is_temp_name(name_str) {
            odd.temps.push(dir.join(&name));
            continue;
        }
        // DirEntry::metadata is an lstat relative to the open directory.
        // The full path is made only for an error or a symlink: joined for
        // every entry, it was an allocation per file of the walk.
        let meta = item
            .metadata()
            .map_err(|e| Error::io("read", dir.join(&name), e))?;
        let stat = FileStat::from_metadata(&meta);
        // Made at its exact length, so that boxing it does not reallocate.
        let path = if rel.is_empty() {
            Box::from(name_str)
        } else {
            let mut p = String::with_capacity(rel.len() + 1 + name_str.len());
            p.push_str(rel);
            p.push('/');
            p.push_str(name_str);
            p.into_boxed_str()
        };
        let symlink = if stat.kind == Kind::Symlink {
            read_target(&dir.join(&name), stat.kind)?
        } else {
            None
        };
        entries.push(Entry {
            path,
            stat,
            symlink,
            known: Known::default(),
        });
    }
    Ok((entries, odd))
}

/// A symlink's target and the stat of what it points to.
fn read_target(path: &Path, kind: Kind) -> Result<Option<Box<Symlink>>> {
    if kind != Kind::Symlink {
        return Ok(None);
    }
    let target = fs::read_link(path).at("read the symlink", path)?;
    let stat = match fs::metadata(path) {
        Ok(m) => Some(FileStat::from_metadata(&m)),
        Err(_) => None,
    };
    Ok(Some(Box::new(Symlink { target, stat })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_stays_compact_and_known_hashes_round_trip() {
        // 10^6 entries live at once: every byte here is a megabyte there.
        assert!(std::mem::size_of::<Known>() <= 40);
        let entry = std::mem::size_of::<Entry>();
        assert!(entry <= 120, "{entry}");
        let mut k = Known::default();
        assert_eq!((k.hash(), k.recorded_hash()), (None, None));
        let h = Hash(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        k.set_hash(Some(h));
        k.set_recorded_hash(Some(Hash(u128::MAX)));
        assert_eq!(k.hash(), Some(h));
        assert_eq!(k.recorded_hash(), Some(Hash(u128::MAX)));
        k.set_hash(None);
        assert_eq!(k.hash(), None);
        assert_eq!(k.recorded_hash(), Some(Hash(u128::MAX)));
    }

    #[test]
    fn walks_sorted_without_following_symlinks_and_sets_temps_aside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("d");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f"), "x").unwrap();
        fs::write(root.join("a.txt"), "yy").unwrap();
        fs::write(temp::name_in(&root), "").unwrap();
        fs::write(root.join(".bale-tmp.mine"), "").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let w = walk(&root, 0).unwrap().unwrap();
        let paths: Vec<_> = w.entries.iter().map(|e| &*e.path).collect();
        assert_eq!(
            paths,
            [".bale-tmp.mine", "a", "a.txt", "a/b", "a/b/f", "link"]
        );
        assert_eq!(w.entries[2].stat.size, 2);
        let link = &w.entries[5];
        assert_eq!(link.stat.kind, Kind::Symlink);
        assert_eq!(link.link_target(), Some(Path::new("/etc")));
        assert_eq!(link.content_stat().map(|s| s.kind), Some(Kind::Symlink));
        assert_eq!(link.target_stat().map(|s| s.kind), Some(Kind::Dir));
        assert_eq!(w.stale_temps.len(), 1);
        assert!(walk(&t.path().join("missing"), 0).unwrap().is_none());
    }

    #[test]
    fn a_file_root_is_one_entry() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "abc").unwrap();
        let w = walk(&f, 1).unwrap().unwrap();
        assert_eq!(w.entries.len(), 1);
        assert_eq!(&*w.entries[0].path, "");
        assert_eq!(w.entries[0].stat.size, 3);
    }
}

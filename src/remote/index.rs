//! What a remote holds, as far as this client knows: the indexes of the
//! remote's packs, kept in `.bale/remotes/<id>/` and brought up to date by
//! one listing of `packs/` (only indexes not seen before are downloaded),
//! and, for a push, the listing of `objects/`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::Remote;
use super::layout::{self, IdxEntry};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::hash::Hash;

/// An object in one of the remote's packs.
#[derive(Clone, Copy, Debug)]
pub struct Packed {
    pub hash: Hash,
    /// Into `RemoteIndex::packs`.
    pub pack: u32,
    pub offset: u64,
    pub len: u64,
}

pub struct RemoteIndex {
    dir: PathBuf,
    pub packs: Vec<String>,
    /// Sorted by hash.
    entries: Vec<Packed>,
    /// Objects stored singly (`None`: not listed).
    singles: Option<HashSet<Hash>>,
    /// Pack indexes found damaged on the remote (their packs are not used).
    pub damaged: Vec<String>,
    /// Copies a fetch found damaged (`layout::bad_key`), as listed.
    bad: HashSet<(Hash, String)>,
}

/// The folder where the indexes of the remote `identity` are kept.
pub fn local_dir(bale_dir: &Path, identity: &str) -> PathBuf {
    let id = xxhash_rust::xxh3::xxh3_64(identity.as_bytes());
    bale_dir.join("remotes").join(format!("{id:016x}"))
}

impl RemoteIndex {
    /// Lists the remote's packs, downloads the indexes not kept yet (on
    /// `threads` threads), forgets the ones gone, and loads them all; with
    /// `singles`, lists the single objects too.
    pub fn sync(
        remote: &Remote,
        dir: PathBuf,
        singles: bool,
        threads: usize,
    ) -> Result<RemoteIndex> {
        let listed = remote.list(layout::PACKS)?;
        let pack_sizes: HashMap<&str, u64> = listed
            .iter()
            .filter_map(|(k, size)| Some((layout::pack_of_pack_key(k)?, *size)))
            .collect();
        let names: Vec<&str> = listed
            .iter()
            .filter_map(|(k, _)| layout::pack_of_idx_key(k))
            .filter(|n| pack_sizes.contains_key(n))
            .collect();
        fs::create_dir_all(&dir).at("create", &dir)?;
        let wanted: HashSet<&str> = names.iter().copied().collect();
        let mut kept = HashSet::new();
        for entry in fs::read_dir(&dir).at("read", &dir)? {
            let entry = entry.at("read", &dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only indexes are touched: another bale syncing the same remote
            // may be writing one through a temp file here right now.
            let Some(n) = name.strip_suffix(".idx") else {
                continue;
            };
            if wanted.contains(n) {
                kept.insert(n.to_owned());
            } else {
                let _ = fs::remove_file(entry.path());
            }
        }
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !kept.contains(*n))
            .collect();
        let fetched = super::in_parallel(missing, threads, |n| {
            remote.get(&layout::idx_key(n)).map(|b| (n, b))
        });
        let mut damaged = Vec::new();
        let mut loaded: Vec<(String, Vec<IdxEntry>)> = Vec::new();
        for r in fetched {
            let (n, bytes) = r?;
            let Some(bytes) = bytes else { continue };
            match check(&bytes, n, pack_sizes[n]) {
                Some(entries) => {
                    write_atomic(&dir.join(format!("{n}.idx")), &bytes)?;
                    loaded.push((n.to_owned(), entries));
                }
                None => damaged.push(n.to_owned()),
            }
        }
        for n in kept {
            let path = dir.join(format!("{n}.idx"));
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                // Forgotten by another bale meanwhile: read it from the remote.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match remote.get(&layout::idx_key(&n))? {
                        Some(b) => {
                            write_atomic(&path, &b)?;
                            b.to_vec()
                        }
                        None => continue,
                    }
                }
                Err(e) => return Err(Error::io("read", path, e)),
            };
            match check(&bytes, &n, pack_sizes[n.as_str()]) {
                Some(entries) => loaded.push((n, entries)),
                None => {
                    let _ = fs::remove_file(&path);
                    damaged.push(n);
                }
            }
        }
        let mut index = RemoteIndex {
            dir,
            packs: Vec::new(),
            entries: Vec::new(),
            singles: None,
            damaged,
            bad: remote
                .list(layout::BAD)?
                .iter()
                .filter_map(|(k, _)| layout::bad_of_key(k))
                .collect(),
        };
        let bad = index.bad.clone();
        for (n, entries) in loaded {
            let sound: Vec<IdxEntry> = entries
                .into_iter()
                .filter(|e| !bad.contains(&(e.hash, n.clone())))
                .collect();
            index.push_pack(n, &sound);
        }
        index.entries.sort_unstable_by_key(|p| p.hash);
        index.entries.dedup_by_key(|p| p.hash);
        if singles {
            index.singles = Some(
                remote
                    .list(layout::OBJECTS)?
                    .iter()
                    .filter_map(|(k, _)| layout::object_of_key(k))
                    .filter(|h| !bad.contains(&(*h, "-".to_owned())))
                    .collect(),
            );
        }
        Ok(index)
    }

    fn push_pack(&mut self, name: String, entries: &[IdxEntry]) {
        let pack = self.packs.len() as u32;
        self.packs.push(name);
        self.entries.extend(entries.iter().map(|e| Packed {
            hash: e.hash,
            pack,
            offset: e.offset,
            len: e.len,
        }));
    }

    /// Where the remote packs `hash`, if it does.
    pub fn packed(&self, hash: Hash) -> Option<&Packed> {
        self.entries
            .binary_search_by_key(&hash, |p| p.hash)
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Whether the remote holds `hash`, packed or (if listed) singly.
    pub fn has(&self, hash: Hash) -> bool {
        self.packed(hash).is_some() || self.singles.as_ref().is_some_and(|s| s.contains(&hash))
    }

    /// Records a pack this client has just uploaded, with its index.
    pub fn add_uploaded(&self, name: &str, idx: &Bytes) -> Result<()> {
        write_atomic(&self.dir.join(format!("{name}.idx")), idx)
    }

    /// Notes on the remote that its copy of `hash` (in the pack `pack`, or
    /// the single object when `None`) failed its checks: every client then
    /// treats that copy as absent, and the next push from a sound cache
    /// uploads the object again.
    pub fn mark_bad(&self, remote: &Remote, hash: Hash, pack: Option<&str>) -> Result<()> {
        remote.put(&layout::bad_key(hash, pack), Bytes::new())
    }

    /// Drops the damage notes of single objects just uploaded again.
    pub fn clear_bad_singles(&self, remote: &Remote, uploaded: &HashSet<Hash>) -> Result<()> {
        for (h, w) in &self.bad {
            if w == "-" && uploaded.contains(h) {
                remote.delete(&layout::bad_key(*h, None))?;
            }
        }
        Ok(())
    }

    /// Records a single object this client has just uploaded.
    pub fn add_single(&mut self, hash: Hash) {
        if let Some(s) = &mut self.singles {
            s.insert(hash);
        }
    }

    pub fn objects(&self) -> usize {
        self.entries.len() + self.singles.as_ref().map_or(0, HashSet::len)
    }
}

/// A downloaded index, if it is sound and fits its pack of `pack_size`.
fn check(bytes: &[u8], name: &str, pack_size: u64) -> Option<Vec<IdxEntry>> {
    if layout::pack_name(bytes) != name {
        return None;
    }
    let entries = layout::decode_idx(bytes)?;
    entries
        .iter()
        .all(|e| {
            e.offset
                .checked_add(e.len)
                .is_some_and(|end| end <= pack_size)
        })
        .then_some(entries)
}

//! The content-addressed object store. Callers ask it whether it holds an
//! object, for an object's content, or for a workspace file made from an
//! object; they never see where an object lives, so that another place
//! (packs) can serve objects without the callers changing.
//!
//! Loose objects are `<cache>/<2 hex>/<30 hex>`, written once through a temp
//! file in `<cache>/tmp/`, hashed on the way in, made read-only, and never
//! modified. Small objects may instead be packed (`pack/`); every method
//! here serves both, loose first. A hard link or symlink needs a loose file,
//! so a packed object is unpacked to loose when one is asked for. An object whose content no longer matches its name (someone
//! wrote through a hard link as root) is moved to `<cache>/corrupt/` when it
//! is found, so that it is never served again.
//!
//! `store.rs` puts objects in (store, adopt, receive, publish), `link.rs`
//! makes workspace files from them, `maintenance.rs` lists, verifies and
//! removes them (fsck, gc); this module finds and reads them.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::FileStat;
use crate::hash::Hash;
use crate::manifest::Manifest;

mod link;
mod maintenance;
pub mod pack;
mod store;

pub use link::{LinkError, Made, create_private};
pub use maintenance::Removed;
pub use store::{Adopted, Incoming, StoreMode};

/// Mode of every cache object: read-only for everyone.
pub const OBJECT_MODE: u32 = 0o444;

#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    tmp: PathBuf,
    packs: pack::Packs,
    /// The default remote, named in the hint of a missing object.
    default_remote: Option<String>,
}

/// Why reading an object failed.
enum ReadError {
    Corrupt,
    Io(Error),
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        let tmp = dir.join("tmp");
        let packs = pack::Packs::new(&dir);
        Cache {
            dir,
            tmp,
            packs,
            default_remote: None,
        }
    }

    /// Names the default remote (`core.remote`) in missing-object errors.
    pub fn with_default_remote_name(mut self, remote: Option<String>) -> Cache {
        self.default_remote = remote;
        self
    }

    /// What the cache found wrong and dealt with, for the caller to tell.
    pub fn warnings(&self) -> &crate::warnings::Warnings {
        self.packs.warnings()
    }

    pub fn default_remote(&self) -> Option<&str> {
        self.default_remote.as_deref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cache folder itself is there (a `cache.dir` on a disk
    /// that is not mounted is not).
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn loose_path(&self, hash: Hash) -> PathBuf {
        let hex = hash.to_string();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The object a symlink target names, when it is one of this cache's
    /// loose objects (how symlinked workspace files are recognised).
    pub fn symlink_object(&self, target: &Path) -> Option<Hash> {
        self.hash_of_loose_path(target)
    }

    /// The object a symlink target names when it is the path of an object
    /// in another place (the cache was moved, and `cache.dir` set to its
    /// new place) that this cache holds: such a symlink is a link of bale's,
    /// not content of the user's, to be made again into this cache.
    pub fn moved_object(&self, target: &Path) -> Option<Hash> {
        if target.starts_with(&self.dir) {
            return None;
        }
        let mut parts = target.iter().rev();
        let (b, a) = (parts.next()?.to_str()?, parts.next()?.to_str()?);
        if a.len() != 2 || b.len() != 30 {
            return None;
        }
        let hash: Hash = format!("{a}{b}").parse().ok()?;
        self.contains(hash).then_some(hash)
    }

    fn hash_of_loose_path(&self, path: &Path) -> Option<Hash> {
        let rest = path.strip_prefix(&self.dir).ok()?;
        let mut parts = rest.iter();
        let (a, b) = (parts.next()?.to_str()?, parts.next()?.to_str()?);
        if parts.next().is_some() || a.len() != 2 {
            return None;
        }
        format!("{a}{b}").parse().ok()
    }

    pub fn packs(&self) -> &pack::Packs {
        &self.packs
    }

    /// Whether the object is in the cache, loose or packed. (A pack index
    /// that cannot be read counts as not holding it; reading the object
    /// then reports why.)
    pub fn contains(&self, hash: Hash) -> bool {
        self.loose_path(hash).is_file() || self.packs.locate(hash).is_ok_and(|l| l.is_some())
    }

    /// Of `wanted` (sorted, without duplicates), the objects the cache does
    /// not hold, loose or packed, in the same order. Many are checked by
    /// listing the fan-out folders (no stat per object, which for 10^6
    /// objects costs more than the stat walk of the workspace); a few, by
    /// one stat each.
    pub fn missing_of(&self, wanted: &[Hash]) -> Vec<Hash> {
        self.missing_of_listing_from(wanted, 20_000)
    }

    fn missing_of_listing_from(&self, wanted: &[Hash], list_from: usize) -> Vec<Hash> {
        if wanted.len() < list_from {
            return wanted
                .par_iter()
                .copied()
                .filter(|&h| !self.contains(h))
                .collect();
        }
        // The wanted hashes of each fan-out folder are a run of the slice.
        let runs: Vec<&[Hash]> = wanted.chunk_by(|a, b| a.0 >> 120 == b.0 >> 120).collect();
        let not_loose: Vec<Hash> = runs
            .par_iter()
            .flat_map_iter(|run| {
                let prefix = format!("{:02x}", run[0].0 >> 120);
                let mut names: Vec<Hash> = match fs::read_dir(self.dir.join(&prefix)) {
                    Ok(rd) => rd
                        .filter_map(|e| {
                            let e = e.ok()?;
                            if !e.file_type().ok()?.is_file() {
                                return None;
                            }
                            let name = e.file_name();
                            let rest = name.to_str()?;
                            (rest.len() == 30)
                                .then(|| format!("{prefix}{rest}").parse::<Hash>().ok())?
                        })
                        .collect(),
                    // Unreadable: each object is then asked for by itself.
                    Err(_) => return run.iter().copied().filter(|&h| !self.is_loose(h)).collect(),
                };
                names.sort_unstable();
                run.iter()
                    .copied()
                    .filter(|h| names.binary_search(h).is_err())
                    .collect::<Vec<_>>()
            })
            .collect();
        not_loose
            .into_iter()
            .filter(|&h| !self.packs.locate(h).is_ok_and(|l| l.is_some()))
            .collect()
    }

    /// Whether the object is a loose file (not only packed).
    pub fn is_loose(&self, hash: Hash) -> bool {
        self.loose_path(hash).is_file()
    }

    /// The size of the object `hash`, `None` when it is not in the cache.
    pub fn size(&self, hash: Hash) -> Result<Option<u64>> {
        let path = self.loose_path(hash);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(self.packs.locate(hash)?.map(|l| l.size))
            }
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// The content of the object `hash`, checked against its name: `Ok(None)`
    /// when it is not in the cache; `LinkError::Corrupt` when it does not
    /// match (it is then set aside).
    fn read_bytes(&self, hash: Hash) -> Result<Option<Vec<u8>>, ReadError> {
        let path = self.loose_path(hash);
        match fs::read(&path) {
            Ok(b) if Hash::of_bytes(&b) == hash => return Ok(Some(b)),
            Ok(_) => {
                self.set_aside(hash);
                if !matches!(self.packs.locate(hash), Ok(Some(_))) {
                    return Err(ReadError::Corrupt);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ReadError::Io(Error::io("read", path, e))),
        }
        match self.packs.read(hash).map_err(ReadError::Io)? {
            pack::Found::Bytes(b) => Ok(Some(b)),
            pack::Found::Missing => Ok(None),
            pack::Found::Corrupt => Err(ReadError::Corrupt),
        }
    }

    /// The checked content of the packed object `hash`, for `link`.
    fn packed_bytes(&self, hash: Hash) -> Result<Vec<u8>, LinkError> {
        match self.packs.read(hash) {
            Ok(pack::Found::Bytes(b)) => Ok(b),
            Ok(pack::Found::Missing) => Err(LinkError::Missing),
            Ok(pack::Found::Corrupt) => Err(LinkError::Corrupt),
            Err(e) => Err(LinkError::Io(io::Error::other(e.to_string()))),
        }
    }

    /// Makes a loose copy of a packed object (for a hard link or symlink);
    /// a loose object already there is kept.
    fn unpack(&self, hash: Hash) -> Result<(), LinkError> {
        let bytes = self.packed_bytes(hash)?;
        let io_err = |e: Error| LinkError::Io(io::Error::other(e.to_string()));
        let mut tmp = self.create_temp().map_err(io_err)?;
        tmp.as_file_mut().write_all(&bytes).map_err(LinkError::Io)?;
        self.publish(tmp, hash).map_err(io_err)?;
        Ok(())
    }

    /// The object `hash` as a pack record, for a remote pack: a packed
    /// object's record as it is (its checksum checked), a loose object read,
    /// checked against its name and encoded (compressed if `compress` and it
    /// pays). `Ok(None)`: the cache holds no sound copy.
    pub fn record_of(&self, hash: Hash, compress: bool) -> Result<Option<Vec<u8>>> {
        let path = self.loose_path(hash);
        match fs::read(&path) {
            Ok(b) if Hash::of_bytes(&b) == hash => {
                return Ok(Some(pack::Record::encode(hash, b, compress).to_bytes()));
            }
            Ok(_) => self.set_aside(hash),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
        self.packs.read_record(hash)
    }

    /// A reader of the object `hash` and its size: the loose file, or a
    /// packed object's checked content. The loose file is not checked here:
    /// the caller hashes what it reads.
    pub fn reader(&self, hash: Hash) -> Result<Option<(Box<dyn io::Read + Send>, u64)>> {
        let path = self.loose_path(hash);
        match File::open(&path) {
            Ok(f) => {
                let len = f.metadata().at("read", &path)?.len();
                return Ok(Some((Box::new(f), len)));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
        match self.packs.read(hash)? {
            pack::Found::Bytes(b) => {
                let len = b.len() as u64;
                Ok(Some((Box::new(io::Cursor::new(b)), len)))
            }
            pack::Found::Missing | pack::Found::Corrupt => Ok(None),
        }
    }

    /// Reads and checks the manifest object `hash` of the out at `out`.
    pub fn read_manifest(&self, hash: Hash, out: &Path) -> Result<Manifest> {
        Manifest::decode(&self.manifest_bytes(hash, out)?, hash)
    }

    /// The checked bytes of the manifest `hash` of the out at `out`.
    fn manifest_bytes(&self, hash: Hash, out: &Path) -> Result<Vec<u8>> {
        match self.read_bytes(hash) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(self.missing(hash, out)),
            Err(ReadError::Corrupt) => Err(self.corrupt(hash, out)),
            Err(ReadError::Io(e)) => Err(e),
        }
    }

    /// The entries at `paths` (sorted) of the manifest `hash`, looked up
    /// without decoding the rest (`Manifest::decode_at`: only for a manifest
    /// an out's snapshot names). `Ok(None)`: a path is not in it.
    pub fn read_manifest_at(
        &self,
        hash: Hash,
        out: &Path,
        paths: &[&str],
    ) -> Result<Option<Manifest>> {
        Manifest::decode_at(&self.manifest_bytes(hash, out)?, hash, paths)
    }

    /// Looks up, in one pass over the pack index, which of the objects
    /// `hashes` are packed and where, for the reads that follow (until
    /// `unhint_reads`). In a cache without packs it does nothing, not even
    /// collect the hashes.
    pub fn hint_reads(&self, hashes: impl Iterator<Item = Hash>) -> Result<()> {
        if !self.packs.exist() {
            return Ok(());
        }
        let mut hashes: Vec<Hash> = hashes.collect();
        hashes.par_sort_unstable();
        hashes.dedup();
        self.packs.hint(&hashes)
    }

    pub fn unhint_reads(&self) {
        self.packs.unhint();
    }

    /// The error for the object `hash` of `path` missing from this cache.
    pub fn missing(&self, hash: Hash, path: impl AsRef<Path>) -> Error {
        Error::MissingObject {
            hash,
            path: path.as_ref().to_path_buf(),
            cache: self.dir.clone(),
            remote: self.default_remote.clone(),
        }
    }

    /// The error for the object `hash` of `path` found corrupt.
    pub fn corrupt(&self, hash: Hash, path: impl AsRef<Path>) -> Error {
        Error::CorruptObject {
            hash,
            path: path.as_ref().to_path_buf(),
            cache: self.dir.clone(),
        }
    }

    /// The error for a workspace file found edited in place through its
    /// link to the object `hash` (which is then corrupt).
    pub fn edited_in_place(&self, hash: Hash, path: impl AsRef<Path>) -> Error {
        Error::EditedInPlace {
            hash,
            path: path.as_ref().to_path_buf(),
            cache: self.dir.clone(),
        }
    }

    /// The stat of the loose object `hash` (`bale pack` asks whether a
    /// workspace hard link uses it).
    pub fn loose_stat(&self, hash: Hash) -> Option<FileStat> {
        fs::metadata(self.loose_path(hash))
            .ok()
            .map(|m| FileStat::from_metadata(&m))
    }

    /// Reads the loose object `hash`, checked against its name; `None`
    /// when it is missing or corrupt (then set aside).
    pub fn read_loose(&self, hash: Hash) -> Result<Option<Vec<u8>>> {
        let path = self.loose_path(hash);
        match fs::read(&path) {
            Ok(b) if Hash::of_bytes(&b) == hash => Ok(Some(b)),
            Ok(_) => {
                self.set_aside(hash);
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Bar;

    #[test]
    fn missing_of_finds_loose_and_packed_objects_by_stat_or_by_listing() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("f");
        let mut loose = Vec::new();
        for i in 0..40 {
            fs::write(&src, format!("object {i}")).unwrap();
            loose.push(
                cache
                    .store_file(&src, StoreMode::Copy, &Bar::hidden())
                    .unwrap()
                    .0,
            );
        }
        let packed: Vec<Hash> = (0..5)
            .map(|i| Hash::of_bytes(format!("packed {i}").as_bytes()))
            .collect();
        {
            let mut w =
                pack::PackWriter::open(cache.packs(), std::time::Duration::from_secs(1)).unwrap();
            for (i, h) in packed.iter().enumerate() {
                let bytes = format!("packed {i}").into_bytes();
                w.add(pack::Record::encode(*h, bytes, true)).unwrap();
            }
            w.commit().unwrap();
        }
        // Gone: objects removed behind the cache's back, and never stored.
        let mut gone: Vec<Hash> = loose[..7].to_vec();
        for h in &gone {
            fs::remove_file(cache.loose_path(*h)).unwrap();
        }
        gone.extend((0..3).map(|i| Hash::of_bytes(format!("never {i}").as_bytes())));
        // A stray file in a fan-out folder is not an object.
        let stray = gone[8].to_string();
        fs::create_dir_all(cache.dir.join(&stray[..2])).unwrap();
        fs::write(
            cache
                .dir
                .join(&stray[..2])
                .join(format!("{}.tmp", &stray[2..])),
            "x",
        )
        .unwrap();
        let mut wanted: Vec<Hash> = loose
            .iter()
            .chain(&packed)
            .chain(&gone[7..])
            .copied()
            .collect();
        wanted.sort_unstable();
        gone.sort_unstable();
        for list_from in [0, 1, usize::MAX] {
            assert_eq!(
                cache.missing_of_listing_from(&wanted, list_from),
                gone,
                "{list_from}"
            );
        }
        assert!(cache.missing_of(&[]).is_empty());
    }
}

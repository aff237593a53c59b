//! The content-addressed object store. Callers ask it whether it holds an
//! object, for an object's content, or for a workspace file made from an
//! object; they never see where an object lives, so that another place
//! (packs) can serve objects without the callers changing.
//!
//! Loose objects are `<cache>/<2 hex>/<30 hex>`, written once through a temp
//! file in `<cache>/tmp/`, hashed on the way in, made read-only, and never
//! modified. Small objects may instead be packed (`pack.rs`); every method
//! here serves both, loose first. A hard link or symlink needs a loose file,
//! so a packed object is unpacked to loose when one is asked for. An object whose content no longer matches its name (someone
//! wrote through a hard link as root) is moved to `<cache>/corrupt/` when it
//! is found, so that it is never served again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, FileStat, LinkType, link_type::private_mode, stat::Compared, temp};
use crate::hash::{self, Hash};
use crate::manifest::Manifest;
use crate::progress::Bar;

pub mod pack;

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

/// How `store_file` copies a file into the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Share the extents (FICLONE), then hash the clone: the workspace file
    /// can be left in place as a private reflink.
    Reflink,
    /// Read once, hashing and writing the copy on the way.
    Copy,
}

/// Why reading an object failed.
enum ReadError {
    Corrupt,
    Io(Error),
}

/// An object being received: `Cache::incoming`, then `finish_incoming`.
pub struct Incoming {
    tmp: tempfile::NamedTempFile,
    hasher: xxhash_rust::xxh3::Xxh3,
    size: u64,
}

impl Incoming {
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        // Through the file: `NamedTempFile`'s own writes wrap an error with
        // its path, hiding the OS error (a full disk) from `Error::io`.
        self.tmp
            .as_file_mut()
            .write_all(bytes)
            .at("write", self.tmp.path())
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Why making a workspace file from an object failed.
#[derive(Debug)]
pub enum LinkError {
    /// The object is not in the cache.
    Missing,
    /// The object's content does not hash to its name (it was moved aside).
    Corrupt,
    Io(io::Error),
}

/// What `Cache::remove` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Removed {
    /// Bytes of the loose files deleted.
    pub loose_bytes: u64,
    /// Bytes of the packed objects dropped from the index: freed on disk
    /// only when their packs are rewritten.
    pub packed_bytes: u64,
    pub packs_rewritten: usize,
    /// Bytes the rewritten packs gave back.
    pub pack_bytes_freed: u64,
}

impl Removed {
    /// What the disk got back.
    pub fn freed(&self) -> u64 {
        self.loose_bytes + self.pack_bytes_freed
    }
}

/// What `adopt_file` did.
#[derive(Debug)]
pub enum Adopted {
    /// The file is now the object; `stat` is its stat after that.
    Linked {
        hash: Hash,
        size: u64,
        stat: FileStat,
    },
    /// An object with this content was already there; the file is untouched.
    Exists { hash: Hash, size: u64 },
    /// The file changed while it was read, has other hard links, or cannot
    /// be linked into the cache (another file system): store a copy instead.
    Changed,
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

    /// Starts receiving an object whose content arrives in pieces (a
    /// download): written to a temp file and hashed on the way.
    pub fn incoming(&self) -> Result<Incoming> {
        Ok(Incoming {
            tmp: self.create_temp()?,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            size: 0,
        })
    }

    /// Stores a received object as `want`, if it hashes to that name;
    /// `Ok(false)` when it does not (nothing is stored).
    pub fn finish_incoming(&self, mut inc: Incoming, want: Hash) -> Result<bool> {
        inc.tmp.flush().at("write", inc.tmp.path())?;
        if Hash(inc.hasher.digest128()) != want {
            return Ok(false);
        }
        self.publish(inc.tmp, want)?;
        Ok(true)
    }

    /// Whether the file stat'ed as `file` is a hard link of the object.
    pub fn is_hardlink_of(&self, hash: Hash, file: &FileStat) -> bool {
        file.nlink > 1
            && fs::metadata(self.loose_path(hash))
                .is_ok_and(|m| m.ino() == file.ino && m.dev() == file.dev)
    }

    /// Creates the cache folders (idempotent).
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.tmp).at("create the cache folder", &self.tmp)
    }

    fn create_temp(&self) -> Result<tempfile::NamedTempFile> {
        match temp::create_in(&self.tmp) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create()?;
                temp::create_in(&self.tmp).at("create a file in the cache", &self.tmp)
            }
            Err(e) => Err(Error::io("create a file in the cache", &self.tmp, e)),
        }
    }

    /// Stores the content of `src`, hashing it on the way in. Returns its
    /// hash, its size, and whether the object is new (false: an equal object
    /// was already there and was kept). With `StoreMode::Reflink`, an `Err`
    /// whose io error is "unsupported" means: fall back to `StoreMode::Copy`.
    pub fn store_file(&self, src: &Path, mode: StoreMode, bar: &Bar) -> Result<(Hash, u64, bool)> {
        let input = File::open(src).at("read", src)?;
        let tmp = self.create_temp()?;
        let (hash, size) = match mode {
            StoreMode::Copy => {
                hash::with_buffer(|buf| hash::copy_hashing(bar.reading(&input), tmp.as_file(), buf))
                    .map_err(|e| match e {
                        hash::CopyError::Read(e) => Error::io("read", src, e),
                        hash::CopyError::Write(e) => Error::io("write", tmp.path(), e),
                    })?
            }
            StoreMode::Reflink => {
                reflink_copy::reflink_file(&input, tmp.as_file()).at("reflink", src)?;
                let clone = File::open(tmp.path()).at("read", tmp.path())?;
                hash::with_buffer(|buf| hash::hash_reader(bar.reading(&clone), buf))
                    .at("read", tmp.path())?
            }
        };
        let fresh = self.publish(tmp, hash)?;
        Ok((hash, size, fresh))
    }

    /// Makes the file at `src` itself the object, for link types that share
    /// the object anyway (hardlink, symlink): no byte is copied. The file is
    /// hashed through an open descriptor; if its stat moved meanwhile it was
    /// being written, and `Adopted::Changed` says to copy it instead (as for
    /// a file with other hard links). Else it is made read-only and that very
    /// inode is linked in under its hash.
    pub fn adopt_file(&self, src: &Path, bar: &Bar) -> Result<Adopted> {
        let f = File::open(src).at("read", src)?;
        let before = FileStat::from_metadata(&f.metadata().at("read", src)?);
        let (hash, size) =
            hash::with_buffer(|buf| hash::hash_reader(bar.reading(&f), buf)).at("read", src)?;
        let after = FileStat::from_metadata(&f.metadata().at("read", src)?);
        if fsutil::stat::compare(&before, &after, i64::MAX) != Compared::Identical
            || after.kind != fsutil::Kind::File
        {
            return Ok(Adopted::Changed);
        }
        if self.contains(hash) {
            return Ok(Adopted::Exists { hash, size });
        }
        // A file with other hard links (outside the out, or an object of
        // this cache edited in place) is not taken over: an edit through
        // another of its names would change the object. It is copied.
        if after.nlink > 1 {
            return Ok(Adopted::Changed);
        }
        let original = fs::Permissions::from_mode(after.mode);
        f.set_permissions(fs::Permissions::from_mode(OBJECT_MODE))
            .at("make read-only", src)?;
        let dest = self.loose_path(hash);
        match link_into(&dest, |d| link_fd(&f, d))? {
            Ok(()) => {
                let stat = FileStat::from_metadata(&f.metadata().at("read", src)?);
                Ok(Adopted::Linked { hash, size, stat })
            }
            Err(e) => {
                let _ = f.set_permissions(original);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ok(Adopted::Exists { hash, size })
                } else if fsutil::is_unsupported(&e) || e.kind() == io::ErrorKind::NotFound {
                    Ok(Adopted::Changed)
                } else {
                    Err(Error::io("store into the cache", &dest, e))
                }
            }
        }
    }

    /// Stores what `r` yields, hashing it on the way in, unless an equal
    /// object is in the cache already. Returns its hash, size and whether it
    /// is new; the inner error is a read error of `r` (nothing is stored).
    pub fn store_reader(&self, r: &mut dyn io::Read) -> Result<io::Result<(Hash, u64, bool)>> {
        let tmp = self.create_temp()?;
        let (hash, size) = match hash::with_buffer(|buf| hash::copy_hashing(r, tmp.as_file(), buf))
        {
            Ok(x) => x,
            Err(hash::CopyError::Read(e)) => return Ok(Err(e)),
            Err(hash::CopyError::Write(e)) => return Err(Error::io("write", tmp.path(), e)),
        };
        if self.contains(hash) {
            return Ok(Ok((hash, size, false)));
        }
        let fresh = self.publish(tmp, hash)?;
        Ok(Ok((hash, size, fresh)))
    }

    /// Stores `bytes`, whose hash is `hash`, as a loose object unless the
    /// cache holds it already; returns whether it is new.
    pub fn store_new(&self, bytes: &[u8], hash: Hash) -> Result<bool> {
        if self.contains(hash) {
            return Ok(false);
        }
        let mut tmp = self.create_temp()?;
        // Through the file, so that a full disk is told as one (`Incoming`).
        tmp.as_file_mut().write_all(bytes).at("write", tmp.path())?;
        self.publish(tmp, hash)
    }

    /// Stores a manifest, encoded straight into its temp file, and returns
    /// its hash.
    pub fn store_manifest(&self, m: &Manifest) -> Result<Hash> {
        let tmp = self.create_temp()?;
        let mut w = hash::HashingWriter::new(io::BufWriter::with_capacity(1 << 20, tmp.as_file()));
        m.write_to(&mut w)
            .and_then(|()| w.flush())
            .at("write", tmp.path())?;
        let (hash, _) = w.finish();
        if !self.contains(hash) {
            self.publish(tmp, hash)?;
        }
        Ok(hash)
    }

    /// Makes the temp file `tmp` the object `hash`: read-only, then linked
    /// in under its name. If the object is already there, it is kept (its
    /// inode may be linked from workspaces), the temp file is dropped, and
    /// the result is false.
    fn publish(&self, tmp: tempfile::NamedTempFile, hash: Hash) -> Result<bool> {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(OBJECT_MODE))
            .at("make read-only", tmp.path())?;
        let dest = self.loose_path(hash);
        match link_into(&dest, |d| fs::hard_link(tmp.path(), d))? {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // A file system without hard links: a rename still publishes
            // atomically (replacing an equal object at worst).
            Err(e) if fsutil::is_unsupported(&e) => {
                tmp.persist(&dest)
                    .map_err(|e| Error::io("store into the cache", &dest, e.error))?;
                Ok(true)
            }
            Err(e) => Err(Error::io("store into the cache", &dest, e)),
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

    /// Makes `dest` (which must not exist) from the object `hash` of `size`
    /// bytes with link type `t`. A copy is verified by its hash on the way; a
    /// symlink, which would dangle silently, by the object's presence and
    /// size. A hard link or reflink shares the object's blocks and is checked
    /// by its size once placed. Returns the type made: a reflink of a packed
    /// object is a copy.
    pub fn link(
        &self,
        t: LinkType,
        hash: Hash,
        size: u64,
        dest: &Path,
        executable: bool,
    ) -> Result<LinkType, LinkError> {
        // An object a checkout's run of reads found packed (`hint_reads`)
        // is copied from its pack without a look for a loose one first.
        let packed_first =
            matches!(t, LinkType::Copy | LinkType::Reflink) && self.packs.is_hinted(hash);
        if !packed_first {
            match self.link_loose(t, hash, size, dest, executable) {
                Err(LinkError::Missing) => {}
                // The loose copy was set aside; a packed one may be sound.
                Err(LinkError::Corrupt) if matches!(self.packs.locate(hash), Ok(Some(_))) => {}
                other => return other.map(|()| t),
            }
        }
        match t {
            LinkType::Hardlink | LinkType::Symlink => {
                self.unpack(hash)?;
                self.link_loose(t, hash, size, dest, executable).map(|()| t)
            }
            // A packed record shares no blocks with a file: a reflink of it
            // is a copy, private and writable as a reflink is.
            LinkType::Copy | LinkType::Reflink => {
                let bytes = match self.packed_bytes(hash) {
                    Ok(b) => b,
                    // The record failed its check (and left the index): a
                    // loose copy, if there is one, may be sound.
                    Err(e) if packed_first => {
                        return match self.link_loose(t, hash, size, dest, executable) {
                            Err(LinkError::Missing) => Err(e),
                            other => other.map(|()| t),
                        };
                    }
                    Err(e) => return Err(e),
                };
                if bytes.len() as u64 != size {
                    return Err(LinkError::Corrupt);
                }
                let mut out = create_private(dest, executable).map_err(LinkError::Io)?;
                out.write_all(&bytes).map_err(LinkError::Io)?;
                Ok(LinkType::Copy)
            }
        }
    }

    /// `link` from the loose object; `LinkError::Missing` when there is none.
    fn link_loose(
        &self,
        t: LinkType,
        hash: Hash,
        size: u64,
        dest: &Path,
        executable: bool,
    ) -> Result<(), LinkError> {
        let object = self.loose_path(hash);
        let missing = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound && !object.exists() {
                LinkError::Missing
            } else {
                LinkError::Io(e)
            }
        };
        match t {
            LinkType::Hardlink => fs::hard_link(&object, dest).map_err(missing),
            LinkType::Symlink => {
                if fs::metadata(&object).map_err(missing)?.len() != size {
                    return Err(LinkError::Corrupt);
                }
                std::os::unix::fs::symlink(&object, dest).map_err(LinkError::Io)
            }
            LinkType::Reflink => {
                let src = File::open(&object).map_err(missing)?;
                let out = create_private(dest, executable).map_err(LinkError::Io)?;
                reflink_copy::reflink_file(&src, &out).map_err(LinkError::Io)
            }
            LinkType::Copy => {
                let src = File::open(&object).map_err(missing)?;
                let out = create_private(dest, executable).map_err(LinkError::Io)?;
                let (got, _) = hash::with_buffer(|buf| hash::copy_hashing(&src, &out, buf))
                    .map_err(|e| LinkError::Io(e.into_inner()))?;
                if got != hash {
                    drop(out);
                    let _ = fs::remove_file(dest);
                    self.set_aside(hash);
                    return Err(LinkError::Corrupt);
                }
                Ok(())
            }
        }
    }

    /// Re-hashes the object `hash`, loose and packed: `None` when it is not
    /// in the cache, `Some(false)` when a copy of it no longer matches its
    /// name (a loose one is then moved aside, a packed one dropped).
    pub fn verify(&self, hash: Hash) -> Result<Option<bool>> {
        let path = self.loose_path(hash);
        let loose = match File::open(&path) {
            Ok(f) => {
                let (got, _) =
                    hash::with_buffer(|buf| hash::hash_reader(&f, buf)).at("read", &path)?;
                if got != hash {
                    self.set_aside(hash);
                }
                Some(got == hash)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let packed = match self.packs.read(hash)? {
            pack::Found::Bytes(_) => Some(true),
            pack::Found::Missing => None,
            pack::Found::Corrupt => Some(false),
        };
        Ok(match (loose, packed) {
            (None, None) => None,
            (Some(a), Some(b)) => Some(a && b),
            (Some(a), None) | (None, Some(a)) => Some(a),
        })
    }

    /// Moves a corrupt loose object out of its name into `<cache>/corrupt/`,
    /// so that it is never served again (and can still be looked at). Best
    /// effort: the caller reports the corruption either way. (A packed copy
    /// is checked, and dropped when corrupt, whenever it is read.)
    pub fn set_aside(&self, hash: Hash) {
        let corrupt = self.dir.join("corrupt");
        let _ = fs::create_dir_all(&corrupt);
        let _ = fs::rename(self.loose_path(hash), corrupt.join(hash.to_string()));
    }

    /// The damaged pack records the cache remembers and the user has not
    /// dealt with yet (`Packs::damage`).
    pub fn pack_damage(&self) -> Result<Vec<pack::Damage>> {
        self.packs.damage(|h| self.loose_path(h).is_file())
    }

    /// Every object in the cache, loose or packed, sorted.
    pub fn list(&self) -> Result<Vec<Hash>> {
        let mut out = self.list_loose()?;
        out.extend(self.packs.list()?.into_iter().map(|(h, _)| h));
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Whether any loose object may be in the cache (an object folder
    /// exists); cheap: one folder read, stopped at the first match.
    pub fn has_loose_objects(&self) -> bool {
        fs::read_dir(&self.dir).is_ok_and(|r| {
            r.flatten()
                .any(|e| e.file_name().len() == 2 && e.file_type().is_ok_and(|t| t.is_dir()))
        })
    }

    /// Every loose object.
    pub fn list_loose(&self) -> Result<Vec<Hash>> {
        let mut out = Vec::new();
        let top = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read the cache folder", &self.dir, e)),
        };
        for prefix in top {
            let prefix = prefix.at("read the cache folder", &self.dir)?;
            let name = prefix.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 2 || !prefix.path().is_dir() {
                continue;
            }
            for obj in fs::read_dir(prefix.path()).at("read the cache folder", &prefix.path())? {
                let obj = obj.at("read the cache folder", &prefix.path())?;
                if let Some(hash) = self.hash_of_loose_path(&obj.path()) {
                    out.push(hash);
                }
            }
        }
        Ok(out)
    }

    /// Deletes the loose object `hash`; returns the bytes it held.
    pub fn remove_loose(&self, hash: Hash) -> Result<u64> {
        let path = self.loose_path(hash);
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("delete", path, e)),
        }
    }

    /// Deletes the objects: loose files at once, packed ones from the index
    /// under the cache lock (waiting up to `wait`), after which packs left
    /// mostly dead are rewritten. Says what that freed on disk.
    pub fn remove(&self, hashes: &[Hash], wait: std::time::Duration) -> Result<Removed> {
        let mut r = Removed::default();
        let mut packed = Vec::new();
        for &h in hashes {
            r.loose_bytes += self.remove_loose(h)?;
            if let Some(l) = self.packs.locate(h)? {
                r.packed_bytes += l.size;
                packed.push(h);
            }
        }
        if !self.packs.dir().join("index.db").exists() {
            return Ok(r);
        }
        let mut w = pack::PackWriter::open(&self.packs, wait)?;
        w.forget(&packed)?;
        (r.packs_rewritten, r.pack_bytes_freed) = w.rewrite_sparse()?;
        Ok(r)
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

    /// Removes the object folders (`<2 hex>/`) left empty, best effort.
    pub fn remove_empty_folders(&self) {
        if let Ok(r) = fs::read_dir(&self.dir) {
            for e in r.flatten() {
                if e.file_name().len() == 2 && e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
    }

    /// Removes the temp files left by killed processes. Only for a caller
    /// that knows no other writer uses the cache now.
    pub fn remove_temp_files(&self) {
        if let Ok(r) = fs::read_dir(&self.tmp) {
            for e in r.flatten() {
                if e.file_name().to_str().is_some_and(temp::is_temp_shape) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Runs `link` to make `dest`; when the object's prefix folder does not
/// exist yet (it is made on first use), creates it and runs `link` again.
/// The outer error is the folder's, the inner one the link's.
fn link_into(dest: &Path, link: impl Fn(&Path) -> io::Result<()>) -> Result<io::Result<()>> {
    match link(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).at("create the cache folder", parent)?;
            }
            Ok(link(dest))
        }
        other => Ok(other),
    }
}

/// Links the open file `f` at `dest` (the inode that was read, whatever
/// happened to its path meanwhile), through /proc's view of the descriptor.
fn link_fd(f: &File, dest: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let from =
        CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).map_err(io::Error::other)?;
    let to = CString::new(dest.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both arguments are valid NUL-terminated paths that outlive the
    // call; linkat does not keep them.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates the private (copy or reflink) file `dest`, which must not exist,
/// with exactly the mode of its executable bit.
pub fn create_private(dest: &Path, executable: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(private_mode(executable))
        .open(dest)?;
    // The umask may have taken bits away; a private file gets exactly these.
    // (When it takes none of them, the mode is right already: a checkout of
    // 10^5 files makes 10^5 fewer metadata changes.)
    let mode = private_mode(executable);
    if crate::fsutil::umask().is_none_or(|u| u & mode != 0) {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_read_only_objects_under_their_hash_once() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("f");
        fs::write(&src, "hello").unwrap();
        let (h, size, fresh) = cache
            .store_file(&src, StoreMode::Copy, &Bar::hidden())
            .unwrap();
        assert!(fresh);
        assert_eq!(h, Hash::of_bytes(b"hello"));
        assert_eq!(size, 5);
        let obj = cache.loose_path(h);
        assert_eq!(fs::read(&obj).unwrap(), b"hello");
        let mode = fs::metadata(&obj).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, OBJECT_MODE);
        let ino = fs::metadata(&obj).unwrap().ino();
        assert!(
            !cache
                .store_file(&src, StoreMode::Copy, &Bar::hidden())
                .unwrap()
                .2
        );
        assert_eq!(
            fs::metadata(&obj).unwrap().ino(),
            ino,
            "an existing object is kept, not replaced"
        );
        assert_eq!(cache.symlink_object(&obj), Some(h));
        assert_eq!(fs::read_dir(&cache.tmp).unwrap().count(), 0);
        assert_eq!(cache.list().unwrap(), vec![h]);
        assert_eq!(cache.verify(h).unwrap(), Some(true));
    }

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

    #[test]
    fn adopting_links_the_file_itself_read_only() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("f");
        fs::write(&src, "adopt me").unwrap();
        let Adopted::Linked { hash, size, stat } = cache.adopt_file(&src, &Bar::hidden()).unwrap()
        else {
            panic!("not linked");
        };
        assert_eq!((hash, size), (Hash::of_bytes(b"adopt me"), 8));
        let obj = fs::metadata(cache.loose_path(hash)).unwrap();
        let ws = fs::metadata(&src).unwrap();
        assert_eq!(obj.ino(), ws.ino());
        assert_eq!(obj.mode() & 0o777, OBJECT_MODE);
        assert_eq!(stat.ctime_ns, ws.ctime() * 1_000_000_000 + ws.ctime_nsec());
        assert!(cache.is_hardlink_of(hash, &FileStat::from_metadata(&ws)));
        let twin = t.path().join("g");
        fs::write(&twin, "adopt me").unwrap();
        let mode = fs::metadata(&twin).unwrap().mode();
        assert!(matches!(
            cache.adopt_file(&twin, &Bar::hidden()).unwrap(),
            Adopted::Exists { .. }
        ));
        assert_eq!(fs::metadata(&twin).unwrap().mode(), mode, "left untouched");
    }

    #[test]
    fn a_corrupt_object_is_reported_and_set_aside() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let h = Hash::of_bytes(b"bale-manifest 1\n");
        cache.store_new(b"bale-manifest 1\n", h).unwrap();
        assert!(cache.read_manifest(h, Path::new("d")).is_ok());
        let obj = cache.loose_path(h);
        fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&obj, "bale-manifest 1\nx").unwrap();
        assert!(matches!(
            cache.read_manifest(h, Path::new("d")),
            Err(Error::CorruptObject { .. })
        ));
        assert!(!cache.contains(h), "a corrupt object is not served again");
        assert!(t.path().join("cache/corrupt").join(h.to_string()).is_file());
        assert!(matches!(
            cache.read_manifest(h, Path::new("d")),
            Err(Error::MissingObject { .. })
        ));
        assert_eq!(cache.verify(h).unwrap(), None);
    }

    #[test]
    fn a_copy_of_a_corrupt_object_is_refused_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("f");
        fs::write(&src, "right").unwrap();
        let (h, size, _) = cache
            .store_file(&src, StoreMode::Copy, &Bar::hidden())
            .unwrap();
        let obj = cache.loose_path(h);
        fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&obj, "wrong").unwrap();
        let dest = t.path().join("out");
        assert!(matches!(
            cache.link(LinkType::Copy, h, size, &dest, false),
            Err(LinkError::Corrupt)
        ));
        assert!(!dest.exists());
        assert!(matches!(
            cache.link(LinkType::Hardlink, h, size, &dest, false),
            Err(LinkError::Missing)
        ));
    }
}

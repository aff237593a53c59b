//! Putting objects in the cache: stored from a file (cloned or copied while
//! hashed), adopted (the file itself becomes the object), received in
//! pieces, and published under their name once hashed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, FileStat, stat::Compared, temp};
use crate::hash::{self, Hash};
use crate::manifest::Manifest;
use crate::progress::Bar;

use super::link::{link_fd, link_into};
use super::{Cache, OBJECT_MODE};

/// How `store_file` copies a file into the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Share the extents (FICLONE), then hash the clone: the workspace file
    /// can be left in place as a private reflink.
    Reflink,
    /// Read once, hashing and writing the copy on the way.
    Copy,
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

    /// Creates the cache folders (idempotent).
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.tmp).at("create the cache folder", &self.tmp)
    }

    pub(super) fn create_temp(&self) -> Result<tempfile::NamedTempFile> {
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
    pub(super) fn publish(&self, tmp: tempfile::NamedTempFile, hash: Hash) -> Result<bool> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
}

//! The content-addressed object store: `<cache>/<2 hex>/<30 hex>`, objects
//! written once through a temp file in `<cache>/tmp/`, hashed on the way in,
//! made read-only, and never modified.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::hash::{self, Hash};
use crate::manifest::Manifest;

/// Mode of every cache object: read-only for everyone.
pub const OBJECT_MODE: u32 = 0o444;

#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    tmp: PathBuf,
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

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        let tmp = dir.join("tmp");
        Cache { dir, tmp }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn object_path(&self, hash: Hash) -> PathBuf {
        let hex = hash.to_string();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The hash named by a cache object path, when `path` is one.
    pub fn hash_of_object_path(&self, path: &Path) -> Option<Hash> {
        let rest = path.strip_prefix(&self.dir).ok()?;
        let mut parts = rest.iter();
        let (a, b) = (parts.next()?.to_str()?, parts.next()?.to_str()?);
        if parts.next().is_some() || a.len() != 2 {
            return None;
        }
        format!("{a}{b}").parse().ok()
    }

    pub fn contains(&self, hash: Hash) -> bool {
        self.object_path(hash).is_file()
    }

    /// Creates the cache folders (idempotent).
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.tmp).at("create the cache folder", &self.tmp)
    }

    fn temp_path(&self) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}.{n}", std::process::id()))
    }

    fn create_temp(&self) -> Result<(PathBuf, File)> {
        let path = self.temp_path();
        let open = |p: &Path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(p)
        };
        match open(&path) {
            Ok(f) => Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A leftover of a killed process with the same pid.
                let _ = fs::remove_file(&path);
                let f = open(&path).at("create a file in the cache", &path)?;
                Ok((path, f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create()?;
                let f = open(&path).at("create a file in the cache", &path)?;
                Ok((path, f))
            }
            Err(e) => Err(Error::io("create a file in the cache", &path, e)),
        }
    }

    /// Stores the content of `src`, hashing it on the way in. Returns its
    /// hash, its size, and whether the object is new (false: an equal object
    /// was already there and was kept). With `StoreMode::Reflink`, an `Err`
    /// whose io error is "unsupported" means: fall back to `StoreMode::Copy`.
    pub fn store_file(&self, src: &Path, mode: StoreMode) -> Result<(Hash, u64, bool)> {
        let input = File::open(src).at("read", src)?;
        let (tmp, out) = self.create_temp()?;
        let result = (|| -> Result<(Hash, u64, bool)> {
            let (hash, size) = match mode {
                StoreMode::Copy => hash::with_buffer(|buf| hash::copy_hashing(&input, &out, buf))
                    .at("read", src)?,
                StoreMode::Reflink => {
                    reflink_copy::reflink_file(&input, &out).at("reflink", src)?;
                    let clone = File::open(&tmp).at("read", &tmp)?;
                    hash::with_buffer(|buf| hash::hash_reader(&clone, buf)).at("read", &tmp)?
                }
            };
            drop(out);
            let fresh = self.publish(&tmp, hash)?;
            Ok((hash, size, fresh))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Makes the file at `src` itself the object, for link types that share
    /// the object anyway (hardlink, symlink): no byte is copied. The file is
    /// hashed through an open descriptor; if its stat moved meanwhile it was
    /// being written, and `Adopted::Changed` says to copy it instead. Else it
    /// is made read-only and that very inode is linked in under its hash.
    pub fn adopt_file(&self, src: &Path) -> Result<Adopted> {
        let f = File::open(src).at("read", src)?;
        let before = f.metadata().at("read", src)?;
        let (hash, size) = hash::with_buffer(|buf| hash::hash_reader(&f, buf)).at("read", src)?;
        let after = f.metadata().at("read", src)?;
        let same = |a: &fs::Metadata, b: &fs::Metadata| {
            use std::os::unix::fs::MetadataExt;
            (
                a.size(),
                a.mtime(),
                a.mtime_nsec(),
                a.ctime(),
                a.ctime_nsec(),
            ) == (
                b.size(),
                b.mtime(),
                b.mtime_nsec(),
                b.ctime(),
                b.ctime_nsec(),
            )
        };
        if !same(&before, &after) || !after.is_file() {
            return Ok(Adopted::Changed);
        }
        if self.contains(hash) {
            return Ok(Adopted::Exists { hash, size });
        }
        let original = after.permissions();
        f.set_permissions(fs::Permissions::from_mode(OBJECT_MODE))
            .at("make read-only", src)?;
        let dest = self.object_path(hash);
        match link_into(&dest, |d| link_fd(&f, d))? {
            Ok(()) => {
                let stat = f.metadata().at("read", src)?;
                Ok(Adopted::Linked {
                    hash,
                    size,
                    stat: crate::workspace::stat::FileStat::from_metadata(&stat),
                })
            }
            Err(e) => {
                let _ = f.set_permissions(original);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ok(Adopted::Exists { hash, size })
                } else if crate::workspace::link::is_unsupported(&e)
                    || e.kind() == io::ErrorKind::NotFound
                {
                    Ok(Adopted::Changed)
                } else {
                    Err(Error::io("store into the cache", &dest, e))
                }
            }
        }
    }

    /// Stores `bytes` (a manifest) and returns their hash.
    pub fn store_bytes(&self, bytes: &[u8]) -> Result<Hash> {
        let hash = Hash::of_bytes(bytes);
        if self.contains(hash) {
            return Ok(hash);
        }
        let (tmp, mut out) = self.create_temp()?;
        if let Err(e) = out.write_all(bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write", &tmp, e));
        }
        drop(out);
        self.publish(&tmp, hash)?;
        Ok(hash)
    }

    /// Makes the temp file at `tmp` the object `hash`: read-only, then linked
    /// in under its name. If the object is already there, it is kept (its
    /// inode may be linked from workspaces), the temp file is dropped, and
    /// the result is false.
    fn publish(&self, tmp: &Path, hash: Hash) -> Result<bool> {
        fs::set_permissions(tmp, fs::Permissions::from_mode(OBJECT_MODE))
            .at("make read-only", tmp)?;
        let dest = self.object_path(hash);
        let fresh = match link_into(&dest, |d| fs::hard_link(tmp, d))? {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            // A file system without hard links: a rename still publishes
            // atomically (replacing an equal object at worst).
            Err(e) if crate::workspace::link::is_unsupported(&e) => {
                fs::rename(tmp, &dest).at("store into the cache", &dest)?;
                return Ok(true);
            }
            Err(e) => return Err(Error::io("store into the cache", &dest, e)),
        };
        let _ = fs::remove_file(tmp);
        Ok(fresh)
    }

    /// Reads and checks the manifest object `hash`.
    pub fn read_manifest(&self, hash: Hash, out: &Path) -> Result<Manifest> {
        let path = self.object_path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingObject {
                    hash,
                    path: out.to_path_buf(),
                    object: path,
                });
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        if Hash::of_bytes(&bytes) != hash {
            return Err(Error::CorruptObject {
                hash,
                path: out.to_path_buf(),
                object: path,
            });
        }
        Manifest::decode(&bytes, hash)
    }

    /// Every object in the cache, as (hash, path).
    pub fn list_objects(&self) -> Result<Vec<(Hash, PathBuf)>> {
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
                if let Some(hash) = self.hash_of_object_path(&obj.path()) {
                    out.push((hash, obj.path()));
                }
            }
        }
        Ok(out)
    }

    /// Temp files left by killed processes.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        fs::read_dir(&self.tmp)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

/// What `adopt_file` did.
#[derive(Debug)]
pub enum Adopted {
    /// The file is now the object; `stat` is its stat after that.
    Linked {
        hash: Hash,
        size: u64,
        stat: crate::workspace::stat::FileStat,
    },
    /// An object with this content was already there; the file is untouched.
    Exists { hash: Hash, size: u64 },
    /// The file changed while it was read, or cannot be linked into the
    /// cache (another file system): store a copy instead.
    Changed,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_read_only_objects_under_their_hash_once() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("f");
        fs::write(&src, "hello").unwrap();
        let (h, size, fresh) = cache.store_file(&src, StoreMode::Copy).unwrap();
        assert!(fresh);
        assert_eq!(h, Hash::of_bytes(b"hello"));
        assert_eq!(size, 5);
        let obj = cache.object_path(h);
        assert_eq!(fs::read(&obj).unwrap(), b"hello");
        let mode = fs::metadata(&obj).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, OBJECT_MODE);
        let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&obj).unwrap());
        assert!(!cache.store_file(&src, StoreMode::Copy).unwrap().2);
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&obj).unwrap()),
            ino,
            "an existing object is kept, not replaced"
        );
        assert_eq!(cache.hash_of_object_path(&obj), Some(h));
        assert!(cache.temp_files().is_empty());
        assert_eq!(cache.list_objects().unwrap(), vec![(h, obj)]);
    }

    #[test]
    fn adopting_links_the_file_itself_read_only() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("f");
        fs::write(&src, "adopt me").unwrap();
        let Adopted::Linked { hash, size, stat } = cache.adopt_file(&src).unwrap() else {
            panic!("not linked");
        };
        assert_eq!((hash, size), (Hash::of_bytes(b"adopt me"), 8));
        let obj = fs::metadata(cache.object_path(hash)).unwrap();
        let ws = fs::metadata(&src).unwrap();
        assert_eq!(obj.ino(), ws.ino());
        assert_eq!(obj.mode() & 0o777, OBJECT_MODE);
        assert_eq!(stat.ctime_ns, ws.ctime() * 1_000_000_000 + ws.ctime_nsec());
        let twin = t.path().join("g");
        fs::write(&twin, "adopt me").unwrap();
        let mode = fs::metadata(&twin).unwrap().mode();
        assert!(matches!(
            cache.adopt_file(&twin).unwrap(),
            Adopted::Exists { .. }
        ));
        assert_eq!(fs::metadata(&twin).unwrap().mode(), mode, "left untouched");
    }

    #[test]
    fn a_corrupt_manifest_is_reported() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let h = cache.store_bytes(b"bale-manifest 1\n").unwrap();
        assert!(cache.read_manifest(h, Path::new("d")).is_ok());
        let obj = cache.object_path(h);
        fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&obj, "bale-manifest 1\nx").unwrap();
        assert!(matches!(
            cache.read_manifest(h, Path::new("d")),
            Err(Error::CorruptObject { .. })
        ));
        fs::remove_file(&obj).unwrap();
        assert!(matches!(
            cache.read_manifest(h, Path::new("d")),
            Err(Error::MissingObject { .. })
        ));
    }
}

//! Making a workspace file from an object, loose or packed, with a link
//! type: a hard link or symlink needs a loose file, a copy or reflink does
//! not.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::fsutil::{FileStat, LinkType, link_type::private_mode};
use crate::hash::{self, Hash};

use super::Cache;

/// Why making a workspace file from an object failed.
#[derive(Debug)]
pub enum LinkError {
    /// The object is not in the cache.
    Missing,
    /// The object's content does not hash to its name (it was moved aside).
    Corrupt,
    Io(io::Error),
}

/// What `Cache::link` made.
#[derive(Clone, Copy, Debug)]
pub struct Made {
    pub link_type: LinkType,
    /// For a symlink, the stat of the object it points to, taken when the
    /// object was checked just before the link was made: the placed file's
    /// content stat, with no second `stat` through the new link.
    pub target: Option<FileStat>,
}

impl Made {
    fn of(link_type: LinkType, target: Option<FileStat>) -> Made {
        Made { link_type, target }
    }
}

impl Cache {
    /// Whether the file stat'ed as `file` is a hard link of the object.
    pub fn is_hardlink_of(&self, hash: Hash, file: &FileStat) -> bool {
        file.nlink > 1
            && fs::metadata(self.loose_path(hash))
                .is_ok_and(|m| m.ino() == file.ino && m.dev() == file.dev)
    }

    /// Makes `dest` (which must not exist) from the object `hash` of `size`
    /// bytes with link type `t`. A copy is verified by its hash on the way; a
    /// symlink, which would dangle silently, by the object's presence and
    /// size. A hard link or reflink shares the object's blocks and is checked
    /// by its size once placed. Returns the type made (a reflink of a packed
    /// object is a copy) and, for a symlink, the object's stat.
    pub fn link(
        &self,
        t: LinkType,
        hash: Hash,
        size: u64,
        dest: &Path,
        executable: bool,
    ) -> Result<Made, LinkError> {
        // An object a checkout's run of reads found packed (`hint_reads`)
        // is copied from its pack without a look for a loose one first.
        let packed_first =
            matches!(t, LinkType::Copy | LinkType::Reflink) && self.packs.is_hinted(hash);
        if !packed_first {
            match self.link_loose(t, hash, size, dest, executable) {
                Err(LinkError::Missing) => {}
                // The loose copy was set aside; a packed one may be sound.
                Err(LinkError::Corrupt) if matches!(self.packs.locate(hash), Ok(Some(_))) => {}
                other => return other.map(|target| Made::of(t, target)),
            }
        }
        match t {
            LinkType::Hardlink | LinkType::Symlink => {
                self.unpack(hash)?;
                self.link_loose(t, hash, size, dest, executable)
                    .map(|target| Made::of(t, target))
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
                            other => other.map(|target| Made::of(t, target)),
                        };
                    }
                    Err(e) => return Err(e),
                };
                if bytes.len() as u64 != size {
                    return Err(LinkError::Corrupt);
                }
                let mut out = create_private(dest, executable).map_err(LinkError::Io)?;
                out.write_all(&bytes).map_err(LinkError::Io)?;
                Ok(Made::of(LinkType::Copy, None))
            }
        }
    }

    /// `link` from the loose object; `LinkError::Missing` when there is none.
    /// For a symlink, returns the object's stat.
    fn link_loose(
        &self,
        t: LinkType,
        hash: Hash,
        size: u64,
        dest: &Path,
        executable: bool,
    ) -> Result<Option<FileStat>, LinkError> {
        let object = self.loose_path(hash);
        let missing = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound && !object.exists() {
                LinkError::Missing
            } else {
                LinkError::Io(e)
            }
        };
        match t {
            LinkType::Hardlink => fs::hard_link(&object, dest).map_err(missing).map(|()| None),
            LinkType::Symlink => {
                let target = FileStat::from_metadata(&fs::metadata(&object).map_err(missing)?);
                if target.size != size {
                    return Err(LinkError::Corrupt);
                }
                std::os::unix::fs::symlink(&object, dest).map_err(LinkError::Io)?;
                Ok(Some(target))
            }
            LinkType::Reflink => {
                let src = File::open(&object).map_err(missing)?;
                let out = create_private(dest, executable).map_err(LinkError::Io)?;
                reflink_copy::reflink_file(&src, &out).map_err(LinkError::Io)?;
                Ok(None)
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
                Ok(None)
            }
        }
    }
}

/// Runs `link` to make `dest`; when the object's prefix folder does not
/// exist yet (it is made on first use), creates it and runs `link` again.
/// The outer error is the folder's, the inner one the link's.
pub(super) fn link_into(
    dest: &Path,
    link: impl Fn(&Path) -> io::Result<()>,
) -> Result<io::Result<()>> {
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
pub(super) fn link_fd(f: &File, dest: &Path) -> io::Result<()> {
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
    use super::super::StoreMode;
    use super::*;
    use crate::progress::Bar;

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

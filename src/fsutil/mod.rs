//! File-system primitives that every other module builds on: the stat bale
//! compares, the link-type names, telling "not supported here" from a real
//! error, bale's one temp-name scheme, and atomic file replacement. A leaf:
//! nothing here knows of caches, outs or workspaces.

pub mod link_type;
pub mod lock;
pub mod sqlite;
pub mod stat;
pub mod temp;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub use link_type::LinkType;
pub use stat::{FileStat, Kind};

use crate::error::{Error, IoContext, Result};

/// Whether an error means "this way of making a file does not work here"
/// (another file system, no reflinks, no hard links) rather than a real
/// failure that a fallback must not hide.
pub fn is_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(
            libc::EXDEV
                | libc::EOPNOTSUPP
                | libc::EPERM
                | libc::EINVAL
                | libc::ENOSYS
                | libc::ENOTTY
                | libc::EMLINK
        )
    )
}

/// The process's umask, read once from /proc/self/status (reading it with
/// umask(2) would set it, for a moment, for every thread); `None` where it
/// cannot be read.
pub fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// Whether an error means the file system is full (or the quota used up).
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The most bytes a file name may have on the file system that holds
/// `path` (or, when it does not exist yet, its nearest existing folder):
/// `pathconf(_PC_NAME_MAX)`, 255 (Linux's NAME_MAX) when it cannot be told.
pub fn name_max(path: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    const FALLBACK: usize = 255;
    let Some(existing) = path.ancestors().find(|a| a.symlink_metadata().is_ok()) else {
        return FALLBACK;
    };
    let Ok(c) = std::ffi::CString::new(existing.as_os_str().as_bytes()) else {
        return FALLBACK;
    };
    // SAFETY: `c` is a NUL-terminated path; pathconf only reads it.
    let n = unsafe { libc::pathconf(c.as_ptr(), libc::_PC_NAME_MAX) };
    usize::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK)
}

/// Replaces `path` with `bytes` atomically and durably: a reader sees the
/// old or the new file, never a part, and a crash right after leaves one of
/// the two. A new file gets mode 0644; a replaced one keeps its mode.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let mut tmp = temp::create_in(dir).at("create a file in", dir)?;
    // Through the file: `NamedTempFile`'s own writes wrap an error with its
    // path, hiding the OS error (a full disk) from `Error::io`.
    tmp.as_file_mut().write_all(bytes).at("write", tmp.path())?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .at("write", tmp.path())?;
    tmp.as_file().sync_all().at("write", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_errors_are_told_from_real_ones() {
        assert!(is_unsupported(&io::Error::from_raw_os_error(libc::EXDEV)));
        assert!(is_unsupported(&io::Error::from_raw_os_error(
            libc::EOPNOTSUPP
        )));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::EACCES)));
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
    }

    #[test]
    fn atomic_writes_keep_the_mode_and_leave_no_temp_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}

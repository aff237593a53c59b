//! What the state DB remembers of a file, and the one rule deciding whether
//! a file may be trusted as unchanged without reading it.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    File = 0,
    Dir = 1,
    Symlink = 2,
    /// Sockets, fifos, devices: never tracked.
    Other = 3,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink,
            3 => Kind::Other,
            _ => return None,
        })
    }
}

/// The stat fields bale compares. Times are nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    /// Not recorded in snapshots (0 there): only the bulk pass uses it.
    pub dev: u64,
    pub nlink: u64,
}

impl FileStat {
    pub fn from_metadata(m: &Metadata) -> FileStat {
        let ft = m.file_type();
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        FileStat {
            kind,
            mode: m.mode() & 0o7777,
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
            dev: m.dev(),
            nlink: m.nlink(),
        }
    }

    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// Whether a file whose stat was recorded as `recorded` at `snapshot_ns`
/// (a time read off the file system's own clock) may be trusted to still hold
/// the content recorded then, now that it stats as `current`.
///
/// Trusted only when type, size, mtime, ctime and inode are all unchanged
/// (ctime catches an edit whose mtime was put back) and the mtime is strictly
/// older than the snapshot: a file written in the same clock tick as the
/// snapshot could have changed after it without moving its mtime (git's
/// "racy git" rule). Permission bits are compared by the callers that care
/// about them; content does not depend on them. The link count is not
/// compared: linking a cache object elsewhere changes it, not the content.
pub fn is_unchanged(recorded: &FileStat, current: &FileStat, snapshot_ns: i64) -> bool {
    recorded.kind == current.kind
        && recorded.size == current.size
        && recorded.mtime_ns == current.mtime_ns
        && recorded.ctime_ns == current.ctime_ns
        && recorded.ino == current.ino
        && current.mtime_ns < snapshot_ns
}

/// Whether `current` is exactly what was recorded (the unchanged-out skip):
/// [`is_unchanged`] and the same permission bits.
pub fn is_identical(recorded: &FileStat, current: &FileStat, snapshot_ns: i64) -> bool {
    recorded.mode == current.mode && is_unchanged(recorded, current, snapshot_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat() -> FileStat {
        FileStat {
            kind: Kind::File,
            mode: 0o644,
            size: 10,
            mtime_ns: 1_000,
            ctime_ns: 1_000,
            ino: 7,
            dev: 1,
            nlink: 1,
        }
    }

    #[test]
    fn identical_stat_older_than_snapshot_is_unchanged() {
        assert!(is_unchanged(&stat(), &stat(), 2_000));
    }

    #[test]
    fn racy_mtime_equal_to_snapshot_is_not_trusted() {
        assert!(!is_unchanged(&stat(), &stat(), 1_000));
        assert!(!is_unchanged(&stat(), &stat(), 999));
    }

    #[test]
    fn same_size_edit_with_mtime_put_back_is_caught_by_ctime() {
        let now = FileStat {
            ctime_ns: 1_500,
            ..stat()
        };
        assert!(!is_unchanged(&stat(), &now, 2_000));
    }

    #[test]
    fn each_field_change_is_caught() {
        let changes = [
            FileStat { size: 11, ..stat() },
            FileStat {
                mtime_ns: 900,
                ..stat()
            },
            FileStat { ino: 8, ..stat() },
            FileStat {
                kind: Kind::Symlink,
                ..stat()
            },
        ];
        for c in changes {
            assert!(!is_unchanged(&stat(), &c, 2_000), "{c:?}");
        }
    }

    #[test]
    fn a_chmod_breaks_identity_but_not_content() {
        let now = FileStat {
            mode: 0o755,
            ..stat()
        };
        assert!(is_unchanged(&stat(), &now, 2_000));
        assert!(!is_identical(&stat(), &now, 2_000));
        assert!(is_identical(&stat(), &stat(), 2_000));
        assert!(!is_identical(&stat(), &stat(), 1_000));
    }

    #[test]
    fn link_count_and_mode_do_not_matter_for_content() {
        let now = FileStat {
            nlink: 3,
            mode: 0o444,
            ..stat()
        };
        assert!(is_unchanged(&stat(), &now, 2_000));
    }
}

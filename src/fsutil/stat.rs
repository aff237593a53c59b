//! The stat fields bale records of a file, and the one rule deciding whether
//! a file may be trusted as unchanged without reading it.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// The stat that stands for the content at `path`, as snapshots record it:
/// its own for a file; for a symlink, see [`FileStat::of_symlink`].
pub fn content_stat(path: &Path) -> io::Result<FileStat> {
    let own = FileStat::from_metadata(&fs::symlink_metadata(path)?);
    if own.kind != Kind::Symlink {
        return Ok(own);
    }
    Ok(own.of_symlink(&FileStat::from_metadata(&fs::metadata(path)?)))
}

impl FileStat {
    /// The stat that stands for a symlink's content, from its own stat and
    /// its target's: the target's (an object written through the link moves
    /// its mtime and size, a link made to point elsewhere its inode), marked
    /// as a symlink, with the later of the two ctimes, so that a change to
    /// the link itself is seen too.
    pub fn of_symlink(&self, target: &FileStat) -> FileStat {
        FileStat {
            kind: Kind::Symlink,
            ctime_ns: self.ctime_ns.max(target.ctime_ns),
            ..*target
        }
    }

    /// Whether `other` is this very file, untouched since: the same inode
    /// with the same ctime (nothing written, chmod'ed or linked meanwhile).
    pub fn is_same_file(&self, other: &FileStat) -> bool {
        self.kind == other.kind && self.ino == other.ino && self.ctime_ns == other.ctime_ns
    }
}

/// How a file's stat now compares with the stat recorded for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compared {
    /// Everything bale records is equal: the file is exactly as recorded.
    Identical,
    /// Only the permission bits differ: the content is as recorded.
    SameContent,
    /// The content may have changed: it must be read to be known.
    Suspect,
}

/// The one rule deciding whether a file recorded as `recorded` at
/// `snapshot_ns` (a time read off the file system's own clock) may be
/// trusted to hold the recorded content, now that it stats as `current`.
///
/// Trusted only when type, size, mtime, ctime and inode are all unchanged
/// (ctime catches an edit whose mtime was put back) and the mtime is strictly
/// older than the snapshot: a file written in the same clock tick as the
/// snapshot could have changed after it without moving its mtime (git's
/// "racy git" rule). The link count is not compared: linking a cache object
/// elsewhere changes it, not the content. Permission bits do not change
/// content, but they are part of what checkout restores.
pub fn compare(recorded: &FileStat, current: &FileStat, snapshot_ns: i64) -> Compared {
    let content_same = recorded.kind == current.kind
        && recorded.size == current.size
        && recorded.mtime_ns == current.mtime_ns
        && recorded.ctime_ns == current.ctime_ns
        && recorded.ino == current.ino
        && current.mtime_ns < snapshot_ns;
    if !content_same {
        Compared::Suspect
    } else if recorded.mode != current.mode {
        Compared::SameContent
    } else {
        Compared::Identical
    }
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
        assert_eq!(compare(&stat(), &stat(), 2_000), Compared::Identical);
    }

    #[test]
    fn racy_mtime_equal_to_snapshot_is_not_trusted() {
        assert_eq!(compare(&stat(), &stat(), 1_000), Compared::Suspect);
        assert_eq!(compare(&stat(), &stat(), 999), Compared::Suspect);
    }

    #[test]
    fn same_size_edit_with_mtime_put_back_is_caught_by_ctime() {
        let now = FileStat {
            ctime_ns: 1_500,
            ..stat()
        };
        assert_eq!(compare(&stat(), &now, 2_000), Compared::Suspect);
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
            assert_eq!(compare(&stat(), &c, 2_000), Compared::Suspect, "{c:?}");
        }
    }

    #[test]
    fn a_chmod_breaks_identity_but_not_content() {
        let now = FileStat {
            mode: 0o755,
            ..stat()
        };
        assert_eq!(compare(&stat(), &now, 2_000), Compared::SameContent);
        assert_eq!(compare(&stat(), &stat(), 1_000), Compared::Suspect);
    }

    #[test]
    fn the_link_count_does_not_matter() {
        let now = FileStat { nlink: 3, ..stat() };
        assert_eq!(compare(&stat(), &now, 2_000), Compared::Identical);
    }
}

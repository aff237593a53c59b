//! Link types and the fallback chain that makes workspace files from cache
//! objects. The chain is tried in order; a type that fails because it is not
//! supported here is dropped for the rest of the run (decided on the first
//! file, then kept), while a real error (no space, no permission) is reported.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::hash::{self, Hash};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    Reflink,
    Hardlink,
    Symlink,
    Copy,
}

impl LinkType {
    pub const ALL: [LinkType; 4] = [
        LinkType::Reflink,
        LinkType::Hardlink,
        LinkType::Symlink,
        LinkType::Copy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkType::Reflink => "reflink",
            LinkType::Hardlink => "hardlink",
            LinkType::Symlink => "symlink",
            LinkType::Copy => "copy",
        }
    }

    /// Hardlinked and symlinked files are the cache object itself, so they
    /// are read-only and cannot carry their own executable bit.
    pub fn shares_object(self) -> bool {
        matches!(self, LinkType::Hardlink | LinkType::Symlink)
    }

    /// Parses a `cache.type` value: a comma list such as `reflink,copy`.
    pub fn parse_list(s: &str) -> Result<Vec<LinkType>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let t: LinkType = part.parse()?;
            if out.contains(&t) {
                return Err(format!("{part} is listed twice"));
            }
            out.push(t);
        }
        Ok(out)
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LinkType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LinkType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("unknown link type {s:?}; use reflink, hardlink, symlink or copy")
            })
    }
}

/// The permission bits of a private (copy or reflink) workspace file.
pub fn private_mode(executable: bool) -> u32 {
    if executable { 0o755 } else { 0o644 }
}

/// Whether an error means "this link type does not work here" rather than a
/// real failure that a fallback must not hide.
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

/// Why making a workspace file failed.
#[derive(Debug)]
pub enum LinkError {
    /// Every type in the chain is unsupported here; the last error.
    Exhausted(io::Error),
    /// A copy read content that does not hash to the object's name.
    Corrupt,
    Io(io::Error),
}

/// The `cache.type` chain with the index of the type currently in use.
#[derive(Debug)]
pub struct Linker {
    chain: Vec<LinkType>,
    current: AtomicUsize,
}

impl Linker {
    pub fn new(chain: Vec<LinkType>) -> Linker {
        Linker {
            chain,
            current: AtomicUsize::new(0),
        }
    }

    /// The chain as `cache.type` writes it: "reflink,copy".
    pub fn describe(&self) -> String {
        self.chain
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The type in use now (the first of the chain until one failed).
    pub fn current(&self) -> LinkType {
        let i = self.current.load(Ordering::Relaxed);
        self.chain[i.min(self.chain.len() - 1)]
    }

    /// The type a file would get: an executable file skips the types that
    /// share the (never executable) cache object, and is copied when the
    /// chain holds nothing else, so that its executable bit is kept.
    pub fn wanted(&self, executable: bool) -> Option<LinkType> {
        let start = self.current.load(Ordering::Relaxed);
        let rest = &self.chain[start.min(self.chain.len())..];
        if executable {
            if rest.is_empty() {
                return None;
            }
            return Some(
                rest.iter()
                    .copied()
                    .find(|t| !t.shares_object())
                    .unwrap_or(LinkType::Copy),
            );
        }
        rest.first().copied()
    }

    /// Marks `failed` as unsupported, moving the chain past it.
    pub fn drop_type(&self, failed: LinkType) {
        if let Some(i) = self.chain.iter().position(|t| *t == failed) {
            self.current.fetch_max(i + 1, Ordering::Relaxed);
        }
    }

    /// When the chain starts with reflink, finds out whether reflinks work
    /// from the cache into `dir` by cloning `object` once (and removing the
    /// clone), so that files are judged against the type that will really be
    /// used. A clone leaves the object's inode as it was.
    pub fn probe_reflink(&self, object: &Path, hash: Hash, dir: &Path) {
        if self.current() != LinkType::Reflink {
            return;
        }
        let tmp = dir.join(format!(
            "{}probe.{}",
            crate::workspace::walk::TEMP_PREFIX,
            std::process::id()
        ));
        let size = fs::metadata(object).map(|m| m.len()).unwrap_or(0);
        if let Err(LinkError::Io(e)) = make(LinkType::Reflink, object, hash, size, &tmp, false)
            && is_unsupported(&e)
        {
            self.drop_type(LinkType::Reflink);
        }
        let _ = fs::remove_file(&tmp);
    }

    /// Creates `dest` (which must not exist) from the cache object at
    /// `object`, with the first type of the chain that works here.
    pub fn materialize(
        &self,
        object: &Path,
        hash: Hash,
        size: u64,
        dest: &Path,
        executable: bool,
    ) -> Result<LinkType, LinkError> {
        let mut last_unsupported = None;
        let mut tried = Vec::new();
        while let Some(t) = self.wanted(executable) {
            if tried.contains(&t) {
                break;
            }
            tried.push(t);
            match make(t, object, hash, size, dest, executable) {
                Ok(()) => return Ok(t),
                Err(LinkError::Io(e)) if is_unsupported(&e) => {
                    let _ = fs::remove_file(dest);
                    self.drop_type(t);
                    last_unsupported = Some(e);
                }
                Err(e) => {
                    let _ = fs::remove_file(dest);
                    return Err(e);
                }
            }
        }
        Err(LinkError::Exhausted(last_unsupported.unwrap_or_else(
            || {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "no link type in the chain can make an executable file",
                )
            },
        )))
    }
}

/// Whether to tell the user that workspace files keep links of another type
/// than `cache.type` asks for: the chain changed since the out was last
/// linked (as `last_type`, under `last_chain`), and the new chain does not
/// start with the type the files have.
pub fn relink_advised(last_type: LinkType, last_chain: &str, linker: &Linker) -> bool {
    last_chain != linker.describe() && linker.chain.first() != Some(&last_type)
}

/// Makes `dest` from `object` (whose content hashes to `hash` and is `size`
/// bytes long) with link type `t`. A copy is verified by its hash; a symlink,
/// which would dangle silently, by the object's presence and size.
pub fn make(
    t: LinkType,
    object: &Path,
    hash: Hash,
    size: u64,
    dest: &Path,
    executable: bool,
) -> Result<(), LinkError> {
    match t {
        LinkType::Hardlink => fs::hard_link(object, dest).map_err(LinkError::Io),
        LinkType::Symlink => {
            if fs::metadata(object).map_err(LinkError::Io)?.len() != size {
                return Err(LinkError::Corrupt);
            }
            std::os::unix::fs::symlink(object, dest).map_err(LinkError::Io)
        }
        LinkType::Reflink => {
            let src = File::open(object).map_err(LinkError::Io)?;
            let out = create_private(dest, executable).map_err(LinkError::Io)?;
            reflink_copy::reflink_file(&src, &out).map_err(LinkError::Io)
        }
        LinkType::Copy => {
            if copy_private(object, dest, executable).map_err(LinkError::Io)? != hash {
                return Err(LinkError::Corrupt);
            }
            Ok(())
        }
    }
}

/// Copies `src` to a new private file `dest` (which must not exist), in one
/// read that also hashes the content; returns that hash.
pub fn copy_private(src: &Path, dest: &Path, executable: bool) -> io::Result<Hash> {
    let input = File::open(src)?;
    let out = create_private(dest, executable)?;
    hash::with_buffer(|buf| hash::copy_hashing(&input, &out, buf)).map(|(h, _)| h)
}

fn create_private(dest: &Path, executable: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(private_mode(executable))
        .open(dest)?;
    // The umask may have taken bits away; a private file gets exactly these.
    f.set_permissions(fs::Permissions::from_mode(private_mode(executable)))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_unknown_or_repeated_types() {
        assert_eq!(
            LinkType::parse_list("reflink, copy"),
            Ok(vec![LinkType::Reflink, LinkType::Copy])
        );
        assert!(LinkType::parse_list("reflink,ftp").is_err());
        assert!(LinkType::parse_list("copy,copy").is_err());
        assert!(LinkType::parse_list("").is_err());
    }

    #[test]
    fn executables_skip_types_that_share_the_object() {
        let l = Linker::new(vec![LinkType::Hardlink, LinkType::Copy]);
        assert_eq!(l.wanted(false), Some(LinkType::Hardlink));
        assert_eq!(l.wanted(true), Some(LinkType::Copy));
        let only = Linker::new(vec![LinkType::Symlink]);
        assert_eq!(only.wanted(true), Some(LinkType::Copy));
        only.drop_type(LinkType::Symlink);
        assert_eq!(only.wanted(false), None);
    }

    #[test]
    fn dropping_a_type_moves_the_chain_on_for_good() {
        let l = Linker::new(vec![LinkType::Reflink, LinkType::Hardlink, LinkType::Copy]);
        l.drop_type(LinkType::Reflink);
        assert_eq!(l.current(), LinkType::Hardlink);
        l.drop_type(LinkType::Reflink);
        assert_eq!(l.current(), LinkType::Hardlink);
        l.drop_type(LinkType::Hardlink);
        assert_eq!(l.current(), LinkType::Copy);
    }

    #[test]
    fn relink_is_advised_only_when_the_chain_changed_to_another_type() {
        let copy = Linker::new(vec![LinkType::Copy]);
        let hard = Linker::new(vec![LinkType::Hardlink, LinkType::Copy]);
        let default = Linker::new(vec![LinkType::Reflink, LinkType::Copy]);
        assert!(!relink_advised(LinkType::Copy, "copy", &copy));
        assert!(relink_advised(LinkType::Copy, "copy", &hard));
        assert!(relink_advised(
            LinkType::Hardlink,
            "hardlink,copy",
            &default
        ));
        // reflink,copy fell back to copy on a file system without reflinks:
        // a chain that now starts with copy changes nothing.
        assert!(!relink_advised(LinkType::Copy, "reflink,copy", &copy));
        // The same chain, even if it fell back: nothing was changed.
        assert!(!relink_advised(LinkType::Copy, "reflink,copy", &default));
    }

    #[test]
    fn unsupported_errors_are_told_from_real_ones() {
        assert!(is_unsupported(&io::Error::from_raw_os_error(libc::EXDEV)));
        assert!(is_unsupported(&io::Error::from_raw_os_error(
            libc::EOPNOTSUPP
        )));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_unsupported(&io::Error::from_raw_os_error(libc::EACCES)));
    }
}

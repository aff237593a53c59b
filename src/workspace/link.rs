//! Link types and the fallback chain that makes workspace files from cache
//! objects. The chain is tried in order; a type that fails because it is not
//! supported here is dropped for the rest of the run (decided on the first
//! file, then kept), while a real error (no space, no permission) is reported.

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cache::{Cache, LinkError, Made};
use crate::fsutil::{LinkType, is_unsupported, temp};
use crate::hash::Hash;

/// Why `Linker::materialize` made nothing.
#[derive(Debug)]
pub enum Exhausted {
    /// Every type in the chain is unsupported here; the last error.
    Unsupported(std::io::Error),
    /// A real failure of one type (or a missing or corrupt object).
    Failed(LinkError),
}

/// The `cache.type` chain with the index of the type currently in use.
#[derive(Debug)]
pub struct Linker {
    chain: Vec<LinkType>,
    current: AtomicUsize,
    /// Why the last type was dropped (its OS error code), so that a file
    /// that finds the chain used up is told the true cause.
    dropped_for: Mutex<Option<i32>>,
}

impl Linker {
    pub fn new(chain: Vec<LinkType>) -> Linker {
        Linker {
            chain,
            current: AtomicUsize::new(0),
            dropped_for: Mutex::new(None),
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

    /// `drop_type`, remembering why (told to files that find the chain
    /// used up).
    pub fn drop_type_because(&self, failed: LinkType, cause: &std::io::Error) {
        if let Some(code) = cause.raw_os_error() {
            *self.dropped_for.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
        }
        self.drop_type(failed);
    }

    /// When the chain starts with reflink, finds out whether reflinks work
    /// from the cache into `dir` by cloning the object `hash` once (and
    /// removing the clone), so that files are judged against the type that
    /// will really be used. A clone leaves the object's inode as it was.
    pub fn probe_reflink(&self, cache: &Cache, hash: Hash, size: u64, dir: &Path) {
        if self.current() != LinkType::Reflink {
            return;
        }
        let tmp = temp::name_in(dir);
        if let Err(LinkError::Io(e)) = cache.link(LinkType::Reflink, hash, size, &tmp, false)
            && is_unsupported(&e)
        {
            self.drop_type_because(LinkType::Reflink, &e);
        }
        let _ = fs::remove_file(&tmp);
    }

    /// Creates `dest` (which must not exist) from the cache object `hash`,
    /// with the first type of the chain that works here, and returns what was
    /// made (`Cache::link`); `Exhausted` says why nothing was made.
    pub fn materialize(
        &self,
        cache: &Cache,
        hash: Hash,
        size: u64,
        dest: &Path,
        executable: bool,
    ) -> Result<Made, Exhausted> {
        let mut last_unsupported = None;
        let mut tried = Vec::new();
        while let Some(t) = self.wanted(executable) {
            if tried.contains(&t) {
                break;
            }
            tried.push(t);
            match cache.link(t, hash, size, dest, executable) {
                Ok(made) => return Ok(made),
                Err(LinkError::Io(e)) if is_unsupported(&e) => {
                    let _ = fs::remove_file(dest);
                    self.drop_type_because(t, &e);
                    last_unsupported = Some(e);
                }
                Err(e) => {
                    let _ = fs::remove_file(dest);
                    return Err(Exhausted::Failed(e));
                }
            }
        }
        let earlier = *self.dropped_for.lock().unwrap_or_else(|p| p.into_inner());
        Err(Exhausted::Unsupported(
            last_unsupported
                .or_else(|| earlier.map(std::io::Error::from_raw_os_error))
                .unwrap_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "no link type in the chain can make an executable file",
                    )
                }),
        ))
    }
}

/// Whether to tell the user that workspace files keep links of another type
/// than `cache.type` asks for: the chain changed since the out was last
/// linked (as `last_type`, under `last_chain`), and the new chain does not
/// start with the type the files have.
pub fn relink_advised(last_type: LinkType, last_chain: &str, linker: &Linker) -> bool {
    last_chain != linker.describe() && linker.chain.first() != Some(&last_type)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

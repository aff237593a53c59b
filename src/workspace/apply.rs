//! Carries out a checkout plan: deletions, folders, then every file made in
//! parallel beside its final path and renamed into place, so that an
//! interrupted run leaves each file old or new, never partial.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::link::{Exhausted, Linker};
use super::plan::CheckoutPlan;
use crate::cache::{Cache, LinkError, OBJECT_MODE};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{FileStat, LinkType, is_unsupported, stat::content_stat, temp};
use crate::manifest::{Entry, Manifest};
use crate::paths;
use crate::progress::Bar;

/// A file placed by `apply`, stat'ed right after it was renamed into place.
#[derive(Clone, Debug)]
pub struct Placed {
    /// Which of the plan's writes (an index into `CheckoutPlan::writes`:
    /// the path is not copied again for every file).
    pub write: usize,
    pub stat: FileStat,
    pub link_type: LinkType,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub placed: Vec<Placed>,
    pub errors: Vec<Error>,
}

/// Makes `dest` from the object of `w` (a manifest entry), atomically: a hardlink or symlink
/// is whole the moment it exists, so it is made straight at `dest` when that
/// place is free; anything else is made beside it and renamed over it.
/// Returns the placed file's content stat, taken right after it was placed.
pub fn place(
    cache: &Cache,
    linker: &Linker,
    w: Entry<'_>,
    dest: &Path,
) -> Result<(FileStat, LinkType)> {
    let fail = |e: LinkError| match e {
        LinkError::Corrupt => cache.corrupt(w.hash, dest),
        LinkError::Missing => cache.missing(w.hash, dest),
        LinkError::Io(e) => Error::io("create", dest, e),
    };
    let mut made = None;
    if let Some(t) = linker.wanted(w.executable).filter(|t| t.shares_object()) {
        match cache.link(t, w.hash, w.size, dest, w.executable) {
            Ok(()) => made = Some(t),
            Err(LinkError::Io(e))
                if e.kind() == io::ErrorKind::AlreadyExists || is_unsupported(&e) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let link_type = match made {
        Some(t) => t,
        None => {
            let tmp = temp::name_in(dest.parent().unwrap_or(Path::new(".")));
            let t = linker
                .materialize(cache, w.hash, w.size, &tmp, w.executable)
                .map_err(|e| match e {
                    Exhausted::Failed(e) => fail(e),
                    Exhausted::Unsupported(source) => Error::NoLinkType {
                        tried: linker.describe(),
                        path: dest.to_path_buf(),
                        source,
                    },
                })?;
            if let Err(e) = fs::rename(&tmp, dest) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io("create", dest, e));
            }
            if t == LinkType::Hardlink {
                // rename(2) does nothing when both names are links to one
                // inode (dest already was the object): drop the temp name.
                let _ = fs::remove_file(&tmp);
            }
            t
        }
    };
    let mut stat = content_stat(dest).at("read", dest)?;
    // A hardlink is the object: a chmod of an earlier hardlinked file
    // changed the object's mode, which is put back here.
    if link_type == LinkType::Hardlink && stat.mode != OBJECT_MODE {
        fs::set_permissions(dest, fs::Permissions::from_mode(OBJECT_MODE))
            .at("make read-only", dest)?;
        stat = content_stat(dest).at("read", dest)?;
    }
    // A file that shares the object's blocks was not read: its size is the
    // cheap check of the object (a copy was hashed on the way, a symlink's
    // object checked before it was made).
    if matches!(link_type, LinkType::Hardlink | LinkType::Reflink) && stat.size != w.size {
        let _ = fs::remove_file(dest);
        return Err(fail(LinkError::Corrupt));
    }
    Ok((stat, link_type))
}

/// Carries out `plan`, made for the manifest `expected`, in `root`.
pub fn apply(
    plan: &CheckoutPlan,
    expected: &Manifest,
    root: &Path,
    stale_temps: &[PathBuf],
    cache: &Cache,
    linker: &Linker,
    bar: &Bar,
) -> Outcome {
    let errors = Mutex::new(Vec::new());
    let push = |e: Error| errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);

    for t in stale_temps {
        if let Err(e) = fs::remove_file(t)
            && e.kind() != io::ErrorKind::NotFound
        {
            push(Error::io("remove the leftover temp file", t, e));
        }
    }
    plan.deletes.par_iter().for_each(|rel| {
        let p = paths::join(root, rel);
        if let Err(e) = fs::remove_file(&p)
            && e.kind() != io::ErrorKind::NotFound
        {
            push(Error::io("delete", p, e));
        }
    });
    for rel in &plan.remove_dirs {
        let p = paths::join(root, rel);
        match fs::remove_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => push(Error::io("remove the folder", p, e)),
        }
    }
    for rel in &plan.create_dirs {
        let p = paths::join(root, rel);
        match fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {}
            Err(e) => push(Error::io("create the folder", p, e)),
        }
    }
    // A full disk stops the out: every further file would fail the same way.
    let full = AtomicBool::new(false);
    let not_made = AtomicUsize::new(0);
    let placed: Vec<Placed> = plan
        .writes
        .par_iter()
        .enumerate()
        .filter_map(|(i, w)| {
            if full.load(Ordering::Relaxed) {
                not_made.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let e = expected.get(w.entry);
            let dest = paths::join(root, e.path);
            let r = place(cache, linker, e, &dest);
            bar.inc(e.size);
            bar.file_done();
            match r {
                Ok((stat, link_type)) => Some(Placed {
                    write: i,
                    stat,
                    link_type,
                }),
                Err(e @ Error::NoSpace { .. }) => {
                    if full.swap(true, Ordering::Relaxed) {
                        not_made.fetch_add(1, Ordering::Relaxed);
                    } else {
                        push(e);
                    }
                    None
                }
                Err(e) => {
                    push(e);
                    None
                }
            }
        })
        .collect();
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    let not_made = not_made.into_inner();
    if not_made > 0 {
        errors.push(Error::NotMade { count: not_made });
    }
    Outcome { placed, errors }
}

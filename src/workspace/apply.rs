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
use crate::error::{Error, Result};
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
    place_in(cache, linker, w, dest, None)
}

/// `place`; with `staged` (the out's final root), `dest` is in a folder no
/// one else sees until it is renamed into place whole (`Staging`): the file
/// is made straight at `dest`, and removed if making it fails, with no temp
/// name and rename.
fn place_in(
    cache: &Cache,
    linker: &Linker,
    w: Entry<'_>,
    dest: &Path,
    staged: Option<&Path>,
) -> Result<(FileStat, LinkType)> {
    // Errors name the file where the user will look for it (made only for
    // an error: not a path per file of a checkout).
    let named = || staged.map_or_else(|| dest.to_path_buf(), |root| paths::join(root, w.path));
    let fail = |e: LinkError| match e {
        LinkError::Corrupt => cache.corrupt(w.hash, named()),
        LinkError::Missing => cache.missing(w.hash, named()),
        LinkError::Io(e) => Error::io("create", named(), e),
    };
    let mut made = None;
    if let Some(t) = linker.wanted(w.executable).filter(|t| t.shares_object()) {
        match cache.link(t, w.hash, w.size, dest, w.executable) {
            Ok(t) => made = Some(t),
            Err(LinkError::Io(e))
                if e.kind() == io::ErrorKind::AlreadyExists || is_unsupported(&e) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let unsupported = |source| Error::NoLinkType {
        tried: linker.describe(),
        path: named(),
        source,
    };
    let made = match made {
        Some(m) => m,
        // `materialize` removes what it made when it fails.
        None if staged.is_some() => linker
            .materialize(cache, w.hash, w.size, dest, w.executable)
            .map_err(|e| match e {
                Exhausted::Failed(e) => fail(e),
                Exhausted::Unsupported(source) => unsupported(source),
            })?,
        None => {
            let tmp = temp::name_in(dest.parent().unwrap_or(Path::new(".")));
            let m = linker
                .materialize(cache, w.hash, w.size, &tmp, w.executable)
                .map_err(|e| match e {
                    Exhausted::Failed(e) => fail(e),
                    Exhausted::Unsupported(source) => unsupported(source),
                })?;
            if let Err(e) = fs::rename(&tmp, dest) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io("create", dest, e));
            }
            if m.link_type == LinkType::Hardlink {
                // rename(2) does nothing when both names are links to one
                // inode (dest already was the object): drop the temp name.
                let _ = fs::remove_file(&tmp);
            }
            m
        }
    };
    let link_type = made.link_type;
    // A symlink's content stat is its object's, checked just before it was
    // made: only the link itself is stat'ed (one statx, not two).
    let mut stat = match made.target {
        Some(target) if link_type == LinkType::Symlink => fs::symlink_metadata(dest)
            .map(|m| FileStat::from_metadata(&m).of_symlink(&target))
            .map_err(|e| Error::io("read", named(), e))?,
        _ => content_stat(dest).map_err(|e| Error::io("read", named(), e))?,
    };
    // A hardlink is the object: a chmod of an earlier hardlinked file
    // changed the object's mode, which is put back here.
    if link_type == LinkType::Hardlink && stat.mode != OBJECT_MODE {
        fs::set_permissions(dest, fs::Permissions::from_mode(OBJECT_MODE))
            .map_err(|e| Error::io("make read-only", named(), e))?;
        stat = content_stat(dest).map_err(|e| Error::io("read", named(), e))?;
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

/// Writes whose objects' pack locations are looked up together: the
/// lookup holds 48 bytes per object of a run.
const HINTED_RUN: usize = 1 << 16;

/// A folder out made whole where nothing stood (a checkout after `rm -rf`,
/// a first checkout, an import): built in a fresh folder of bale's own
/// (`.bale/tmp/`, on the same file system) and renamed into place at the
/// end, so that its files are made at their final names with no rename
/// each, and an interrupted run leaves nothing in the workspace. A leftover
/// of a killed run is removed by the next one.
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// A staging folder in `base` for the missing folder `root`; `None`
    /// when there cannot be one (`root`'s parent is missing or on another
    /// file system than `base`): the out is then made in place.
    pub fn new(base: &Path, root: &Path) -> Option<Staging> {
        use std::os::unix::fs::MetadataExt;
        let parent = root.parent()?;
        let (b, p) = (fs::metadata(base).ok()?, fs::metadata(parent).ok()?);
        if b.dev() != p.dev() || fs::symlink_metadata(root).is_ok() {
            return None;
        }
        temp::remove_leftover_dirs_in(base);
        let dir = temp::name_in(base);
        fs::create_dir(&dir).ok()?;
        Some(Staging { dir })
    }

    /// Renames the staged folder to `root`, which must still not exist.
    fn finish(self, root: &Path) -> Result<()> {
        match temp::rename_no_replace(&self.dir, root) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_dir_all(&self.dir);
                Err(Error::io("move the checked-out folder to", root, e))
            }
        }
    }
}

/// Carries out `plan`, made for the manifest `expected`, in `root`; with
/// `staging` (`root` is missing), in the staging folder, renamed to `root`
/// at the end.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    plan: &CheckoutPlan,
    expected: &Manifest,
    root: &Path,
    stale_temps: &[PathBuf],
    cache: &Cache,
    linker: &Linker,
    bar: &Bar,
    staging: Option<Staging>,
) -> Outcome {
    let errors = Mutex::new(Vec::new());
    let push = |e: Error| errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    let target = root;
    let root = staging.as_ref().map_or(root, |s| s.dir.as_path());

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
            Err(e) => push(Error::io("create the folder", paths::join(target, rel), e)),
        }
    }
    // A full disk, or a chain of link types none of which works here, stops
    // the out: every further file would fail the same way. The first error
    // is told, the rest counted.
    let full = AtomicBool::new(false);
    let stopped_by = Mutex::new(None);
    let not_made = AtomicUsize::new(0);
    // In runs of a bounded size, each with its objects' pack locations
    // looked up in one pass first.
    let mut placed: Vec<Placed> = Vec::with_capacity(plan.writes.len());
    for (run, writes) in plan.writes.chunks(HINTED_RUN).enumerate() {
        // Only a hint: a read it cannot answer asks the index itself (and
        // reports what is wrong with it).
        let _ = cache.hint_reads(writes.iter().map(|w| expected.get(w.entry).hash));
        let base = run * HINTED_RUN;
        placed.par_extend(writes.par_iter().enumerate().filter_map(|(k, w)| {
            let i = base + k;
            if full.load(Ordering::Relaxed) {
                not_made.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let e = expected.get(w.entry);
            let dest = paths::join(root, e.path);
            let r = place_in(cache, linker, e, &dest, staging.as_ref().map(|_| target));
            bar.inc(e.size);
            bar.file_done();
            match r {
                Ok((stat, link_type)) => Some(Placed {
                    write: i,
                    stat,
                    link_type,
                }),
                Err(e @ (Error::NoSpace { .. } | Error::NoLinkType { .. })) => {
                    if full.swap(true, Ordering::Relaxed) {
                        not_made.fetch_add(1, Ordering::Relaxed);
                    } else {
                        *stopped_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(match e {
                            Error::NoSpace { .. } => "the disk is full",
                            _ => "no link type in cache.type works here",
                        });
                        push(e);
                    }
                    None
                }
                Err(e) => {
                    push(e);
                    None
                }
            }
        }));
    }
    cache.unhint_reads();
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    let not_made = not_made.into_inner();
    if not_made > 0 {
        let reason = stopped_by
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or("the disk is full");
        errors.push(Error::NotMade {
            count: not_made,
            reason,
        });
    }
    // What was made goes into place even when some files failed, as it
    // would have made in place: each file there is whole.
    if let Some(s) = staging
        && let Err(e) = s.finish(target)
    {
        errors.push(e);
        return Outcome {
            placed: Vec::new(),
            errors,
        };
    }
    Outcome { placed, errors }
}

//! import: track an archive's content as the folder out DEST, as if it had
//! been unpacked and added, without unpacking it first; then check DEST out
//! through checkout's own tail (unless asked not to).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fsutil::{self, LinkType};
use crate::import::{self, Input, Mode};
use crate::out::{self, Out};
use crate::paths;
use crate::pointer::{self, OutKind, OutRecord};
use crate::repo::Repo;

use super::checkout::{self as co, Planned};
use super::{Changes, track};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Store small entries in packs.
    pub packed: bool,
    /// Store every entry as a loose object.
    pub loose: bool,
    /// Only store and track the content.
    pub no_checkout: bool,
    /// Replace DEST even though it is not this archive's out, or holds
    /// changes that are not in the cache.
    pub force: bool,
    pub wait: Duration,
    /// No progress bar.
    pub quiet: bool,
    /// Name every file the checkout changed (`-v`).
    pub list_changes: bool,
}

/// What an import stored and how its checkout went.
pub struct ImportReport {
    pub key: String,
    pub format: &'static str,
    pub nfiles: usize,
    pub size: u64,
    /// Objects new to the cache, and whether small files went to packs.
    pub stored: usize,
    pub packed: bool,
    pub checkout: Checkout,
    /// Cache objects found corrupt while planning the checkout.
    pub corrupt: Vec<Error>,
    /// The checkout's errors (with `Checkout::Incomplete`).
    pub apply_errors: Vec<Error>,
    pub changes: Changes,
}

pub enum Checkout {
    /// `no_checkout`: the workspace was left as it was.
    NotAsked,
    /// The workspace had it already.
    HadIt,
    /// Checked out; the link types the files were written with.
    Done(Vec<LinkType>),
    Incomplete,
}

impl ImportReport {
    pub fn failed(&self) -> bool {
        !self.corrupt.is_empty() || !self.apply_errors.is_empty()
    }
}

/// Imports the archive `archive` (`None`: a tar stream on stdin) as the
/// folder `abs`, named `dest` by the user.
pub fn run(
    repo: &Repo,
    archive: Option<&Path>,
    abs: &Path,
    dest: &Path,
    opts: &Options,
) -> Result<ImportReport> {
    let key = track::check_out_path(repo, abs, dest).map_err(|e| match e {
        Error::InsideOut { path, out } => Error::ImportOverlapsOut {
            path,
            out,
            inside: true,
        },
        e => e,
    })?;
    let existing = track::existing_record(abs, &key)?;
    if abs.symlink_metadata().is_ok() {
        if existing.is_none() && !opts.force {
            return Err(Error::DestinationExists(dest.to_path_buf()));
        }
        if abs.is_dir()
            && let Some(p) = out::find_pointers(abs)?.first()
        {
            return Err(Error::ImportOverlapsOut {
                path: dest.to_path_buf(),
                out: p.with_extension(""),
                inside: false,
            });
        }
    }
    let links_share = repo
        .settings
        .cache_types
        .first()
        .is_some_and(|t| t.shares_object());
    let mode = if opts.packed {
        Mode::Packed
    } else if opts.loose {
        Mode::Loose
    } else {
        Mode::Auto {
            links_share: links_share && !opts.no_checkout,
        }
    };
    let import_opts = import::Options {
        mode,
        threshold: repo.settings.pack_threshold,
        compress: repo.settings.pack_compression,
        batch_entries: usize::try_from(repo.settings.batch_entries).unwrap_or(usize::MAX),
        batch_bytes: repo.settings.batch_bytes,
        name_max: fsutil::name_max(abs.parent().unwrap_or(abs)),
        wait: opts.wait,
        quiet: opts.quiet,
    };
    let input = match archive {
        Some(p) => Input::File(p),
        None => Input::Stdin,
    };
    let imp = import::import(&repo.cache, input, &import_opts)?;
    // The batches are gone: their memory is not the checkout's to carry.
    crate::memory::release_freed();
    let nfiles = imp.nfiles as u64;
    let name = key.rsplit('/').next().unwrap_or(&key).to_owned();
    let (index, mut record) = existing.unwrap_or_else(|| {
        (
            0,
            OutRecord {
                path: name,
                hash: imp.hash,
                kind: OutKind::Dir,
                size: 0,
                nfiles: None,
                executable: false,
                skip_symlinks: false,
                extra: Default::default(),
            },
        )
    });
    record.hash = imp.hash;
    record.kind = OutKind::Dir;
    record.size = imp.size;
    record.nfiles = Some(nfiles);
    record.executable = false;
    let fill = |o: &mut OutRecord| {
        o.hash = imp.hash;
        o.kind = OutKind::Dir;
        o.size = imp.size;
        o.nfiles = Some(nfiles);
        o.executable = false;
    };
    let mut report = ImportReport {
        key: key.clone(),
        format: imp.format.name(),
        nfiles: imp.nfiles,
        size: imp.size,
        stored: imp.stored,
        packed: imp.packed,
        checkout: Checkout::NotAsked,
        corrupt: Vec::new(),
        apply_errors: Vec::new(),
        changes: Changes::default(),
    };
    if opts.no_checkout {
        track::write_pointer_with(abs, &key, fill)?;
        return Ok(report);
    }

    let mut state = repo.state()?;
    let linker = super::linker(repo);
    let o = Out {
        pointer: pointer::pointer_path(abs),
        index,
        record,
        root: abs.to_path_buf(),
        key: key.clone(),
        subpath: None,
    };
    let co_opts = co::Options {
        plan: co::PlanOptions {
            relink: false,
            force: opts.force,
        },
        quiet: opts.quiet,
        list_changes: opts.list_changes,
        fetched_from: None,
    };
    let planned = co::plan_out(repo, &state, &linker, o, co_opts.plan, opts.quiet)?;
    if let Planned::Changes(w) = &planned
        && !w.plan.conflicts.is_empty()
    {
        let paths: Vec<PathBuf> = w
            .plan
            .conflicts
            .iter()
            .map(|c| paths::join(Path::new(&key), c))
            .collect();
        return Err(Error::ImportWouldLoseData(paths));
    }
    track::write_pointer_with(abs, &key, fill)?;
    let mut done = co::CheckoutReport::default();
    co::apply_all(
        repo,
        &mut state,
        &linker,
        vec![planned],
        &co_opts,
        &mut done,
    )?;
    if let Some(e) = done.unsaved.take() {
        return Err(e);
    }
    let Some(out) = done.outs.pop() else {
        unreachable!("apply_all reports every out it is given")
    };
    // `done.errors`: one group per corrupt object, then the apply's errors.
    if out.summary.is_none() {
        report.apply_errors = done.errors.pop().unwrap_or_default();
    }
    report.corrupt = done.errors.into_iter().flatten().collect();
    report.checkout = if out.unchanged {
        Checkout::HadIt
    } else if out.summary.is_some() {
        Checkout::Done(out.link_types)
    } else {
        Checkout::Incomplete
    };
    report.changes = out.changes;
    Ok(report)
}

//! add: hash and store each path, link the workspace per `cache.type`,
//! write its pointer and `.gitignore` line, then save the snapshots.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::LinkType;
use crate::human::plural;
use crate::paths;
use crate::repo::Repo;
use crate::state::StateDb;
use crate::workspace::{self, RecordOptions};

use super::{display_path, track};

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Leave out symlinks inside a folder instead of refusing.
    pub skip_symlinks: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Name every file stored (`-v`).
    pub list_stored: bool,
}

/// What an add did: the outs added, in order, up to the first failure.
pub struct AddReport {
    pub outs: Vec<Added>,
    /// The error that stopped the add (the outs before it are added).
    pub failure: Option<Error>,
}

/// One path added.
pub struct Added {
    pub key: String,
    /// Said before the out's line: files edited in place, symlinks left out.
    pub warnings: Vec<String>,
    /// Said after it: git tracks files of the out.
    pub hint: Option<String>,
    pub nfiles: u64,
    pub size: u64,
    pub new_objects: usize,
    pub link_type: LinkType,
    /// With `list_stored`: the files read and stored this time.
    pub stored: Vec<String>,
}

/// Adds `given` (paths as the user named them, from `cwd`) one after the
/// other, stopping at the first that fails, and saves the snapshots of those
/// added.
pub fn run(
    repo: &Repo,
    state: &mut StateDb,
    cwd: &Path,
    given: &[PathBuf],
    opts: Options,
) -> Result<AddReport> {
    let linker = super::linker(repo);
    let mut snapshots = Vec::new();
    let mut report = AddReport {
        outs: Vec::new(),
        failure: None,
    };
    for p in given {
        let abs = paths::normalize(&cwd.join(p));
        let added = track::check_new_out(repo, &abs, p).and_then(|key| {
            let old = state.load(&key)?;
            // Symlinks once left out stay left out when the out is added
            // again.
            let recorded = track::existing_record(&abs, &key)?;
            let record_opts = RecordOptions {
                skip_symlinks: opts.skip_symlinks || recorded.is_some_and(|(_, r)| r.skip_symlinks),
            };
            let r = workspace::record(&abs, old, &repo.cache, &linker, record_opts, opts.quiet)?;
            track::write_pointer(&abs, &key, &r)?;
            Ok((key, r))
        });
        let (key, r) = match added {
            Ok(x) => x,
            Err(e) => {
                report.failure = Some(e);
                break;
            }
        };
        let mut warnings: Vec<String> = r
            .corrupt
            .iter()
            .map(|(h, f)| super::commit::edited_in_place(&display_path(&key, f), *h))
            .collect();
        if !r.skipped.is_empty() {
            warnings.push(format!(
                "left out {}: {}",
                plural(r.skipped.len(), "symlink"),
                r.skipped
                    .iter()
                    .map(|s| display_path(&key, s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let hint = track::tracked_by_git(repo, &key).then(|| {
            format!(
                "git already tracks files in {key}: run `git rm -r --cached {key}` and commit, so that git keeps only {key}.bale"
            )
        });
        let stored = if opts.list_stored {
            r.stored
                .iter()
                .map(|&i| display_path(&key, r.manifest.get(i as usize).path))
                .collect()
        } else {
            Vec::new()
        };
        report.outs.push(Added {
            key: key.clone(),
            warnings,
            hint,
            nfiles: r.nfiles,
            size: r.size,
            new_objects: r.new_objects,
            link_type: r.link_type,
            stored,
        });
        snapshots.push((key, r.snapshot(0)));
    }
    // A failure to save is told after what was added (the pointers are
    // written): the next command re-reads what it cannot trust.
    if let Err(e) = repo.save_snapshots(state, snapshots) {
        report.failure.get_or_insert(e);
    }
    Ok(report)
}

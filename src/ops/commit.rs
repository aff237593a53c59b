//! commit: record the current content of tracked outs, re-hashing only
//! files whose stat changed, then rewrite their pointers and save their
//! snapshots.

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::Manifest;
use crate::out::Out;
use crate::pointer::PointerFile;
use crate::repo::Repo;
use crate::state::StateDb;
use crate::workspace::{self, RecordOptions, link::Linker, plan};

use super::{Changes, display_path};

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// No progress bar.
    pub quiet: bool,
}

/// What a commit did, out by out, in the order of the targets.
pub struct CommitReport {
    pub outs: Vec<OutCommit>,
    /// The snapshots could not be saved (told after the outs, whose
    /// pointers are written).
    pub unsaved: Option<Error>,
}

/// One out's commit.
pub struct OutCommit {
    pub key: String,
    /// Said before the outcome (files edited in place through a link).
    pub warnings: Vec<String>,
    pub outcome: Result<Committed>,
}

pub enum Committed {
    /// The content is the one the pointer records.
    Unchanged,
    /// A folder whose files changed: what changed, file by file.
    Changed(Changes),
    /// New content that is not compared file by file (a file, a folder
    /// that was a file, or a previous manifest the cache lacks).
    New,
}

impl CommitReport {
    /// The outs that could not be committed.
    pub fn failed(&self) -> usize {
        self.outs.iter().filter(|o| o.outcome.is_err()).count()
    }
}

/// Commits `outs`, then saves the snapshots of those committed, in one
/// transaction.
pub fn run(repo: &Repo, state: &mut StateDb, outs: &[Out], opts: Options) -> Result<CommitReport> {
    let linker = super::linker(repo);
    let mut snapshots = Vec::new();
    let mut reports = Vec::with_capacity(outs.len());
    for o in outs {
        let mut warnings = Vec::new();
        let outcome = commit_one(repo, state, &linker, o, opts, &mut warnings).map(|(r, c)| {
            snapshots.push((o.key.clone(), r.snapshot(0)));
            c
        });
        reports.push(OutCommit {
            key: o.key.clone(),
            warnings,
            outcome,
        });
    }
    let unsaved = repo.save_snapshots(state, snapshots).err();
    Ok(CommitReport {
        outs: reports,
        unsaved,
    })
}

fn commit_one(
    repo: &Repo,
    state: &StateDb,
    linker: &Linker,
    o: &Out,
    opts: Options,
    warnings: &mut Vec<String>,
) -> Result<(workspace::Recorded, Committed)> {
    let old = state.load(&o.key)?;
    let r = workspace::record(
        &o.root,
        old,
        &repo.cache,
        linker,
        RecordOptions {
            skip_symlinks: o.record.skip_symlinks,
        },
        opts.quiet,
    )?;
    for (h, f) in &r.corrupt {
        warnings.push(edited_in_place(&display_path(&o.key, f), *h));
    }
    if r.hash == o.record.hash {
        return Ok((r, Committed::Unchanged));
    }
    let before = match repo.cache.read_manifest(o.record.hash, &o.root) {
        Ok(before) if o.is_dir() && r.is_dir => Some(before),
        _ => None,
    };
    let mut file = PointerFile::read(&o.pointer)?;
    if let Some(rec) = file.outs.get_mut(o.index) {
        r.update(rec);
    }
    file.write(&o.pointer)?;
    let committed = match before {
        Some(before) => Committed::Changed(changes(&o.key, &before, &r.manifest)),
        None => Committed::New,
    };
    Ok((r, committed))
}

/// The warning for a file recorded after an edit in place through a link
/// to its object: the new content is recorded, the old object is gone.
pub fn edited_in_place(path: &str, old: Hash) -> String {
    format!(
        "{} was edited in place through its link to the cache: its new content is recorded, but the object {old} of its previous version changed with it and was set aside (restore that version from a remote, if one holds it)",
        crate::paths::quoted_str(path)
    )
}

/// The files added, modified and deleted between two manifests.
fn changes(key: &str, before: &Manifest, after: &Manifest) -> Changes {
    let d = plan::diff_by(before, after.len(), |i| {
        let e = after.get(i);
        (e.path, Some(e.hash), e.executable)
    });
    let (b, a) = (before, after);
    Changes {
        added: d
            .added
            .iter()
            .map(|&i| display_path(key, a.get(i).path))
            .collect(),
        modified: d
            .modified
            .iter()
            .map(|&(i, _)| display_path(key, a.get(i).path))
            .collect(),
        deleted: d
            .deleted
            .iter()
            .map(|&j| display_path(key, b.get(j).path))
            .collect(),
    }
}

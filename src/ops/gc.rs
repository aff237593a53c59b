//! gc's knowledge of what is referenced: every object that a pointer file
//! of the workspace names, directly or through a manifest, and the same for
//! the pointer files of the git revisions the scope asks for (by default:
//! whatever any ref, stash entry, worktree HEAD or git index holds).

use std::collections::HashSet;

use rayon::prelude::*;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::history::{FoundPointer, History, Rev};
use crate::out::{self, Inside};
use crate::pointer::OutKind;
use crate::repo::Repo;

/// Which git revisions gc keeps, besides the workspace (always kept).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub branches: bool,
    pub tags: bool,
    /// The default scope: every reference under `refs/`, every stash entry
    /// (with its index commit), the HEAD and the git index of every
    /// worktree.
    pub every_ref: bool,
    pub all_commits: bool,
    pub revs: Vec<String>,
}

impl Scope {
    /// What `bale gc` keeps with no option: everything any ref, stash entry,
    /// worktree HEAD or git index reaches at its tip.
    pub fn default_refs() -> Scope {
        Scope {
            every_ref: true,
            ..Scope::default()
        }
    }

    pub fn reads_history(&self) -> bool {
        self.branches || self.tags || self.every_ref || self.all_commits || !self.revs.is_empty()
    }
}

/// What gc must keep.
#[derive(Debug, Default)]
pub struct Referenced {
    pub keep: HashSet<Hash>,
    /// Revisions read from git.
    pub revisions: usize,
    /// Distinct pointer files read from git.
    pub pointer_blobs: usize,
    /// Problems in history that do not stop gc: a manifest missing from
    /// the cache, a malformed pointer file.
    pub warnings: Vec<Error>,
}

/// What `bale gc` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub scope: Scope,
    /// The user named the revisions (or `--workspace`): outside a git
    /// repository that is an error, not the workspace alone.
    pub explicit: bool,
    /// Delete without asking.
    pub force: bool,
    /// Only say what would be deleted.
    pub dry_run: bool,
}

/// What gc would delete, decided before anything is.
pub struct GcPlan {
    /// Problems in history that do not stop gc.
    pub warnings: Vec<Error>,
    /// Revisions read from git, and the distinct pointer files in them.
    pub revisions: usize,
    pub pointer_blobs: usize,
    /// The cache's objects that nothing keeps, and their bytes.
    pub doomed: Vec<Hash>,
    pub bytes: u64,
    /// The objects kept.
    pub kept: usize,
}

/// What a gc deleted.
pub struct Deleted {
    /// Bytes the disk got back.
    pub freed: u64,
    /// Bytes of packed objects dropped that stay in their packs.
    pub packed_bytes: u64,
    pub packs_rewritten: usize,
}

/// Finds what gc would delete: the cache's objects that neither the
/// workspace nor the scope's revisions reference.
pub fn plan(repo: &Repo, opts: &Options) -> Result<GcPlan> {
    // A shared cache holds objects of repositories gc cannot see: only an
    // explicit --force deletes there, never a yes at a prompt.
    let shared = repo.settings.cache_dir.is_some();
    if shared && !opts.force && !opts.dry_run {
        return Err(Error::SharedCache(repo.cache.dir().to_path_buf()));
    }
    let mut history = if opts.scope.reads_history() {
        History::open(&repo.root)?
    } else {
        None
    };
    let refs = referenced(repo, history.as_mut(), &opts.scope, opts.explicit)?;
    let doomed: Vec<Hash> = repo
        .cache
        .list()?
        .into_iter()
        .filter(|h| !refs.keep.contains(h))
        .collect();
    let mut bytes = 0;
    for &h in &doomed {
        bytes += repo.cache.size(h)?.unwrap_or(0);
    }
    Ok(GcPlan {
        warnings: refs.warnings,
        revisions: refs.revisions,
        pointer_blobs: refs.pointer_blobs,
        doomed,
        bytes,
        kept: refs.keep.len(),
    })
}

/// Deletes what `plan` found.
pub fn delete(repo: &Repo, plan: &GcPlan, wait: Duration) -> Result<Deleted> {
    let removed = repo.cache.remove(&plan.doomed, wait)?;
    // No other writer runs while we hold the lock: temp files are leftovers.
    repo.cache.remove_temp_files();
    Ok(Deleted {
        freed: removed.freed(),
        packed_bytes: removed.packed_bytes,
        packs_rewritten: removed.packs_rewritten,
    })
}

/// Every hash the workspace's pointer files reference. An unreadable
/// pointer file or a missing manifest stops gc: deleting on partial
/// knowledge could lose data (the objects a lost manifest lists are
/// unknown, and may come back with it).
pub fn referenced_by_workspace(repo: &Repo) -> Result<HashSet<Hash>> {
    let mut keep = HashSet::new();
    for o in out::resolve(repo, &repo.root, &[], Inside::Refuse)? {
        keep.insert(o.record.hash);
        if o.is_dir() {
            let m = repo.cache.read_manifest(o.record.hash, &o.root)?;
            keep.extend(m.entries().map(|e| e.hash));
        }
    }
    Ok(keep)
}

/// What the workspace and the revisions of `scope` reference. `history`
/// is `None` when the project is not a git repository: then a scope that
/// names revisions explicitly is an error, and the default one keeps the
/// workspace alone.
pub fn referenced(
    repo: &Repo,
    history: Option<&mut History>,
    scope: &Scope,
    explicit: bool,
) -> Result<Referenced> {
    let mut r = Referenced {
        keep: referenced_by_workspace(repo)?,
        ..Referenced::default()
    };
    if !scope.reads_history() {
        return Ok(r);
    }
    let Some(history) = history else {
        if explicit {
            return Err(Error::NotAGitRepository {
                path: repo.root.clone(),
                what: crate::error::GC_OF_HISTORY,
            });
        }
        return Ok(r);
    };
    let revs = revisions(history, scope)?;
    r.revisions = revs.len();
    // Pointer blobs first, over every tree once; then each blob parsed once.
    let mut seen_trees = HashSet::new();
    let mut blobs: Vec<(String, FoundPointer)> = Vec::new();
    let mut seen_blobs = HashSet::new();
    for rev in &revs {
        history.pointers(rev, &mut seen_trees, &mut |p| {
            if seen_blobs.insert(p.blob) {
                blobs.push((rev.name.clone(), p));
            }
        })?;
    }
    // A pointer staged with `git add` and not committed is in the index
    // alone; the next `git commit` needs its objects.
    if scope.every_ref {
        for (index, p) in history.index_pointers()? {
            if seen_blobs.insert(p.blob) {
                blobs.push((index, p));
            }
        }
    }
    r.pointer_blobs = blobs.len();
    let mut manifests: Vec<(Hash, String)> = Vec::new();
    let mut warnings = Vec::new();
    for (rev, p) in &blobs {
        let Some(file) = history.pointer(rev, p, &mut |e| warnings.push(e))? else {
            continue;
        };
        for o in &file.outs {
            if r.keep.insert(o.hash) && o.kind == OutKind::Dir {
                manifests.push((o.hash, format!("{rev}:{}", p.path)));
            }
        }
    }
    // A manifest lists up to 10^6 objects: read them in parallel.
    let listed: Vec<Result<Vec<Hash>>> = manifests
        .par_iter()
        .map(|(h, source)| {
            let m = repo.cache.read_manifest(*h, std::path::Path::new(source))?;
            Ok(m.entries().map(|e| e.hash).collect())
        })
        .collect();
    for l in listed {
        match l {
            Ok(hashes) => r.keep.extend(hashes),
            // A manifest of history that this cache never held (or that a
            // gc already dropped): its objects are unknown, and that
            // revision cannot be checked out from this cache anyway.
            Err(e @ Error::MissingObject { .. }) => warnings.push(e),
            Err(e) => return Err(e),
        }
    }
    r.warnings = warnings;
    Ok(r)
}

/// The revisions `scope` names.
fn revisions(history: &History, scope: &Scope) -> Result<Vec<Rev>> {
    let mut revs = Vec::new();
    for rev in &scope.revs {
        revs.push(history.resolve(rev)?);
    }
    if scope.all_commits {
        revs.extend(history.all_commits()?);
    } else if scope.every_ref {
        revs.extend(history.every_ref()?);
    } else {
        if scope.branches {
            revs.extend(history.branches()?);
        }
        if scope.tags {
            revs.extend(history.tags()?);
        }
    }
    Ok(revs)
}

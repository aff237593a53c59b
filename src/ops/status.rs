//! status: per out, how the workspace differs from the pointer, read-only
//! but for one thing: when re-hashing found the content unchanged, the
//! snapshot is refreshed if no writer holds the lock, so that the next
//! status is one stat walk again (as `git status` refreshes the index).

use crate::error::{Error, Result};
use crate::fsutil::Kind;
use crate::hash::Hash;
use crate::out::Out;
use crate::repo::Repo;
use crate::state::{Snapshot, StateDb};
use crate::workspace::{self, Observation, plan, plan::Root, rows};

use super::{Changes, display_path, expected_of};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Unchanged,
    Modified,
    Missing,
    NotInCache,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unchanged => "unchanged",
            State::Modified => "modified",
            State::Missing => "missing",
            State::NotInCache => "not-in-cache",
        }
    }
}

#[derive(Debug)]
pub struct OutStatus {
    /// The out's path (or the target's inside it), relative to the repository.
    pub path: String,
    pub state: State,
    pub changes: Changes,
    /// Cache objects found corrupt: (hash, path of the file linked to it).
    pub corrupt: Vec<(Hash, String)>,
    /// A snapshot to save because re-hashing found the content unchanged.
    pub refresh: Option<Snapshot>,
}

/// The status of one out, or of the part of it under `o.subpath`.
pub fn status_of(
    repo: &Repo,
    snapshot: Option<Snapshot>,
    o: &Out,
    quiet: bool,
) -> Result<OutStatus> {
    let mut s = OutStatus {
        path: match &o.subpath {
            Some(sub) => display_path(&o.key, sub),
            None => o.key.clone(),
        },
        state: State::Unchanged,
        changes: Changes::default(),
        corrupt: Vec::new(),
        refresh: None,
    };
    let walked = super::walk_out(repo, o, snapshot.as_ref().map_or(0, Snapshot::len))?;
    if let (Some(snap), Some(w)) = (&snapshot, &walked)
        && snap.hash == o.record.hash
        && workspace::matches_snapshot(w, snap)
        && repo.cache.contains(o.record.hash)
    {
        return Ok(s);
    }
    let obs = workspace::observe(&o.root, walked, snapshot.as_ref(), &repo.cache, quiet)?;
    s.corrupt = obs
        .corrupt
        .iter()
        .map(|(h, p)| (*h, display_path(&o.key, p)))
        .collect();
    if obs.root == Root::Missing {
        s.state = State::Missing;
        return Ok(s);
    }
    let expected = match expected_of(repo, o) {
        Ok(m) => m,
        Err(Error::MissingObject { .. }) => {
            s.state = State::NotInCache;
            return Ok(s);
        }
        Err(e) => return Err(e),
    };
    let d = plan::diff(&expected, &obs.files);
    let in_scope = |p: &str| match &o.subpath {
        None => true,
        Some(sub) => {
            p == sub || (p.starts_with(sub.as_str()) && p.as_bytes().get(sub.len()) == Some(&b'/'))
        }
    };
    let names = |paths: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        paths
            .filter(|p| in_scope(p))
            .map(|p| display_path(&o.key, p))
            .collect()
    };
    s.changes.added = names(&mut d.added.iter().map(|&i| &*obs.files[i].path));
    s.changes.modified = names(&mut d.modified.iter().map(|&(i, _)| &*obs.files[i].path));
    s.changes.deleted = names(&mut d.deleted.iter().map(|&j| expected.get(j).path));
    let clean = d.is_clean() && (o.is_dir() || obs.root == Root::NotDir);
    if clean {
        s.refresh = refreshed(o, snapshot.as_ref(), &obs);
        return Ok(s);
    }
    let scoped_clean =
        s.changes.added.is_empty() && s.changes.modified.is_empty() && s.changes.deleted.is_empty();
    s.state = if !o.is_dir() && !repo.cache.contains(o.record.hash) {
        State::NotInCache
    } else if scoped_clean && o.subpath.is_some() {
        State::Unchanged
    } else {
        State::Modified
    };
    Ok(s)
}

/// The snapshot that records a clean observation afresh, when the old one
/// was of this very content and only stats moved (nothing odd to clean up).
fn refreshed(o: &Out, old: Option<&Snapshot>, obs: &Observation) -> Option<Snapshot> {
    let old = old.filter(|s| s.hash == o.record.hash)?;
    if !obs.stale_temps.is_empty() || !obs.corrupt.is_empty() {
        return None;
    }
    if obs.files.iter().any(|a| {
        !matches!(a.stat.kind, Kind::File | Kind::Symlink)
            || a.content_stat().is_none()
            || a.known.hash().is_none()
    }) {
        return None;
    }
    // The stats are the walk's own: no entry was made here, none is
    // re-stat'ed.
    let rows = obs.files.iter().filter_map(rows::row_of);
    let encoded = rows::encode_as_walked(rows, obs.files.len());
    Some(Snapshot::new(
        old.hash,
        old.link_type,
        old.cache_type.clone(),
        0,
        encoded,
    ))
}

/// What `status` found, out by out, in order.
pub struct StatusReport {
    /// The outs asked for.
    pub total: usize,
    /// Each out's status, or the error that stopped it.
    pub outs: Vec<Result<StatusOf>>,
    /// Outs last linked under another `cache.type`: the hint to relink.
    pub relink_hint: Option<String>,
}

/// One out's status and what goes with it.
pub struct StatusOf {
    pub status: OutStatus,
    /// Its pointer file, relative to the repository.
    pub pointer: String,
    /// Cache objects found corrupt (set aside), one error each.
    pub corrupt: Vec<Error>,
}

impl StatusReport {
    /// The outs whose status failed or found corrupt objects.
    pub fn failed(&self) -> usize {
        self.outs
            .iter()
            .filter(|o| !o.as_ref().is_ok_and(|s| s.corrupt.is_empty()))
            .count()
    }
}

/// The status of every out; then, if no writer holds the lock, the
/// snapshots that re-hashing found unchanged are saved.
pub fn run(
    repo: &mut Repo,
    state: &mut StateDb,
    outs: &[Out],
    quiet: bool,
) -> Result<StatusReport> {
    let linker = super::linker(repo);
    let mut report = Vec::with_capacity(outs.len());
    let mut advise = Vec::new();
    let mut refresh = Vec::new();
    for o in outs {
        let snapshot = state.load(&o.key)?;
        if snapshot
            .as_ref()
            .is_some_and(|s| super::checkout::needs_relink(s, &linker))
        {
            advise.push(o.key.clone());
        }
        let one = match status_of(repo, snapshot, o, quiet) {
            Ok(mut s) => {
                let corrupt = s
                    .corrupt
                    .iter()
                    .map(|(h, p)| repo.cache.edited_in_place(*h, p))
                    .collect();
                if let Some(fresh) = s.refresh.take() {
                    refresh.push((o.key.clone(), fresh));
                }
                let pointer = repo.relative(&o.pointer)?;
                Ok(StatusOf {
                    status: s,
                    pointer,
                    corrupt,
                })
            }
            Err(e) => Err(e),
        };
        report.push(one);
    }
    // Re-hashing found these unchanged: record that, if no one is writing.
    if !refresh.is_empty() && repo.try_upgrade() {
        repo.save_snapshots(state, refresh)?;
    }
    Ok(StatusReport {
        total: outs.len(),
        outs: report,
        relink_hint: (!advise.is_empty()).then(|| super::checkout::relink_hint(&advise, &linker)),
    })
}

pub use crate::remote::fetch::OnRemote;

/// `status --remote`: per out, how many of its objects the remote lacks.
pub struct OnRemoteReport {
    /// The remote's name.
    pub remote: String,
    /// Its request and byte counts (`-v`).
    pub stats: String,
    pub outs: Vec<OnRemote>,
}

/// Whether the remote `name` (`None`: `core.remote`) holds all of each
/// out under `targets` (from `cwd`).
pub fn on_remote(
    repo: &Repo,
    cwd: &std::path::Path,
    targets: &[std::path::PathBuf],
    name: Option<&str>,
    threads: usize,
) -> Result<OnRemoteReport> {
    use crate::out::{self, Inside};
    use crate::remote::{self, Purpose, Remote, fetch};
    let spec = remote::spec(&repo.config, name)?;
    let outs = out::resolve(repo, cwd, targets, Inside::Refuse)?;
    let remote = Remote::open(&spec, &repo.root, Purpose::Read)?;
    let states = fetch::compare(repo, &remote, &outs, threads)?;
    Ok(OnRemoteReport {
        stats: remote.stats.line(),
        remote: remote.name,
        outs: states,
    })
}

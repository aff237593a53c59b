//! diff: how the tracked outs differ between two versions (git revisions or
//! the workspace), file by file, read from their manifests. Both manifests
//! are sorted by path, so one merge pass finds what was added, modified and
//! deleted; a deleted and an added path with the same content are a rename.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::history::{History, Rev};
use crate::manifest::{Manifest, ManifestEntry};
use crate::out::{self, Inside, Out};
use crate::paths;
use crate::pointer::{OutKind, OutRecord};
use crate::repo::Repo;
use crate::state::Snapshot;
use crate::workspace::{self, plan::Root};

use super::display_path;

/// One file of a version of an out: path relative to the out ("" for a
/// file out), content hash (`None`: a workspace entry bale cannot account
/// for, such as a foreign symlink), executable bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    pub path: &'a str,
    pub hash: Option<Hash>,
    pub executable: bool,
}

impl<'a> Item<'a> {
    pub fn of(e: &'a ManifestEntry) -> Item<'a> {
        Item {
            path: &e.path,
            hash: Some(e.hash),
            executable: e.executable,
        }
    }
}

/// What changed in one out, paths relative to the out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileChanges {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
    /// (from, to)
    pub renamed: Vec<(String, String)>,
}

impl FileChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.modified.is_empty()
            && self.deleted.is_empty()
            && self.renamed.is_empty()
    }
}

/// Merge-joins two path-sorted lists in one pass; then pairs each deleted
/// path with an added one of the same content as a rename (first come,
/// first paired, in path order).
pub fn merge(old: &[Item<'_>], new: &[Item<'_>]) -> FileChanges {
    use std::cmp::Ordering;
    let (mut deleted, mut added) = (Vec::new(), Vec::new());
    let mut modified = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let ord = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.path.cmp(b.path),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                deleted.push(old[i]);
                i += 1;
            }
            Ordering::Greater => {
                added.push(new[j]);
                j += 1;
            }
            Ordering::Equal => {
                let (a, b) = (old[i], new[j]);
                if a.hash.is_none() || a.hash != b.hash || a.executable != b.executable {
                    modified.push(b.path.to_owned());
                }
                i += 1;
                j += 1;
            }
        }
    }
    let mut by_hash: HashMap<Hash, Vec<usize>> = HashMap::new();
    for (k, a) in added.iter().enumerate().rev() {
        if let Some(h) = a.hash {
            by_hash.entry(h).or_default().push(k);
        }
    }
    let mut paired = vec![false; added.len()];
    let mut c = FileChanges {
        modified,
        ..FileChanges::default()
    };
    for d in &deleted {
        match d.hash.and_then(|h| by_hash.get_mut(&h)).and_then(Vec::pop) {
            Some(k) => {
                paired[k] = true;
                c.renamed
                    .push((d.path.to_owned(), added[k].path.to_owned()));
            }
            None => c.deleted.push(d.path.to_owned()),
        }
    }
    c.added = added
        .iter()
        .zip(&paired)
        .filter(|(_, p)| !**p)
        .map(|(a, _)| a.path.to_owned())
        .collect();
    c
}

/// One side of a diff.
pub enum Version {
    Rev(Rev),
    Workspace,
}

impl Version {
    pub fn name(&self) -> &str {
        match self {
            Version::Rev(r) => &r.name,
            Version::Workspace => "workspace",
        }
    }
}

/// An out as one version holds it.
enum Content {
    /// What a pointer records (a revision, or a workspace out that its
    /// snapshot shows unchanged).
    Recorded(OutRecord),
    /// The files the workspace holds now.
    Files(Vec<(String, Option<Hash>, bool)>),
}

/// The outs of a version by key (path relative to the repository).
fn outs_of(
    repo: &Repo,
    history: Option<&mut History>,
    v: &Version,
    keep: &dyn Fn(&str) -> bool,
    warnings: &mut Vec<Error>,
) -> Result<BTreeMap<String, Content>> {
    let mut outs = BTreeMap::new();
    match v {
        Version::Rev(rev) => {
            let Some(history) = history else {
                return Err(not_git(repo));
            };
            let mut found = Vec::new();
            history.pointers(rev, &mut HashSet::new(), &mut |p| found.push(p))?;
            for p in &found {
                let Some(file) = history.pointer(&rev.name, p, &mut |e| warnings.push(e))? else {
                    continue;
                };
                for o in &file.outs {
                    let key = p.out_key(&o.path);
                    paths::check_relative(&key).map_err(|reason| Error::UnsafePath {
                        path: o.path.clone(),
                        source_file: format!("{}:{}", rev.name, p.path).into(),
                        reason,
                    })?;
                    if keep(&key) {
                        outs.insert(key, Content::Recorded(o.clone()));
                    }
                }
            }
        }
        Version::Workspace => {
            let state = repo.state()?;
            for o in out::resolve(repo, &repo.root, &[], Inside::Refuse)? {
                if keep(&o.key) {
                    let snapshot = state.load(&o.key)?;
                    let c = workspace_content(repo, &o, snapshot)?;
                    outs.insert(o.key.clone(), c);
                }
            }
        }
    }
    Ok(outs)
}

fn not_git(repo: &Repo) -> Error {
    Error::NotAGitRepository {
        path: repo.root.clone(),
        what: "diff of a revision",
    }
}

/// The workspace's content of an out: as recorded when a stat walk
/// reproduces its snapshot of this very pointer hash (as status decides
/// "unchanged"), else the files observed (hashing only suspects).
fn workspace_content(repo: &Repo, o: &Out, snapshot: Option<Snapshot>) -> Result<Content> {
    let walked = super::walk_out(repo, o, snapshot.as_ref().map_or(0, Snapshot::len))?;
    if let (Some(s), Some(w)) = (&snapshot, &walked)
        && s.hash == o.record.hash
        && workspace::matches_snapshot(w, s)
    {
        return Ok(Content::Recorded(o.record.clone()));
    }
    let obs = workspace::observe(&o.root, walked, snapshot.as_ref(), &repo.cache, true)?;
    if obs.root == Root::Missing {
        return Ok(Content::Files(Vec::new()));
    }
    Ok(Content::Files(
        obs.files
            .into_iter()
            .map(|a| {
                let x = a.executable();
                (String::from(a.path), a.known.hash(), x)
            })
            .collect(),
    ))
}

/// One out's changes, paths relative to the repository.
#[derive(Debug, Serialize)]
pub struct OutDiff {
    pub path: String,
    #[serde(flatten)]
    pub changes: FileChanges,
}

/// The changes from `old` to `new` of every out that `keep` selects; the
/// second list holds what did not stop the diff: per-out errors (a
/// manifest missing from the cache), malformed pointer files in history.
pub fn diff(
    repo: &Repo,
    mut history: Option<&mut History>,
    old: &Version,
    new: &Version,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(Vec<OutDiff>, Vec<Error>)> {
    let mut errors = Vec::new();
    let a = outs_of(repo, history.as_deref_mut(), old, keep, &mut errors)?;
    let b = outs_of(repo, history, new, keep, &mut errors)?;
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut outs = Vec::new();
    for key in keys {
        match out_diff(repo, key, a.get(key), b.get(key)) {
            Ok(Some(d)) => outs.push(d),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok((outs, errors))
}

/// The changes summed over the outs.
#[derive(Debug, Default, Serialize)]
pub struct Total {
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    pub renamed: usize,
}

/// What `bale diff` found.
pub struct DiffReport {
    pub outs: Vec<OutDiff>,
    pub total: Total,
    /// What did not stop the diff (`diff`'s second list).
    pub errors: Vec<Error>,
    /// The first target that names no out on either side, by its index.
    pub unmatched: Option<usize>,
}

/// The changes from `old` to `new` of the outs under `targets` (paths from
/// `cwd`, a pointer file standing for its out; none: every out under
/// `cwd`).
pub fn run(
    repo: &Repo,
    history: Option<&mut History>,
    old: &Version,
    new: &Version,
    cwd: &std::path::Path,
    targets: &[std::path::PathBuf],
) -> Result<DiffReport> {
    // Targets as '/'-separated paths relative to the root, pointer names
    // standing for their outs. None: everything under this folder.
    let mut filters = Vec::new();
    for t in targets {
        let abs = paths::normalize(&cwd.join(t));
        let mut rel = repo.relative(&abs)?;
        if let Some(stem) = rel.strip_suffix(crate::pointer::SUFFIX) {
            rel = stem.to_owned();
        }
        filters.push(rel);
    }
    if targets.is_empty() {
        filters.push(repo.relative(cwd)?);
    }
    let under = |key: &str, f: &str| {
        f.is_empty()
            || key == f
            || (key.starts_with(f) && key.as_bytes().get(f.len()) == Some(&b'/'))
            || (f.starts_with(key) && f.as_bytes().get(key.len()) == Some(&b'/'))
    };
    let matched = std::cell::RefCell::new(vec![false; filters.len()]);
    let keep = |key: &str| {
        let mut hit = false;
        for (i, f) in filters.iter().enumerate() {
            if under(key, f) {
                matched.borrow_mut()[i] = true;
                hit = true;
            }
        }
        hit
    };
    let (outs, errors) = diff(repo, history, old, new, &keep)?;
    let unmatched = matched
        .borrow()
        .iter()
        .position(|m| !m)
        .filter(|&i| i < targets.len());
    let total = Total {
        added: outs.iter().map(|o| o.changes.added.len()).sum(),
        modified: outs.iter().map(|o| o.changes.modified.len()).sum(),
        deleted: outs.iter().map(|o| o.changes.deleted.len()).sum(),
        renamed: outs.iter().map(|o| o.changes.renamed.len()).sum(),
    };
    Ok(DiffReport {
        outs,
        total,
        errors,
        unmatched,
    })
}

/// One side's files as items, borrowed from its manifest or its walk.
fn items<'a>(c: Option<&'a Content>, m: Option<&'a Manifest>) -> Vec<Item<'a>> {
    match (c, m) {
        (_, Some(m)) => m
            .entries()
            .map(|e| Item {
                path: e.path,
                hash: Some(e.hash),
                executable: e.executable,
            })
            .collect(),
        (Some(Content::Files(f)), None) => f
            .iter()
            .map(|(p, h, x)| Item {
                path: p,
                hash: *h,
                executable: *x,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The manifest a recorded out stands for (a file out: its one entry).
fn manifest_of(repo: &Repo, key: &str, r: &OutRecord) -> Result<Manifest> {
    match r.kind {
        OutKind::Dir => repo.cache.read_manifest(r.hash, std::path::Path::new(key)),
        OutKind::File => Ok(Manifest::single_file(r.hash, r.size, r.executable)),
    }
}

fn out_diff(
    repo: &Repo,
    key: &str,
    a: Option<&Content>,
    b: Option<&Content>,
) -> Result<Option<OutDiff>> {
    if let (Some(Content::Recorded(x)), Some(Content::Recorded(y))) = (a, b)
        && x.hash == y.hash
        && x.kind == y.kind
        && x.executable == y.executable
    {
        return Ok(None);
    }
    // Both sides' manifests are read and decoded at once.
    let manifest = |c: Option<&Content>| match c {
        Some(Content::Recorded(r)) => manifest_of(repo, key, r).map(Some),
        _ => Ok(None),
    };
    let (ma, mb) = rayon::join(|| manifest(a), || manifest(b));
    let (ma, mb) = (ma?, mb?);
    let c = merge(&items(a, ma.as_ref()), &items(b, mb.as_ref()));
    if c.is_empty() {
        return Ok(None);
    }
    let name = |p: &String| display_path(key, p);
    Ok(Some(OutDiff {
        path: key.to_owned(),
        changes: FileChanges {
            added: c.added.iter().map(name).collect(),
            modified: c.modified.iter().map(name).collect(),
            deleted: c.deleted.iter().map(name).collect(),
            renamed: c.renamed.iter().map(|(f, t)| (name(f), name(t))).collect(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<'a>(v: &'a [(&'a str, u128)]) -> Vec<Item<'a>> {
        v.iter()
            .map(|(p, h)| Item {
                path: p,
                hash: Some(Hash(*h)),
                executable: false,
            })
            .collect()
    }

    #[test]
    fn adds_edits_deletes_and_renames_in_one_pass() {
        let old = [("a", 1), ("b", 2), ("c", 3), ("d/x", 4)];
        let new = [("a", 1), ("b", 20), ("d/y", 4), ("e", 5)];
        let c = merge(&items(&old), &items(&new));
        assert_eq!(c.modified, ["b"]);
        assert_eq!(c.deleted, ["c"]);
        assert_eq!(c.added, ["e"]);
        assert_eq!(c.renamed, [("d/x".to_owned(), "d/y".to_owned())]);
    }

    #[test]
    fn an_executable_bit_is_an_edit_and_an_unknown_hash_never_equal() {
        let old = items(&[("a", 1), ("b", 2)]);
        let mut new = old.clone();
        new[0].executable = true;
        new[1].hash = None;
        let c = merge(&old, &new);
        assert_eq!(c.modified, ["a", "b"]);
        let c = merge(&new, &new);
        assert_eq!(
            c.modified,
            ["b"],
            "content bale cannot read is not known equal"
        );
    }

    #[test]
    fn a_file_that_became_a_folder_and_back() {
        let old = [("x", 1), ("x.txt", 2)];
        let new = [("x.txt", 2), ("x/inner", 3)];
        let c = merge(&items(&old), &items(&new));
        assert_eq!(
            (c.deleted, c.added),
            (vec!["x".to_owned()], vec!["x/inner".to_owned()])
        );
        let back = merge(&items(&new), &items(&old));
        assert_eq!(back.deleted, ["x/inner"]);
        assert_eq!(back.added, ["x"]);
    }

    #[test]
    fn an_out_that_became_a_file_or_a_folder() {
        // A file out is one entry with path "": it sorts before every file
        // of a folder out.
        let file = [("", 1)];
        let folder = [("a", 1), ("b", 2)];
        let c = merge(&items(&file), &items(&folder));
        assert_eq!(c.renamed, [(String::new(), "a".to_owned())]);
        assert_eq!(c.added, ["b"]);
        let c = merge(&items(&folder), &items(&[("", 9)]));
        assert_eq!(c.deleted, ["a", "b"]);
        assert_eq!(c.added, [""]);
    }

    #[test]
    fn duplicates_of_one_content_pair_once_each() {
        let old = [("a", 7), ("b", 7)];
        let new = [("c", 7)];
        let c = merge(&items(&old), &items(&new));
        assert_eq!(c.renamed, [("a".to_owned(), "c".to_owned())]);
        assert_eq!(c.deleted, ["b"]);
        assert!(c.added.is_empty());
    }

    #[test]
    fn a_million_entries_each_side() {
        let n = 1_000_000;
        let paths: Vec<String> = (0..n)
            .map(|i| format!("d{:03}/f{i:07}", i % 1000))
            .collect();
        let mut sorted: Vec<&String> = paths.iter().collect();
        sorted.sort();
        let old: Vec<Item> = sorted
            .iter()
            .enumerate()
            .map(|(i, p)| Item {
                path: p,
                hash: Some(Hash(i as u128)),
                executable: false,
            })
            .collect();
        let mut new = old.clone();
        new[10].hash = Some(Hash(u128::MAX));
        new.remove(500);
        let c = merge(&old, &new);
        assert_eq!(c.modified.len(), 1);
        assert_eq!(c.deleted.len(), 1);
        assert!(c.added.is_empty() && c.renamed.is_empty());
    }
}

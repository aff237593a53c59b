//! Pointer files as git revisions hold them, read with gix (git is never
//! run). History is read by distinct objects: a tree seen before is not
//! walked again, and each pointer blob is parsed once, however many
//! commits hold it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::pointer::{self, PointerFile};

/// The git repository around a bale repository.
pub struct History {
    repo: gix::Repository,
    /// The bale root relative to the git work tree, by components.
    prefix: Vec<String>,
    /// Pointer blobs parsed so far; `None`: malformed (warned once).
    parsed: HashMap<ObjectId, Option<PointerFile>>,
}

/// A revision to read: its name for messages and its tree.
#[derive(Clone, Debug)]
pub struct Rev {
    pub name: String,
    pub tree: ObjectId,
}

/// A pointer file found in a tree: its path relative to the bale root and
/// its blob.
#[derive(Clone, Debug)]
pub struct FoundPointer {
    pub path: String,
    pub blob: ObjectId,
}

impl FoundPointer {
    /// The key (path relative to the bale root) of an out this pointer
    /// file lists as `out_path`: outs are named relative to its folder.
    pub fn out_key(&self, out_path: &str) -> String {
        match self.path.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{out_path}"),
            None => out_path.to_owned(),
        }
    }
}

/// Whether a file of this name is a pointer file.
fn is_pointer_name(name: &str) -> bool {
    name.len() > pointer::SUFFIX.len() && name.ends_with(pointer::SUFFIX)
}

fn git_error(what: impl Into<String>) -> impl FnOnce(&dyn std::fmt::Display) -> Error {
    let what = what.into();
    move |e| Error::Git {
        what,
        message: e.to_string(),
    }
}

macro_rules! git {
    ($what:expr) => {
        |e| git_error($what)(&e)
    };
}

impl History {
    /// The git repository whose work tree holds `root`; `Ok(None)` when
    /// there is none (no `.git` at or above `root`). A `.git` that gix
    /// cannot open is an error, never "no history": gc would then keep too
    /// little.
    pub fn open(root: &Path) -> Result<Option<History>> {
        let has_git = root.ancestors().any(|a| a.join(".git").exists());
        if !has_git {
            return Ok(None);
        }
        let repo = gix::discover(root).map_err(git!(format!(
            "open the git repository around {}",
            root.display()
        )))?;
        let prefix = match repo.workdir() {
            Some(w) => {
                let w = std::fs::canonicalize(w).map_err(git!("find the git work tree"))?;
                let r = std::fs::canonicalize(root).map_err(git!("find the repository"))?;
                let rel = r.strip_prefix(&w).unwrap_or(Path::new(""));
                rel.iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Some(History {
            repo,
            prefix,
            parsed: HashMap::new(),
        }))
    }

    /// The git work tree, its real path (`None` for a bare repository).
    pub fn work_tree(&self) -> Option<PathBuf> {
        std::fs::canonicalize(self.repo.workdir()?).ok()
    }

    /// The tree of `rev` (anything `git rev-parse` takes that names a
    /// commit or tree).
    pub fn resolve(&self, rev: &str) -> Result<Rev> {
        let bad = |e: &dyn std::fmt::Display| {
            if self.beyond_shallow_boundary(rev) {
                Error::ShallowHistory {
                    rev: rev.to_owned(),
                }
            } else {
                Error::BadRevision {
                    rev: rev.to_owned(),
                    message: e.to_string(),
                }
            }
        };
        let id = self.repo.rev_parse_single(rev).map_err(|e| bad(&e))?;
        let tree = id
            .object()
            .map_err(|e| bad(&e))?
            .peel_to_tree()
            .map_err(|e| bad(&e))?;
        Ok(Rev {
            name: rev.to_owned(),
            tree: tree.id,
        })
    }

    /// Whether `rev`, which did not resolve, may name history a shallow
    /// clone lacks: the repository is shallow and `rev` walks from a
    /// commit to its ancestors (`~`, `^`).
    fn beyond_shallow_boundary(&self, rev: &str) -> bool {
        rev.contains(['~', '^']) && self.repo.is_shallow().unwrap_or(false)
    }

    fn tree_of_commit(&self, commit: ObjectId) -> Result<ObjectId> {
        let c = self
            .repo
            .find_commit(commit)
            .map_err(git!(format!("read the commit {commit}")))?;
        c.tree_id()
            .map(|id| id.detach())
            .map_err(git!(format!("read the commit {commit}")))
    }

    /// The commits that references under `prefix` point to (tags peeled;
    /// a reference to anything but a commit is skipped), with their names.
    fn ref_tips(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let refs = self
            .repo
            .references()
            .map_err(git!("read the references"))?;
        let iter = refs.prefixed(prefix).map_err(git!("read the references"))?;
        let mut out = Vec::new();
        for r in iter {
            let mut r = r.map_err(|e| git_error("read the references")(&e))?;
            let name = r.name().shorten().to_string();
            let Ok(commit) = r.peel_to_commit() else {
                continue;
            };
            out.push((name, commit.id));
        }
        Ok(out)
    }

    fn revs_of(&self, tips: Vec<(String, ObjectId)>) -> Result<Vec<Rev>> {
        tips.into_iter()
            .map(|(name, c)| {
                Ok(Rev {
                    name,
                    tree: self.tree_of_commit(c)?,
                })
            })
            .collect()
    }

    /// Every local branch tip.
    pub fn branches(&self) -> Result<Vec<Rev>> {
        self.revs_of(self.ref_tips("refs/heads/")?)
    }

    /// Every tag (peeled to its commit).
    pub fn tags(&self) -> Result<Vec<Rev>> {
        self.revs_of(self.ref_tips("refs/tags/")?)
    }

    /// What the default gc keeps besides the workspace, as revisions: the
    /// commit of every reference under `refs/` (branches, tags,
    /// remote-tracking branches, anything else), every entry of the stash
    /// (`stash@{N}`, read from its reflog) with its index and untracked
    /// commits, and the HEAD of every worktree. Each commit once.
    pub fn every_ref(&self) -> Result<Vec<Rev>> {
        let mut tips = self.ref_tips("refs/")?;
        tips.extend(self.stash_entries()?);
        for (name, wt) in self.worktrees()? {
            if let Ok(c) = wt.head_commit() {
                tips.push((format!("HEAD of {name}"), c.id));
            }
        }
        let mut seen = HashSet::new();
        tips.retain(|(_, c)| seen.insert(*c));
        self.revs_of(tips)
    }

    /// Every entry of the stash's reflog, and for each its second and
    /// further parents: the commit of the index as it was stashed, and of
    /// the untracked files (`git stash -u`). A staged-only change lives in
    /// the index commit alone.
    fn stash_entries(&self) -> Result<Vec<(String, ObjectId)>> {
        let what = "read the stash's reflog";
        let Some(stash) = self
            .repo
            .try_find_reference("refs/stash")
            .map_err(git!(what))?
        else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        let mut platform = stash.log_iter();
        if let Some(lines) = platform.all().map_err(git!(what))? {
            for line in lines {
                let line = line.map_err(|e| git_error(what)(&e))?;
                entries.push(line.new_oid().to_owned());
            }
        }
        // The reflog lists the oldest first; stash@{0} is the newest.
        let n = entries.len();
        let mut out = Vec::new();
        for (i, id) in entries.into_iter().enumerate() {
            let name = format!("stash@{{{}}}", n - 1 - i);
            let commit = self
                .repo
                .find_commit(id)
                .map_err(git!(format!("read {name}")))?;
            for (p, parent) in commit.parent_ids().enumerate().skip(1) {
                out.push((format!("{name}^{}", p + 1), parent.detach()));
            }
            out.push((name, id));
        }
        Ok(out)
    }

    /// The repository of every worktree, the one opened first, with a name
    /// for messages.
    fn worktrees(&self) -> Result<Vec<(String, gix::Repository)>> {
        let what = "list the git worktrees";
        let mut out = vec![("this worktree".to_owned(), self.repo.clone())];
        for wt in self.repo.worktrees_including_main().map_err(git!(what))? {
            let wt = wt.map_err(|e| git_error(what)(&e))?;
            if wt.git_dir() == self.repo.git_dir() {
                continue;
            }
            let name = match wt.workdir() {
                Some(w) => format!("the worktree {}", w.display()),
                None => format!("the repository {}", wt.git_dir().display()),
            };
            out.push((name, wt));
        }
        Ok(out)
    }

    /// The pointer files staged in the git index of every worktree (under
    /// the bale root, `.bale` folders skipped), each with the name of its
    /// index.
    pub fn index_pointers(&self) -> Result<Vec<(String, FoundPointer)>> {
        use gix::index::entry::{Flags, Mode};
        let mut out = Vec::new();
        for (name, wt) in self.worktrees()? {
            let index_name = format!("the git index of {name}");
            let index = wt
                .index_or_empty()
                .map_err(git!(format!("read {index_name}")))?;
            for e in index.entries() {
                // An intent-to-add entry names no blob yet; a sparse entry
                // is a folder.
                if !(e.mode == Mode::FILE || e.mode == Mode::FILE_EXECUTABLE)
                    || e.flags.contains(Flags::INTENT_TO_ADD)
                {
                    continue;
                }
                let Ok(path) = std::str::from_utf8(e.path(&index)) else {
                    continue;
                };
                let Some(rel) = self.below_root(path) else {
                    continue;
                };
                let in_bale_dir = rel.split('/').any(|c| c == crate::repo::BALE_DIR);
                let file_name = rel.rsplit('/').next().unwrap_or(rel);
                if !in_bale_dir && is_pointer_name(file_name) {
                    out.push((
                        index_name.clone(),
                        FoundPointer {
                            path: rel.to_owned(),
                            blob: e.id,
                        },
                    ));
                }
            }
        }
        Ok(out)
    }

    /// `path` (relative to the git work tree, '/' separators) relative to
    /// the bale root; `None` when it is not below it.
    fn below_root<'a>(&self, path: &'a str) -> Option<&'a str> {
        let mut rest = path;
        for c in &self.prefix {
            rest = rest.strip_prefix(c.as_str())?.strip_prefix('/')?;
        }
        Some(rest)
    }

    /// Every commit reachable from any reference or HEAD.
    pub fn all_commits(&self) -> Result<Vec<Rev>> {
        let mut tips: Vec<ObjectId> = self
            .ref_tips("refs/")?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        if let Ok(c) = self.repo.head_commit() {
            tips.push(c.id);
        }
        if tips.is_empty() {
            return Ok(Vec::new());
        }
        let walk = self
            .repo
            .rev_walk(tips)
            .all()
            .map_err(git!("walk the commits"))?;
        let mut out = Vec::new();
        for info in walk {
            let info = info.map_err(|e| git_error("walk the commits")(&e))?;
            let commit = info.object().map_err(git!("read a commit"))?;
            let tree = commit
                .tree_id()
                .map_err(git!(format!("read the commit {}", info.id)))?;
            out.push(Rev {
                name: info.id.to_hex_with_len(12).to_string(),
                tree: tree.detach(),
            });
        }
        Ok(out)
    }

    /// The subtree of `tree` at the bale root; `None` when the revision has
    /// no such folder.
    fn bale_root_tree(&self, tree: ObjectId) -> Result<Option<ObjectId>> {
        let mut at = tree;
        for name in &self.prefix {
            let t = self.repo.find_tree(at).map_err(git!("read a tree"))?;
            let mut next = None;
            for e in t.iter() {
                let e = e.map_err(|e| git_error("read a tree")(&e))?;
                if e.mode().is_tree() && e.filename() == name.as_str() {
                    next = Some(e.oid().to_owned());
                    break;
                }
            }
            match next {
                Some(n) => at = n,
                None => return Ok(None),
            }
        }
        Ok(Some(at))
    }

    /// Calls `found` for every pointer file of `rev` under the bale root
    /// (`.bale` folders skipped), not walking again a tree in `seen`.
    pub fn pointers(
        &self,
        rev: &Rev,
        seen: &mut HashSet<ObjectId>,
        found: &mut dyn FnMut(FoundPointer),
    ) -> Result<()> {
        match self.bale_root_tree(rev.tree)? {
            Some(t) => self.walk(t, "", seen, found),
            None => Ok(()),
        }
    }

    fn walk(
        &self,
        tree: ObjectId,
        dir: &str,
        seen: &mut HashSet<ObjectId>,
        found: &mut dyn FnMut(FoundPointer),
    ) -> Result<()> {
        if !seen.insert(tree) {
            return Ok(());
        }
        let t = self.repo.find_tree(tree).map_err(git!("read a tree"))?;
        let mut subtrees = Vec::new();
        for e in t.iter() {
            let e = e.map_err(|e| git_error("read a tree")(&e))?;
            // Names that are not UTF-8 cannot be outs (bale records paths
            // as UTF-8).
            let Ok(name) = std::str::from_utf8(e.filename()) else {
                continue;
            };
            let path = if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            };
            if e.mode().is_tree() {
                if name != crate::repo::BALE_DIR {
                    subtrees.push((e.oid().to_owned(), path));
                }
            } else if e.mode().is_blob() && is_pointer_name(name) {
                found(FoundPointer {
                    path,
                    blob: e.oid().to_owned(),
                });
            }
        }
        drop(t);
        for (id, path) in subtrees {
            self.walk(id, &path, seen, found)?;
        }
        Ok(())
    }

    /// The parsed pointer file of blob `p`, read once per blob; `Ok(None)`
    /// when it is malformed (`warn` is told why, once per blob).
    pub fn pointer(
        &mut self,
        rev: &str,
        p: &FoundPointer,
        warn: &mut dyn FnMut(Error),
    ) -> Result<Option<&PointerFile>> {
        if !self.parsed.contains_key(&p.blob) {
            let blob = self
                .repo
                .find_blob(p.blob)
                .map_err(git!(format!("read {rev}:{}", p.path)))?;
            let name = PathBuf::from(format!("{rev}:{}", p.path));
            let parsed = match std::str::from_utf8(&blob.data) {
                Ok(text) => PointerFile::parse(text, &name).map_err(&mut *warn).ok(),
                Err(_) => {
                    warn(Error::MalformedPointer {
                        path: name,
                        message: "not UTF-8".into(),
                    });
                    None
                }
            };
            self.parsed.insert(p.blob, parsed);
        }
        Ok(self.parsed.get(&p.blob).and_then(Option::as_ref))
    }
}

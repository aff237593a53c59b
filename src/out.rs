//! Outs and the targets that name them: an out's path, its pointer file's
//! path, or a folder holding pointer files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::paths;
use crate::pointer::{self, OutRecord, PointerFile};
use crate::repo::{BALE_DIR, Repo};

/// One tracked out, as read from its pointer file.
#[derive(Clone, Debug)]
pub struct Out {
    /// The pointer file (absolute).
    pub pointer: PathBuf,
    /// Which of the pointer file's `outs` this is.
    pub index: usize,
    pub record: OutRecord,
    /// The out in the workspace (absolute).
    pub root: PathBuf,
    /// The out's path relative to the repository, '/'-separated: its name
    /// in the state DB and in messages.
    pub key: String,
    /// When a target named a path inside the out: that path, relative to
    /// the out (only commands that look at part of an out accept one).
    pub subpath: Option<String>,
}

impl Out {
    pub fn is_dir(&self) -> bool {
        self.record.kind == pointer::OutKind::Dir
    }
}

/// The manifest an out's pointer names (for a file out, its one entry).
pub fn expected_of(repo: &Repo, o: &Out) -> Result<Manifest> {
    if o.is_dir() {
        repo.cache.read_manifest(o.record.hash, &o.root)
    } else {
        Ok(Manifest::single_file(
            o.record.hash,
            o.record.size,
            o.record.executable,
        ))
    }
}

/// `key/rel`, or `key` for the out's root: a path relative to the
/// repository ('/'-separated, as it is: quote it for a line of text).
pub fn display_path(key: &str, rel: &str) -> String {
    if rel.is_empty() {
        key.to_owned()
    } else {
        format!("{key}/{rel}")
    }
}

/// Every pointer file under `dir`, skipping `.git`, `.bale` and the
/// folders of tracked outs (data is not searched for pointers).
pub fn find_pointers(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let walker = WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            if e.depth() > 0 && (name == ".git" || name == BALE_DIR) {
                return false;
            }
            !(e.depth() > 0 && e.file_type().is_dir() && pointer::pointer_path(e.path()).is_file())
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::io("read the folder", path, e.into())
        })?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file()
            && name.len() > pointer::SUFFIX.len()
            && name.ends_with(pointer::SUFFIX)
            && !crate::fsutil::temp::is_temp_name(&name)
        {
            found.push(entry.into_path());
        }
    }
    Ok(found)
}

fn outs_of_pointer(repo: &Repo, pointer: &Path) -> Result<Vec<Out>> {
    let file = PointerFile::read(pointer)?;
    let dir = pointer.parent().unwrap_or(Path::new("/"));
    file.outs
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            let root = dir.join(&record.path);
            let key = repo.relative(&root)?;
            paths::check_relative(&key).map_err(|reason| Error::UnsafePath {
                path: record.path.clone(),
                source_file: pointer.to_path_buf(),
                reason,
            })?;
            check_no_symlink_on_the_way(&repo.root, &root)?;
            check_claim(repo, pointer, &record.path, &key, &root)?;
            Ok(Out {
                pointer: pointer.to_path_buf(),
                index,
                record,
                root,
                key,
                subpath: None,
            })
        })
        .collect()
}

/// Refuses an out that a pointer file may not name, with `add`'s
/// refusals: a `.gitignore` file, a pointer file (itself included), a path
/// inside another out, an out whose own pointer file is another one.
fn check_claim(repo: &Repo, pointer: &Path, listed: &str, key: &str, root: &Path) -> Result<()> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let refuse = |reason| {
        Err(Error::UnsafePath {
            path: listed.to_owned(),
            source_file: pointer.to_path_buf(),
            reason,
        })
    };
    if name == ".gitignore" {
        return refuse("a .gitignore file cannot be an out (bale edits them; git tracks them)");
    }
    if name.ends_with(pointer::SUFFIX) {
        return refuse("a pointer file cannot be an out (git tracks pointer files)");
    }
    if let Some((other, _)) = enclosing_out(repo, root) {
        return Err(Error::OutsOverlap {
            pointer: pointer.to_path_buf(),
            out: key.to_owned(),
            other_pointer: other.clone(),
            other_out: repo.relative(&other.with_extension(""))?,
        });
    }
    let own = pointer::pointer_path(root);
    if own != pointer && own.is_file() {
        return Err(Error::ClaimedTwice {
            out: key.to_owned(),
            pointers: vec![own, pointer.to_path_buf()],
        });
    }
    Ok(())
}

/// Refuses outs of different pointer files that overlap: the same out
/// claimed twice, or one inside another.
fn check_no_overlap(outs: &[Out]) -> Result<()> {
    use std::collections::HashMap;
    let by_key: HashMap<&str, &Out> = outs.iter().map(|o| (o.key.as_str(), o)).collect();
    for o in outs {
        if let Some(other) = by_key.get(o.key.as_str())
            && other.pointer != o.pointer
        {
            return Err(Error::ClaimedTwice {
                out: o.key.clone(),
                pointers: vec![other.pointer.clone(), o.pointer.clone()],
            });
        }
        for (k, _) in o.key.match_indices('/') {
            if let Some(outer) = by_key.get(&o.key[..k]) {
                return Err(Error::OutsOverlap {
                    pointer: o.pointer.clone(),
                    out: o.key.clone(),
                    other_pointer: outer.pointer.clone(),
                    other_out: outer.key.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Refuses a path that goes through a symlinked folder below the
/// repository root: the text of a path may stay inside the repository while
/// the file system takes it anywhere.
pub fn check_no_symlink_on_the_way(root: &Path, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(c) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        at.push(c);
        if at
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(Error::SymlinkOnPath {
                path: path.to_path_buf(),
                symlink: at,
            });
        }
    }
    Ok(())
}

/// The tracked out that holds `abs` (strictly inside it), with the path of
/// `abs` relative to the out.
pub fn enclosing_out(repo: &Repo, abs: &Path) -> Option<(PathBuf, String)> {
    let mut ancestor = abs.parent();
    while let Some(a) = ancestor {
        if a == repo.root || !a.starts_with(&repo.root) {
            return None;
        }
        let p = pointer::pointer_path(a);
        if p.is_file() {
            let rel = abs.strip_prefix(a).ok().and_then(paths::to_slash)?;
            return Some((p, rel));
        }
        ancestor = a.parent();
    }
    None
}

/// Whether a target may name a path inside an out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inside {
    /// Only whole outs (checkout, commit): a path inside one is an error.
    Refuse,
    /// Part of an out (status): the out, with `subpath` set.
    Allow,
}

/// Resolves targets (relative to `cwd`) to outs; no targets means every
/// pointer file under `cwd`, or the out that `cwd` is inside. A pointer
/// that cannot be read is an error.
pub fn resolve(repo: &Repo, cwd: &Path, targets: &[PathBuf], inside: Inside) -> Result<Vec<Out>> {
    let mut pointers: Vec<(PathBuf, Option<PathBuf>, Option<String>)> = Vec::new();
    if targets.is_empty() {
        let found = find_pointers(cwd)?;
        if found.is_empty() {
            let here = pointer::pointer_path(cwd);
            if here.is_file() {
                pointers.push((here, Some(cwd.to_path_buf()), None));
            } else if let Some((p, _)) = enclosing_out(repo, cwd) {
                // Run inside an out: that whole out, as git status shows
                // the whole tree from a subfolder.
                pointers.push((p.clone(), Some(p.with_extension("")), None));
            }
        }
        pointers.extend(found.into_iter().map(|p| (p, None, None)));
    }
    for t in targets {
        let abs = paths::normalize(&cwd.join(t));
        check_no_symlink_on_the_way(&repo.root, &abs)?;
        if let Some((p, sub)) = enclosing_out(repo, &abs) {
            let out_root = p.with_extension("");
            if inside == Inside::Refuse {
                return Err(Error::WholeOutsOnly {
                    path: t.clone(),
                    out: out_root,
                });
            }
            pointers.push((p, Some(out_root), Some(sub)));
            continue;
        }
        let is_pointer = abs.extension().is_some_and(|e| e == pointer::EXTENSION);
        if is_pointer && abs.is_file() {
            pointers.push((abs, None, None));
        } else if pointer::pointer_path(&abs).is_file() {
            pointers.push((pointer::pointer_path(&abs), Some(abs), None));
        } else if abs.is_dir() {
            let found = find_pointers(&abs)?;
            if found.is_empty() {
                return Err(Error::NotTracked(t.clone()));
            }
            pointers.extend(found.into_iter().map(|p| (p, None, None)));
        } else if abs.symlink_metadata().is_ok() {
            return Err(Error::NotTracked(t.clone()));
        } else {
            return Err(Error::NotFound(t.clone()));
        }
    }
    let mut seen = HashSet::new();
    let mut outs = Vec::new();
    for (pointer, only, subpath) in pointers {
        for mut out in outs_of_pointer(repo, &pointer)? {
            if only.as_ref().is_some_and(|root| *root != out.root) {
                continue;
            }
            out.subpath = subpath.clone();
            if seen.insert((out.key.clone(), out.pointer.clone(), out.subpath.clone())) {
                outs.push(out);
            }
        }
    }
    check_no_overlap(&outs)?;
    Ok(outs)
}

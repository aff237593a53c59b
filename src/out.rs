//! Outs and the targets that name them: an out's path, its pointer file's
//! path, or a folder holding pointer files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::error::{Error, Result};
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
}

impl Out {
    pub fn is_dir(&self) -> bool {
        self.record.kind == pointer::OutKind::Dir
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
            && name.len() > pointer::EXTENSION.len() + 1
            && name.ends_with(&format!(".{}", pointer::EXTENSION))
            && !name.starts_with(crate::workspace::walk::TEMP_PREFIX)
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
            Ok(Out {
                pointer: pointer.to_path_buf(),
                index,
                record,
                root,
                key,
            })
        })
        .collect()
}

/// Resolves targets (relative to `cwd`) to outs; no targets means every
/// pointer file under `cwd`. A pointer that cannot be read is an error.
pub fn resolve(repo: &Repo, cwd: &Path, targets: &[PathBuf]) -> Result<Vec<Out>> {
    let mut pointers: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    if targets.is_empty() {
        pointers.extend(find_pointers(cwd)?.into_iter().map(|p| (p, None)));
    }
    for t in targets {
        let abs = paths::normalize(&cwd.join(t));
        let is_pointer = abs.extension().is_some_and(|e| e == pointer::EXTENSION);
        if is_pointer && abs.is_file() {
            pointers.push((abs, None));
        } else if pointer::pointer_path(&abs).is_file() {
            pointers.push((pointer::pointer_path(&abs), Some(abs)));
        } else if abs.is_dir() {
            let found = find_pointers(&abs)?;
            if found.is_empty() {
                return Err(Error::NotTracked(t.clone()));
            }
            pointers.extend(found.into_iter().map(|p| (p, None)));
        } else if abs.symlink_metadata().is_ok() {
            return Err(Error::NotTracked(t.clone()));
        } else {
            return Err(Error::NotFound(t.clone()));
        }
    }
    let mut seen = HashSet::new();
    let mut outs = Vec::new();
    for (pointer, only) in pointers {
        for out in outs_of_pointer(repo, &pointer)? {
            if only.as_ref().is_some_and(|root| *root != out.root) {
                continue;
            }
            if seen.insert(out.key.clone()) {
                outs.push(out);
            }
        }
    }
    Ok(outs)
}

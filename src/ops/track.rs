//! add: which paths may become outs, and the pointer file and `.gitignore`
//! line that make one.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::out;
use crate::paths;
use crate::pointer::{self, OutKind, OutRecord, PointerFile};
use crate::repo::{BALE_DIR, Repo};
use crate::workspace::Recorded;

/// Checks that `abs` (named `given` by the user) may be tracked, and
/// returns its key. An out is a file or folder of the user's below the
/// root, not a pointer file, a `.gitignore`, or anything of `.bale`/`.git`;
/// reached without a symlinked folder on the way; not inside another out.
/// (That it holds no out is checked by the walk that records it.)
pub fn check_new_out(repo: &Repo, abs: &Path, given: &Path) -> Result<String> {
    if abs.symlink_metadata().is_err() {
        return Err(Error::NotFound(given.to_path_buf()));
    }
    check_out_path(repo, abs, given)
}

/// `check_new_out` for a path that need not exist yet (import's DEST).
pub fn check_out_path(repo: &Repo, abs: &Path, given: &Path) -> Result<String> {
    let key = repo.relative(abs)?;
    if key.is_empty() {
        return Err(Error::Unsupported {
            path: abs.to_path_buf(),
            reason: "the repository root itself cannot be an out; add the folders in it".into(),
        });
    }
    let name = key.rsplit('/').next().unwrap_or(&key);
    if key.split('/').any(|c| c == BALE_DIR || c == ".git") {
        return Err(Error::Reserved {
            path: given.to_path_buf(),
            reason: "it is part of bale's or git's own folder",
        });
    }
    if name.ends_with(pointer::SUFFIX) {
        return Err(Error::Reserved {
            path: given.to_path_buf(),
            reason: "it is a pointer file, which git tracks",
        });
    }
    if name == ".gitignore" {
        return Err(Error::Reserved {
            path: given.to_path_buf(),
            reason: "bale edits .gitignore files; git tracks them",
        });
    }
    paths::check_relative(&key).map_err(|reason| Error::Unsupported {
        path: abs.to_path_buf(),
        reason: reason.into(),
    })?;
    out::check_no_symlink_on_the_way(&repo.root, abs)?;
    if let Some((p, _)) = out::enclosing_out(repo, abs) {
        return Err(Error::InsideOut {
            path: given.to_path_buf(),
            out: p.with_extension(""),
        });
    }
    Ok(key)
}

/// Writes what was recorded for the out `abs` into its pointer file,
/// keeping the other outs and unknown keys of an existing one, then makes
/// git ignore the out.
pub fn write_pointer(abs: &Path, key: &str, r: &Recorded) -> Result<()> {
    write_pointer_with(abs, key, |o| r.update(o))
}

/// The out `key`'s record in its pointer file, if the file lists it.
pub fn existing_record(abs: &Path, key: &str) -> Result<Option<(usize, OutRecord)>> {
    let pointer_path = pointer::pointer_path(abs);
    if !pointer_path.is_file() {
        return Ok(None);
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    let file = PointerFile::read(&pointer_path)?;
    Ok(file
        .outs
        .into_iter()
        .enumerate()
        .find(|(_, o)| o.path == name))
}

/// `write_pointer`, with `update` filling in the out's record.
pub fn write_pointer_with(
    abs: &Path,
    key: &str,
    update: impl FnOnce(&mut OutRecord),
) -> Result<()> {
    let pointer_path = pointer::pointer_path(abs);
    let mut file = if pointer_path.is_file() {
        PointerFile::read(&pointer_path)?
    } else {
        PointerFile {
            outs: Vec::new(),
            extra: Default::default(),
        }
    };
    let name = key.rsplit('/').next().unwrap_or(key).to_owned();
    match file.outs.iter_mut().find(|o| o.path == name) {
        Some(o) => update(o),
        None => {
            let mut o = OutRecord {
                path: name.clone(),
                hash: crate::hash::Hash(0),
                kind: OutKind::File,
                size: 0,
                nfiles: None,
                executable: false,
                skip_symlinks: false,
                extra: Default::default(),
            };
            update(&mut o);
            file.outs.push(o);
        }
    }
    file.write(&pointer_path)?;
    ignore_in_git(abs, &name)
}

/// Whether git already tracks files under the out `key` (which the new
/// `.gitignore` line does not undo). Asks `git ls-files` when the root is in
/// a git work tree and git is installed; otherwise says no: it only decides
/// whether a hint is printed.
pub fn tracked_by_git(repo: &Repo, key: &str) -> bool {
    if !repo.root.ancestors().any(|a| a.join(".git").exists()) {
        return false;
    }
    std::process::Command::new("git")
        .arg("-C")
        .arg(&repo.root)
        .args(["ls-files", "-z", "--", key])
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// Appends `/name` to the `.gitignore` beside the out, once.
pub fn ignore_in_git(out: &Path, name: &str) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("/"));
    let gitignore = dir.join(".gitignore");
    let line = format!("/{name}");
    let text = match fs::read_to_string(&gitignore) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).at("read", &gitignore),
    };
    if text.lines().any(|l| l.trim_end() == line) {
        return Ok(());
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&line);
    new.push('\n');
    write_atomic(&gitignore, new.as_bytes())?;
    crate::fsutil::temp::remove_leftovers_beside(&gitignore);
    Ok(())
}

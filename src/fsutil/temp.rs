//! bale's one temp-name scheme, for every file it makes beside its final
//! place (cache objects, workspace files, pointer files, probes):
//! `.bale-tmp.<pid>.<12 random letters and digits>`, always created
//! exclusively, so a name can never be one that exists already. Only names
//! of exactly this shape count as bale's leftovers: a user's file that merely
//! starts with `.bale-tmp.` is never taken for one, never deleted.

use std::io;
use std::path::Path;

use std::path::PathBuf;

use tempfile::{Builder, NamedTempFile};

pub const TEMP_PREFIX: &str = ".bale-tmp.";
const RANDOM_LEN: usize = 12;

fn with_builder<R>(f: impl FnOnce(&Builder) -> R) -> R {
    let prefix = format!("{TEMP_PREFIX}{}.", std::process::id());
    let mut b = Builder::new();
    b.prefix(&prefix).rand_bytes(RANDOM_LEN);
    f(&b)
}

/// Creates a new empty file with a temp name in `dir`, removed on drop
/// unless persisted.
pub fn create_in(dir: &Path) -> io::Result<NamedTempFile> {
    with_builder(|b| b.tempfile_in(dir))
}

/// A fresh temp name in `dir`, for a file, hard link or symlink that the
/// caller creates exclusively (`create_new`, link(2), symlink(2) all fail
/// on an existing name, so nothing is ever replaced by mistake).
pub fn name_in(dir: &Path) -> PathBuf {
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(RANDOM_LEN)
        .collect();
    dir.join(format!("{TEMP_PREFIX}{}.{random}", std::process::id()))
}

/// Whether `name` is one of bale's temp names (and so a leftover of a
/// killed run when found while no other writer runs).
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    let Some((pid, random)) = rest.split_once('.') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && random.len() == RANDOM_LEN
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Removes the temp files that killed bale processes left beside `file` (once
/// per folder and process): files with bale's temp name whose pid is not a
/// running process. A live process's temp file, and anything not named
/// exactly so, is left alone. Errors are ignored: a leftover that cannot be
/// removed harms nothing.
pub fn remove_leftovers_beside(file: &Path) {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => remove_leftovers_in(d),
        _ => remove_leftovers_in(Path::new(".")),
    }
}

/// As `remove_leftovers_beside`, in the folder `dir`.
pub fn remove_leftovers_in(dir: &Path) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static DONE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    {
        let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
        if !done
            .get_or_insert_with(HashSet::new)
            .insert(dir.to_path_buf())
        {
            return;
        }
    }
    for e in dead_leftovers(dir) {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The entries of `dir` with bale's temp name whose pid is not a running
/// process.
fn dead_leftovers(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| is_temp_name(n) && !is_alive(pid_of(n)))
        })
}

/// Removes the folders that killed bale processes left in `dir` (bale's
/// own `.bale/tmp/`, where checkouts stage whole folders): folders with
/// bale's temp name whose pid is not a running process. Errors are ignored.
pub fn remove_leftover_dirs_in(dir: &Path) {
    for e in dead_leftovers(dir) {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Renames `from` to `to`, failing if `to` exists (renameat2 with
/// RENAME_NOREPLACE; where the file system lacks it, a check just before a
/// plain rename).
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        return Err(e);
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(from, to)
}

/// The pid in one of bale's temp names.
fn pid_of(temp_name: &str) -> Option<u32> {
    temp_name
        .strip_prefix(TEMP_PREFIX)?
        .split_once('.')?
        .0
        .parse()
        .ok()
}

/// Whether `pid` may be a running process (so its files are in use); an
/// unreadable pid counts as alive.
fn is_alive(pid: Option<u32>) -> bool {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return true;
    };
    if pid == 0 || pid as u32 == std::process::id() {
        return true;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_names_are_recognised_and_user_names_are_not() {
        let t = tempfile::tempdir().unwrap();
        let f = create_in(t.path()).unwrap();
        let name = f.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(is_temp_name(&name), "{name}");
        let l = name_in(t.path());
        assert!(is_temp_name(l.file_name().unwrap().to_str().unwrap()));
        assert_ne!(l, name_in(t.path()));
        for user in [
            ".bale-tmp.notes",
            ".bale-tmp.123",
            ".bale-tmp.123.abc",
            ".bale-tmp.x.abcdefghijkl",
            ".bale-tmp.1.abcdefghijk-",
            "bale-tmp.1.abcdefghijkl",
        ] {
            assert!(!is_temp_name(user), "{user}");
        }
        drop(f);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
    #[test]
    fn leftovers_of_dead_processes_go_and_all_else_stays() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        // A pid above the kernel's maximum (4194304) is never running.
        let dead = dir.join(format!("{TEMP_PREFIX}99999999.abcdefghijkl"));
        let mine = create_in(dir).unwrap();
        let user = dir.join(".bale-tmp.notes");
        let init = dir.join(format!("{TEMP_PREFIX}1.abcdefghijkl"));
        for p in [&dead, &user, &init] {
            std::fs::write(p, "x").unwrap();
        }
        remove_leftovers_in(dir);
        assert!(!dead.exists(), "a dead process's temp file is removed");
        assert!(mine.path().exists(), "this process's own temp file stays");
        assert!(user.exists(), "a user's file stays");
        assert!(init.exists(), "a running process's temp file stays");
    }
}

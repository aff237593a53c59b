//! bale's one temp-name scheme, for every file it makes beside its final
//! place (cache objects, workspace files, pointer files, probes):
//! `.bale-tmp.<pid>.<12 random letters and digits>.<8-letter tag>`, always
//! created exclusively, so a name can never be one that exists already.
//!
//! The tag is a keyed hash of the rest of the name, under the repository's
//! own random key (`.bale/temp-key`, set with `set_key` when a repository is
//! opened). Only a name whose tag checks out under that key is bale's: a
//! user's file that merely looks like one (typed by hand, or copied from
//! another repository's workspace) is the user's, tracked and never deleted
//! as a leftover. In folders that are bale's alone (`<cache>/tmp`,
//! `.bale/tmp`), which other repositories' keys may share, the shape is
//! enough (`is_temp_shape`).

use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::OnceLock;

use tempfile::{Builder, NamedTempFile};

pub const TEMP_PREFIX: &str = ".bale-tmp.";
const RANDOM_LEN: usize = 12;
const TAG_LEN: usize = 8;

/// The key that tags this process's temp names (all zero until a
/// repository sets it: consistent within the process either way).
static KEY: OnceLock<[u8; 16]> = OnceLock::new();

/// Sets the key temp names are tagged with; the first call in a process
/// wins (a process works in one repository).
pub fn set_key(key: [u8; 16]) {
    let _ = KEY.set(key);
}

fn key() -> &'static [u8; 16] {
    KEY.get_or_init(|| [0; 16])
}

/// A fresh random key, for a new repository.
pub fn new_key() -> [u8; 16] {
    std::array::from_fn(|_| fastrand::u8(..))
}

/// The tag of a temp name's `<pid>.<random>` part under `key`.
fn tag(key: &[u8; 16], pid_and_random: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut keyed = Vec::with_capacity(key.len() + pid_and_random.len());
    keyed.extend_from_slice(key);
    keyed.extend_from_slice(pid_and_random.as_bytes());
    let mut h = xxhash_rust::xxh3::xxh3_64(&keyed);
    (0..TAG_LEN)
        .map(|_| {
            let c = ALPHABET[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

/// `<pid>.<random>.` as this process makes them, with its tag.
fn fresh_stem() -> (String, String) {
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(RANDOM_LEN)
        .collect();
    let stem = format!("{}.{random}", std::process::id());
    let t = tag(key(), &stem);
    (stem, t)
}

/// Creates a new empty file with a temp name in `dir`, removed on drop
/// unless persisted.
pub fn create_in(dir: &Path) -> io::Result<NamedTempFile> {
    // tempfile adds its own random part between prefix and suffix: none
    // here (`rand_bytes(0)`), the name is ours whole; an existing name is
    // retried with another.
    loop {
        let (stem, t) = fresh_stem();
        let r = Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{stem}.{t}"))
            .rand_bytes(0)
            .tempfile_in(dir);
        match r {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            r => return r,
        }
    }
}

/// A fresh temp name in `dir`, for a file, hard link or symlink that the
/// caller creates exclusively (`create_new`, link(2), symlink(2) all fail
/// on an existing name, so nothing is ever replaced by mistake).
pub fn name_in(dir: &Path) -> PathBuf {
    let (stem, t) = fresh_stem();
    dir.join(format!("{TEMP_PREFIX}{stem}.{t}"))
}

/// Splits a temp-shaped name into `<pid>.<random>` and its tag.
fn parts(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    let (stem, tag) = rest.rsplit_once('.')?;
    let (pid, random) = stem.split_once('.')?;
    let alnum = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let ok = !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && alnum(random, RANDOM_LEN)
        && alnum(tag, TAG_LEN);
    ok.then_some((stem, tag))
}

/// Whether `name` is one of bale's temp names, made under this
/// repository's key (and so a leftover of a killed run when found while no
/// other writer runs). A name of the same shape whose tag does not check
/// out is a user's file.
pub fn is_temp_name(name: &str) -> bool {
    parts(name).is_some_and(|(stem, t)| tag(key(), stem) == t)
}

/// Whether `name` has the shape of a temp name of any repository, or of a
/// bale from before names were tagged (`<pid>.<random>` alone): for
/// folders that only bale writes.
pub fn is_temp_shape(name: &str) -> bool {
    if parts(name).is_some() {
        return true;
    }
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
    for e in dead_leftovers(dir, is_temp_name) {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The entries of `dir` whose name `ours` takes for bale's temp name and
/// whose pid is not a running process.
fn dead_leftovers(dir: &Path, ours: fn(&str) -> bool) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(move |e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| ours(n) && !is_alive(pid_of(n)))
        })
}

/// Removes the folders that killed bale processes left in `dir` (bale's
/// own `.bale/tmp/`, where checkouts stage whole folders): folders with
/// a temp name's shape whose pid is not a running process. Errors are
/// ignored.
pub fn remove_leftover_dirs_in(dir: &Path) {
    for e in dead_leftovers(dir, is_temp_shape) {
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
        assert!(is_temp_shape(&name), "{name}");
        let l = name_in(t.path());
        assert!(is_temp_name(l.file_name().unwrap().to_str().unwrap()));
        assert_ne!(l, name_in(t.path()));
        // The same shape with a tag of another key, or none: a user's.
        let (stem, _) = parts(&name).unwrap();
        let foreign = format!("{TEMP_PREFIX}{stem}.{}", tag(&[7; 16], stem));
        assert!(!is_temp_name(&foreign) && is_temp_shape(&foreign));
        for user in [
            ".bale-tmp.notes",
            ".bale-tmp.123",
            ".bale-tmp.123.abc",
            ".bale-tmp.1.abcdefghijkl",
            ".bale-tmp.1.abcdefghijkl.abcdefgh",
            ".bale-tmp.x.abcdefghijkl",
            ".bale-tmp.1.abcdefghijk-",
            "bale-tmp.1.abcdefghijkl",
        ] {
            assert!(!is_temp_name(user), "{user}");
        }
        assert!(is_temp_shape(".bale-tmp.1.abcdefghijkl"), "the old shape");
        drop(f);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
    #[test]
    fn leftovers_of_dead_processes_go_and_all_else_stays() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        // A pid above the kernel's maximum (4194304) is never running.
        let dead_stem = "99999999.abcdefghijkl";
        let dead = dir.join(format!(
            "{TEMP_PREFIX}{dead_stem}.{}",
            tag(key(), dead_stem)
        ));
        let mine = create_in(dir).unwrap();
        let user = dir.join(".bale-tmp.notes");
        let untagged = dir.join(format!("{TEMP_PREFIX}{dead_stem}"));
        let init_stem = "1.abcdefghijkl";
        let init = dir.join(format!(
            "{TEMP_PREFIX}{init_stem}.{}",
            tag(key(), init_stem)
        ));
        for p in [&dead, &user, &init, &untagged] {
            std::fs::write(p, "x").unwrap();
        }
        remove_leftovers_in(dir);
        assert!(!dead.exists(), "a dead process's temp file is removed");
        assert!(mine.path().exists(), "this process's own temp file stays");
        assert!(user.exists(), "a user's file stays");
        assert!(untagged.exists(), "a name without this key's tag stays");
        assert!(init.exists(), "a running process's temp file stays");
    }
}

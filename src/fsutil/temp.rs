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
}

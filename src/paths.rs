//! Validation of paths read from pointer files and manifests, and the
//! conversions between workspace paths and their '/'-separated form.

use std::path::{Component, Path, PathBuf};

/// Checks that `p` is a safe relative path: '/'-separated, normalized, with
/// no `..`, no absolute path, no empty, `.`, `.bale` or `.git` component.
pub fn check_relative(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("the path is empty");
    }
    if p.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if p.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    if component_longer_than(p, NAME_MAX).is_some() {
        return Err("a name in the path is longer than 255 bytes, the most a file name can have");
    }
    for component in p.split('/') {
        match component {
            "" => return Err("the path has an empty component or a trailing '/'"),
            "." => return Err("the path is not normalized ('.' component)"),
            ".." => return Err("'..' components are not allowed"),
            ".bale" | ".git" => return Err("paths inside .bale or .git are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

/// The most bytes a path component may have (Linux's NAME_MAX): a longer
/// name could be recorded but never checked out.
pub const NAME_MAX: usize = 255;

/// The first component of the '/'-separated `p` longer than `max` bytes.
pub fn component_longer_than(p: &str, max: usize) -> Option<&str> {
    if p.len() <= max {
        return None;
    }
    p.split('/').find(|c| c.len() > max)
}

/// `root/rel`, where an empty `rel` means `root` itself.
pub fn join(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// The '/'-separated form of a relative path; `None` when a component is not
/// UTF-8 or the path is not a plain relative path.
pub fn to_slash(rel: &Path) -> Option<String> {
    let mut out = String::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(s.to_str()?);
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// A path for a message, one line whatever its name holds: quoted and
/// escaped (like Rust's `{:?}`) when it holds a newline, a control character
/// or bytes that are not UTF-8; as it is otherwise.
pub fn quoted(p: &Path) -> String {
    match p.to_str() {
        Some(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!("{:?}", p.as_os_str()),
    }
}

/// `quoted` for a '/'-separated relative path.
pub fn quoted_str(s: &str) -> String {
    quoted(Path::new(s))
}

/// Lexically normalizes an absolute path (resolves `.` and `..` without
/// touching the file system, so a symlinked out is not followed).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        for p in [
            "a",
            "a/b",
            "dir with space/é.txt",
            "a/.hidden",
            "a/..b",
            "x\\y",
        ] {
            assert_eq!(check_relative(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_escapes_and_reserved_components() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            ".bale/cache",
            "a/.git/config",
            ".git",
            "a\0b",
        ] {
            assert!(check_relative(p).is_err(), "{p:?} was accepted");
        }
    }

    #[test]
    fn rejects_a_name_longer_than_name_max() {
        let (fits, long) = ("x".repeat(255), "x".repeat(256));
        for p in [
            fits.clone(),
            format!("a/{fits}/b"),
            format!("{fits}/{fits}"),
        ] {
            assert_eq!(check_relative(&p), Ok(()), "{p}");
        }
        for p in [long.clone(), format!("a/{long}"), format!("{long}/b")] {
            assert!(check_relative(&p).is_err(), "{p:?} was accepted");
        }
        assert_eq!(component_longer_than("ab/c", 1), Some("ab"));
        assert_eq!(component_longer_than("a/b", 1), None);
    }

    #[test]
    fn join_of_empty_is_the_root() {
        assert_eq!(join(Path::new("/r/data"), ""), PathBuf::from("/r/data"));
        assert_eq!(
            join(Path::new("/r/data"), "a/b"),
            PathBuf::from("/r/data/a/b")
        );
    }

    #[test]
    fn normalize_resolves_dots_lexically() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(to_slash(Path::new("a/./b")), Some("a/b".into()));
        assert_eq!(to_slash(Path::new("../b")), None);
    }
}

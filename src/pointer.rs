//! Pointer files (`<out>.bale`): YAML beside each out, committed to git.
//! Keys bale does not know are kept when it rewrites the file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::hash::Hash;
use crate::paths;

pub const EXTENSION: &str = "bale";

/// The end of every pointer file's name.
pub const SUFFIX: &str = ".bale";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutKind {
    Dir,
    File,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutRecord {
    pub path: String,
    pub hash: Hash,
    #[serde(rename = "type")]
    pub kind: OutKind,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfiles: Option<u64>,
    /// File outs only: the file's executable bit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub executable: bool,
    /// Folder outs only: symlinks in the folder are not part of the out
    /// (`add --skip-symlinks`), for this and every later command.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_symlinks: bool,
    #[serde(flatten)]
    pub extra: serde_yaml::Mapping,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointerFile {
    pub outs: Vec<OutRecord>,
    #[serde(flatten)]
    pub extra: serde_yaml::Mapping,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The pointer file of the out at `out_path`: `<out_path>.bale`.
pub fn pointer_path(out_path: &Path) -> PathBuf {
    let mut s = out_path.as_os_str().to_owned();
    s.push(".");
    s.push(EXTENSION);
    PathBuf::from(s)
}

impl PointerFile {
    /// Reads and validates a pointer file: the hash, the path's safety.
    pub fn read(path: &Path) -> Result<PointerFile> {
        let text = fs::read_to_string(path).at("read the pointer file", path)?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<PointerFile> {
        let bad = |message: String| Error::MalformedPointer {
            path: path.to_path_buf(),
            message,
        };
        // A byte order mark, as some editors write, is not a YAML document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text
            .lines()
            .any(|l| l.starts_with("<<<<<<< ") || l == "=======" || l.starts_with(">>>>>>> "))
        {
            return Err(Error::PointerConflict(path.to_path_buf()));
        }
        let p: PointerFile = serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if p.outs.is_empty() {
            return Err(bad("`outs` is empty".into()));
        }
        for out in &p.outs {
            paths::check_relative(&out.path).map_err(|reason| Error::UnsafePath {
                path: out.path.clone(),
                source_file: path.to_path_buf(),
                reason,
            })?;
        }
        let mut seen: Vec<&str> = p.outs.iter().map(|o| o.path.as_str()).collect();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("the same path is listed twice in `outs`".into()));
        }
        Ok(p)
    }

    /// Writes the file atomically (temp file beside it, then rename), and
    /// removes what a killed run left beside it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_yaml::to_string(self)
            .map_err(|e| Error::io("write", path, io::Error::other(e)))?;
        write_atomic(path, text.as_bytes())?;
        crate::fsutil::temp::remove_leftovers_beside(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "outs:\n- path: images\n  hash: 0f3a00000000000000000000000000e1\n  type: dir\n  size: 12\n  nfiles: 2\n  remote: s3\nmeta:\n  owner: me\n";

    #[test]
    fn keeps_unknown_keys_on_rewrite() {
        let p = PointerFile::parse(GOOD, Path::new("images.bale")).unwrap();
        assert_eq!(p.outs[0].kind, OutKind::Dir);
        assert_eq!(p.outs[0].nfiles, Some(2));
        let text = serde_yaml::to_string(&p).unwrap();
        assert!(text.contains("remote: s3"), "{text}");
        assert!(text.contains("owner: me"), "{text}");
        assert_eq!(PointerFile::parse(&text, Path::new("x")).unwrap(), p);
    }

    #[test]
    fn malformed_pointers_name_the_file_and_line() {
        let e = PointerFile::parse("outs:\n- path: a\n  hash: [\n", Path::new("d/a.bale"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d/a.bale") && e.contains("line"), "{e}");
        for text in [
            "outs: []\n",
            "outs:\n- path: a\n  hash: xyz\n  type: file\n  size: 1\n",
            "outs:\n- path: a\n  hash: 0f3a00000000000000000000000000e1\n  type: socket\n  size: 1\n",
            "",
        ] {
            assert!(
                PointerFile::parse(text, Path::new("p.bale")).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let text = GOOD.replace("path: images", "path: ../../etc");
        let e = PointerFile::parse(&text, Path::new("p.bale")).unwrap_err();
        assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
    }

    #[test]
    fn an_all_digit_hash_survives_yaml() {
        let mut p = PointerFile::parse(GOOD, Path::new("p.bale")).unwrap();
        p.outs[0].hash = "12345678901234567890123456789012".parse().unwrap();
        let text = serde_yaml::to_string(&p).unwrap();
        assert_eq!(
            PointerFile::parse(&text, Path::new("p")).unwrap().outs[0].hash,
            p.outs[0].hash
        );
        let unquoted = GOOD.replace(
            "0f3a00000000000000000000000000e1",
            "12345678901234567890123456789012",
        );
        assert_eq!(
            PointerFile::parse(&unquoted, Path::new("p")).unwrap().outs[0].hash,
            p.outs[0].hash
        );
    }
}

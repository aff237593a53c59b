//! The manifest of a tracked directory: every file's path, hash, size and
//! executable bit, sorted by path, in one canonical text encoding. Its
//! xxh3-128 is the directory's hash.
//!
//! ```text
//! bale-manifest 1
//! <hash> <size> <x|-> <path>
//! ```
//! Paths are '/'-separated; `\`, newline and carriage return in a path are
//! written `\\`, `\n` and `\r`, so every entry is one line.

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::paths;

/// The first line of every manifest.
pub const HEADER: &str = "bale-manifest 1\n";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub hash: Hash,
    pub size: u64,
    pub executable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Builds a directory's manifest from entries in any order, checking them
    /// as the decoder does: every path safe, none twice, none both a file and
    /// a folder. The error says what is wrong.
    pub fn new(mut entries: Vec<ManifestEntry>) -> Result<Manifest, String> {
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        for e in &entries {
            paths::check_relative(&e.path).map_err(|r| format!("path {:?}: {r}", e.path))?;
        }
        if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(format!("{:?} is listed twice", w[0].path));
        }
        check_no_file_is_a_folder(&entries)?;
        Ok(Manifest { entries })
    }

    /// The one-entry list that stands for a file out (path "").
    pub fn single_file(hash: Hash, size: u64, executable: bool) -> Manifest {
        Manifest {
            entries: vec![ManifestEntry {
                path: String::new(),
                hash,
                size,
                executable,
            }],
        }
    }

    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// Writes the canonical encoding to `w`, a line at a time (a manifest
    /// of 10^6 files is never held twice in memory).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        use std::fmt::Write;
        w.write_all(HEADER.as_bytes())?;
        let mut line = String::with_capacity(128);
        for e in &self.entries {
            line.clear();
            let _ = write!(
                line,
                "{} {} {} ",
                e.hash,
                e.size,
                if e.executable { 'x' } else { '-' }
            );
            escape_into(&e.path, &mut line);
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER.len() + self.entries.len() * 64);
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }

    pub fn hash(&self) -> Hash {
        let mut w = crate::hash::HashingWriter::new(std::io::sink());
        let _ = self.write_to(&mut w);
        w.finish().0
    }

    /// Parses and validates a manifest: every path safe, strictly sorted
    /// (so no duplicates), and no path both a file and a folder.
    pub fn decode(bytes: &[u8], hash: Hash) -> Result<Manifest> {
        let bad = |message: String| Error::MalformedManifest { hash, message };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let body = text
            .strip_prefix(HEADER)
            .ok_or_else(|| bad("missing the 'bale-manifest 1' header".into()))?;
        let mut entries: Vec<ManifestEntry> = Vec::new();
        for (i, line) in body.lines().enumerate() {
            let lineno = i + 2;
            let mut parts = line.splitn(4, ' ');
            let (Some(h), Some(size), Some(x), Some(path)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(format!("line {lineno}: expected 4 fields")));
            };
            let entry = ManifestEntry {
                hash: h.parse().map_err(|e| bad(format!("line {lineno}: {e}")))?,
                size: size
                    .parse()
                    .map_err(|_| bad(format!("line {lineno}: bad size {size:?}")))?,
                executable: match x {
                    "x" => true,
                    "-" => false,
                    _ => return Err(bad(format!("line {lineno}: bad mode {x:?}"))),
                },
                path: unescape(path)
                    .ok_or_else(|| bad(format!("line {lineno}: bad escape in path")))?,
            };
            paths::check_relative(&entry.path)
                .map_err(|r| bad(format!("line {lineno}: path {:?}: {r}", entry.path)))?;
            if let Some(prev) = entries.last()
                && prev.path >= entry.path
            {
                return Err(bad(format!(
                    "line {lineno}: paths are not strictly sorted (duplicate or out of order: {:?})",
                    entry.path
                )));
            }
            entries.push(entry);
        }
        check_no_file_is_a_folder(&entries).map_err(bad)?;
        Ok(Manifest { entries })
    }
}

/// A path that is a file must not also be a folder of another path.
fn check_no_file_is_a_folder(entries: &[ManifestEntry]) -> std::result::Result<(), String> {
    // `entries` is sorted: a folder is looked up by binary search, and only
    // when an entry's folder differs from the one before it (files of one
    // folder are neighbours), so no set of all paths is built.
    let mut last_parent: Option<&str> = None;
    for e in entries {
        let parent = e.path.rfind('/').map(|i| &e.path[..i]);
        if parent.is_none() || parent == last_parent {
            continue;
        }
        last_parent = parent;
        for (i, _) in e.path.match_indices('/') {
            let folder = &e.path[..i];
            if entries
                .binary_search_by(|x| x.path.as_str().cmp(folder))
                .is_ok()
            {
                return Err(format!("{folder:?} is both a file and a folder"));
            }
        }
    }
    Ok(())
}

fn escape_into(path: &str, out: &mut String) {
    for c in path.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, n: u128) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            hash: Hash(n),
            size: n as u64,
            executable: n % 2 == 1,
        }
    }

    #[test]
    fn construction_checks_what_it_is_given() {
        for bad in [
            vec![entry("a", 1), entry("a", 2)],
            vec![entry("a", 1), entry("a/b", 2)],
            vec![entry("../x", 1)],
            vec![entry("", 1)],
            vec![entry("x/.git/y", 1)],
        ] {
            assert!(Manifest::new(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn round_trip_is_canonical_and_sorted() {
        let m = Manifest::new(vec![
            entry("b", 1),
            entry("a/new\nline\\x", 2),
            entry("a b/é", 3),
        ])
        .unwrap();
        let bytes = m.encode();
        let back = Manifest::decode(&bytes, m.hash()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.entries()[0].path, "a b/é");
        assert_eq!(back.entries()[2].path, "b");
    }

    #[test]
    fn rejects_unsafe_duplicate_and_conflicting_paths() {
        let h = Hash(0);
        let line = |p: &str| format!("{} 1 - {p}\n", Hash(5));
        for body in [
            line("../x"),
            line("/abs"),
            line(".git/config"),
            line("a") + &line("a"),
            line("b") + &line("a"),
            line("a") + &line("a/b"),
            "zz 1 - a\n".to_string(),
            format!("{} 1 q a\n", Hash(5)),
            format!("{} 1 -\n", Hash(5)),
        ] {
            let bytes = format!("{HEADER}{body}");
            assert!(Manifest::decode(bytes.as_bytes(), h).is_err(), "{body:?}");
        }
        assert!(Manifest::decode(b"nonsense", h).is_err());
    }

    #[test]
    fn a_file_beside_a_longer_sibling_is_fine() {
        let m = Manifest::new(vec![entry("a", 1), entry("a.txt", 2), entry("ab/c", 3)]).unwrap();
        assert!(Manifest::decode(&m.encode(), m.hash()).is_ok());
    }
}

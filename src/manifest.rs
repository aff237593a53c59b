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

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::paths;

/// The first line of every manifest.
pub const HEADER: &str = "bale-manifest 1\n";

/// An entry to build a manifest from (`Manifest::new`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub hash: Hash,
    pub size: u64,
    pub executable: bool,
}

/// An entry of a manifest, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub hash: Hash,
    pub size: u64,
    pub executable: bool,
}

/// One entry's fixed fields; its path ends at `end` in `Manifest::paths`
/// and starts where the one before it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    hash: Hash,
    size: u64,
    end: u32,
    executable: bool,
}

/// The entries of a directory, sorted by path. Held compactly: every path
/// in one string, 32 bytes of fixed fields per entry, so a manifest of
/// 10^6 files costs about 32 bytes plus its path per file, with no
/// allocation per entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    paths: String,
    slots: Vec<Slot>,
}

/// The entries of a manifest in path order.
#[derive(Clone)]
pub struct Entries<'a> {
    m: &'a Manifest,
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        let j = self.range.next()?;
        Some(self.m.get(j))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl ExactSizeIterator for Entries<'_> {}

impl<'a> DoubleEndedIterator for Entries<'a> {
    fn next_back(&mut self) -> Option<Entry<'a>> {
        let j = self.range.next_back()?;
        Some(self.m.get(j))
    }
}

/// Paths past this many bytes in all do not fit the offsets.
const MAX_PATH_BYTES: usize = u32::MAX as usize;

impl Manifest {
    /// Builds a directory's manifest from entries in any order, checking them
    /// as the decoder does: every path safe, none twice, none both a file and
    /// a folder. The error says what is wrong.
    pub fn new(entries: Vec<ManifestEntry>) -> Result<Manifest, String> {
        let mut b = Builder::default();
        for e in &entries {
            b.push(&e.path, e.hash, e.size, e.executable)?;
        }
        drop(entries);
        b.finish()
    }

    /// Builds a directory's manifest from entries already in path order,
    /// checking them as `new` does; `capacity` and `path_bytes` are how
    /// many there are and their paths' total length, to allocate once.
    pub fn from_sorted<'a>(
        entries: impl Iterator<Item = Entry<'a>>,
        capacity: usize,
        path_bytes: usize,
    ) -> Result<Manifest, String> {
        let mut m = Manifest {
            paths: String::with_capacity(path_bytes),
            slots: Vec::with_capacity(capacity),
        };
        for e in entries {
            paths::check_relative(e.path).map_err(|r| format!("path {:?}: {r}", e.path))?;
            if !m.is_empty() && m.get(m.len() - 1).path >= e.path {
                return Err(format!("{:?} is listed twice or out of order", e.path));
            }
            m.push(e.path, e.hash, e.size, e.executable)?;
        }
        check_no_file_is_a_folder(&m)?;
        Ok(m)
    }

    fn push(&mut self, path: &str, hash: Hash, size: u64, executable: bool) -> Result<(), String> {
        if self.paths.len() + path.len() > MAX_PATH_BYTES {
            return Err("the paths of the folder's files add up to more than 4 GiB".into());
        }
        self.paths.push_str(path);
        self.slots.push(Slot {
            hash,
            size,
            end: self.paths.len() as u32,
            executable,
        });
        Ok(())
    }

    /// The one-entry list that stands for a file out (path "").
    pub fn single_file(hash: Hash, size: u64, executable: bool) -> Manifest {
        Manifest {
            paths: String::new(),
            slots: vec![Slot {
                hash,
                size,
                end: 0,
                executable,
            }],
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The entry at `j` (panics past the end, as indexing does).
    pub fn get(&self, j: usize) -> Entry<'_> {
        let s = self.slots[j];
        let start = if j == 0 {
            0
        } else {
            self.slots[j - 1].end as usize
        };
        Entry {
            path: &self.paths[start..s.end as usize],
            hash: s.hash,
            size: s.size,
            executable: s.executable,
        }
    }

    /// The entries in path order.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            m: self,
            range: 0..self.slots.len(),
        }
    }

    /// The entries at `indices` (strictly increasing), as a manifest of
    /// their own: a subset of a valid manifest is valid, so nothing is
    /// checked again. Panics if an index is past the end or out of order.
    pub fn subset(&self, indices: &[usize]) -> Manifest {
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "subset indices must be strictly increasing"
        );
        let mut m = Manifest {
            paths: String::with_capacity(indices.iter().map(|&j| self.get(j).path.len()).sum()),
            slots: Vec::with_capacity(indices.len()),
        };
        for &j in indices {
            let e = self.get(j);
            m.paths.push_str(e.path);
            m.slots.push(Slot {
                hash: e.hash,
                size: e.size,
                end: m.paths.len() as u32,
                executable: e.executable,
            });
        }
        m
    }

    /// The index of the entry at `path`, if any (binary search).
    pub fn find(&self, path: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).path.cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Writes the canonical encoding to `w`, a line at a time (a manifest
    /// of 10^6 files is never held twice in memory).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        use std::fmt::Write;
        w.write_all(HEADER.as_bytes())?;
        let mut line = String::with_capacity(128);
        for e in self.entries() {
            line.clear();
            let _ = write!(
                line,
                "{} {} {} ",
                e.hash,
                e.size,
                if e.executable { 'x' } else { '-' }
            );
            escape_into(e.path, &mut line);
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER.len() + self.slots.len() * 64);
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
    /// (so no duplicates), and no path both a file and a folder. Pieces of
    /// about 1 MiB of lines are decoded in parallel and joined.
    pub fn decode(bytes: &[u8], hash: Hash) -> Result<Manifest> {
        Self::decode_in(bytes, hash, PIECE_BYTES)
    }

    /// `decode`, in pieces of about `piece_bytes`.
    fn decode_in(bytes: &[u8], hash: Hash, piece_bytes: usize) -> Result<Manifest> {
        let bad = |message: String| Error::MalformedManifest { hash, message };
        let body = bytes
            .strip_prefix(HEADER.as_bytes())
            .ok_or_else(|| bad("missing the 'bale-manifest 1' header".into()))?;
        let pieces = split_lines(body, piece_bytes);
        let mut m = Manifest::default();
        let mut lines_before = 0usize;
        // In waves of a few pieces per thread, each appended and dropped
        // before the next is decoded: the pieces are never all held beside
        // the manifest they make.
        let wave = rayon::current_num_threads().max(1) * 2;
        for group in pieces.chunks(wave) {
            let decoded: Vec<std::result::Result<Piece, (usize, String)>> =
                group.par_iter().map(|p| decode_piece(p)).collect();
            let (paths, slots) = decoded
                .iter()
                .flatten()
                .fold((0, 0), |(p, n), d| (p + d.paths.len(), n + d.slots.len()));
            m.paths.reserve_exact(paths);
            m.slots.reserve_exact(slots);
            for piece in decoded {
                let piece = piece.map_err(|(i, message)| {
                    bad(format!("line {}: {message}", lines_before + i + 2))
                })?;
                m.append(piece, lines_before).map_err(bad)?;
                lines_before = m.slots.len();
            }
        }
        check_no_file_is_a_folder(&m).map_err(bad)?;
        Ok(m)
    }
}

/// Entries gathered in any order (an import's, as its archive lists them),
/// held compactly until they are sorted: every path in one string and 32
/// bytes of fixed fields each, where a list of `ManifestEntry` costs a
/// string of its own per entry besides 56 bytes.
#[derive(Debug, Default)]
pub struct Builder {
    paths: String,
    items: Vec<Item>,
    size: u64,
}

/// A gathered entry: its path is `paths[start..start + len]`; the top bit
/// of `len_x` is the executable bit.
#[derive(Clone, Copy, Debug)]
struct Item {
    hash: Hash,
    size: u64,
    start: u32,
    len_x: u32,
}

const EXECUTABLE_BIT: u32 = 1 << 31;

impl Builder {
    pub fn push(
        &mut self,
        path: &str,
        hash: Hash,
        size: u64,
        executable: bool,
    ) -> Result<(), String> {
        if self.paths.len() + path.len() > MAX_PATH_BYTES || path.len() >= EXECUTABLE_BIT as usize {
            return Err("the paths of the folder's files add up to more than 4 GiB".into());
        }
        let start = self.paths.len() as u32;
        self.paths.push_str(path);
        self.items.push(Item {
            hash,
            size,
            start,
            len_x: path.len() as u32 | if executable { EXECUTABLE_BIT } else { 0 },
        });
        self.size = self.size.saturating_add(size);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The sum of the entries' sizes (saturating: sizes are what an archive
    /// declares).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The manifest of the entries, sorted and checked as `Manifest::new`
    /// checks its own: every path safe, none twice, none both a file and a
    /// folder. At its peak it holds the gathered paths twice and the fixed
    /// fields once (they become the manifest's in place).
    pub fn finish(self) -> Result<Manifest, String> {
        let Builder {
            paths: arena,
            mut items,
            ..
        } = self;
        let path_of = |it: &Item| {
            let start = it.start as usize;
            &arena[start..start + (it.len_x & !EXECUTABLE_BIT) as usize]
        };
        items.par_iter().try_for_each(|it| {
            let p = path_of(it);
            paths::check_relative(p).map_err(|r| format!("path {p:?}: {r}"))
        })?;
        items.par_sort_unstable_by(|a, b| path_of(a).cmp(path_of(b)));
        if let Some(w) = items.windows(2).find(|w| path_of(&w[0]) == path_of(&w[1])) {
            return Err(format!("{:?} is listed twice", path_of(&w[0])));
        }
        let mut sorted = String::with_capacity(arena.len());
        // Same size and alignment: the items' allocation becomes the slots'.
        let slots: Vec<Slot> = items
            .into_iter()
            .map(|it| {
                sorted.push_str(path_of(&it));
                Slot {
                    hash: it.hash,
                    size: it.size,
                    end: sorted.len() as u32,
                    executable: it.len_x & EXECUTABLE_BIT != 0,
                }
            })
            .collect();
        drop(arena);
        let m = Manifest {
            paths: sorted,
            slots,
        };
        check_no_file_is_a_folder(&m)?;
        Ok(m)
    }
}

impl Manifest {
    /// The entries at `wanted` (sorted, distinct paths) of the manifest
    /// `bytes`, found by binary search over its lines: no other line is
    /// decoded. `Ok(None)` when a path is not in it.
    ///
    /// Only for a manifest that was decoded whole before under the same
    /// hash (an out's snapshot names it): its bytes hash to `hash`, so its
    /// lines are the ones that were checked then, sorted and safe; the
    /// entries found are checked again as any built manifest is.
    pub fn decode_at(bytes: &[u8], hash: Hash, wanted: &[&str]) -> Result<Option<Manifest>> {
        let bad = |message: String| Error::MalformedManifest { hash, message };
        let body = bytes
            .strip_prefix(HEADER.as_bytes())
            .ok_or_else(|| bad("missing the 'bale-manifest 1' header".into()))?;
        let mut found: Vec<(Hash, u64, bool, String)> = Vec::with_capacity(wanted.len());
        // The paths are sorted: each search starts past the line found for
        // the one before.
        let mut from = 0;
        for &want in wanted {
            match find_line(body, from, want).map_err(bad)? {
                Some((entry, end)) => {
                    found.push(entry);
                    from = end;
                }
                None => return Ok(None),
            }
        }
        let path_bytes = found.iter().map(|e| e.3.len()).sum();
        let entries = found.iter().map(|(hash, size, executable, path)| Entry {
            path,
            hash: *hash,
            size: *size,
            executable: *executable,
        });
        Manifest::from_sorted(entries, wanted.len(), path_bytes)
            .map(Some)
            .map_err(bad)
    }
}

/// Binary search of the lines of `body` at or after byte `from` (a line's
/// start) for the entry at `want`: its fields and where its line ends.
#[allow(clippy::type_complexity)]
fn find_line(
    body: &[u8],
    from: usize,
    want: &str,
) -> std::result::Result<Option<((Hash, u64, bool, String), usize)>, String> {
    // Lines starting in [lo, hi) are still candidates.
    let (mut lo, mut hi) = (from, body.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = memchr::memrchr(b'\n', &body[lo..mid]).map_or(lo, |i| lo + i + 1);
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let line = std::str::from_utf8(&body[start..end]).map_err(|_| "not UTF-8".to_string())?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (hash, size, executable, escaped) = line_fields(line)?;
        let mut path = String::with_capacity(escaped.len());
        if !unescape_into(escaped, &mut path) {
            return Err(format!("bad escape in path {escaped:?}"));
        }
        match want.cmp(path.as_str()) {
            std::cmp::Ordering::Equal => {
                return Ok(Some(((hash, size, executable, path), end + 1)));
            }
            std::cmp::Ordering::Less => hi = start,
            std::cmp::Ordering::Greater => lo = end + 1,
        }
    }
    Ok(None)
}

impl Manifest {
    /// Appends a decoded piece whose first line is line `lines_before + 2`
    /// of the manifest.
    fn append(&mut self, piece: Piece, lines_before: usize) -> std::result::Result<(), String> {
        if let (false, Some(first)) = (self.slots.is_empty(), piece.slots.first()) {
            let prev = self.get(self.slots.len() - 1).path;
            let next = &piece.paths[..first.end as usize];
            if prev >= next {
                return Err(format!(
                    "line {}: paths are not strictly sorted (duplicate or out of order: {next:?})",
                    lines_before + 2
                ));
            }
        }
        if self.paths.len() + piece.paths.len() > MAX_PATH_BYTES {
            return Err("the paths add up to more than 4 GiB".into());
        }
        let base = self.paths.len() as u32;
        self.paths.push_str(&piece.paths);
        self.slots.extend(piece.slots.iter().map(|s| Slot {
            end: s.end + base,
            ..*s
        }));
        Ok(())
    }
}

/// Bytes of manifest text decoded by one task.
const PIECE_BYTES: usize = 1 << 20;

/// Cuts `body` into pieces of about `size` bytes, each ending at a line end
/// (the last one wherever the body does).
fn split_lines(body: &[u8], size: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while rest.len() > size {
        let cut = match rest[size..].iter().position(|&b| b == b'\n') {
            Some(i) => size + i + 1,
            None => rest.len(),
        };
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// A decoded piece: its paths and slots, offsets relative to the piece.
struct Piece {
    paths: String,
    slots: Vec<Slot>,
}

/// Decodes whole lines; an error carries the line's index in the piece.
fn decode_piece(text: &[u8]) -> std::result::Result<Piece, (usize, String)> {
    let mut p = Piece {
        paths: String::with_capacity(text.len() / 3),
        slots: Vec::with_capacity(text.len() / 60),
    };
    let mut prev_start = 0usize;
    // One UTF-8 check of the whole piece; then lines are cut with memchr
    // and fields at their fixed places (10^6 lines make a manifest of 60 MB,
    // decoded on every checkout that changes anything).
    let text = match std::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            let line = text[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            return Err((line, "not UTF-8".into()));
        }
    };
    // Lines as `str::lines` cuts them: a last line end is optional, and a
    // carriage return before a line end is not part of the line.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut line_start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(
        // The last line, which has no line end (none at all when empty).
        (!text.is_empty()).then_some(text.len()),
    );
    for (i, line_end) in ends.enumerate() {
        let line = &text[line_start..line_end];
        line_start = line_end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let err = |m: String| (i, m);
        let (hash, size, executable, path) = line_fields(line).map_err(err)?;
        let start = p.paths.len();
        if !unescape_into(path, &mut p.paths) {
            return Err(err("bad escape in path".into()));
        }
        let path = &p.paths[start..];
        paths::check_relative(path).map_err(|r| err(format!("path {path:?}: {r}")))?;
        if !p.slots.is_empty() && p.paths[prev_start..start] >= *path {
            return Err(err(format!(
                "paths are not strictly sorted (duplicate or out of order: {path:?})"
            )));
        }
        if p.paths.len() > MAX_PATH_BYTES {
            return Err(err("the paths add up to more than 4 GiB".into()));
        }
        prev_start = start;
        p.slots.push(Slot {
            hash,
            size,
            end: p.paths.len() as u32,
            executable,
        });
    }
    Ok(p)
}

/// The fields of a line: read at their fixed places, or by the careful
/// parser, which says what is wrong with a bad line.
fn line_fields(line: &str) -> std::result::Result<(Hash, u64, bool, &str), String> {
    match fields_of(line) {
        Some(f) => Ok(f),
        None => fields_or_why(line),
    }
}

/// `<32 hex digits> <size> <x|-> <path>`, read at the fields' fixed places;
/// `None` for any line that is not exactly that (`fields_or_why` then says
/// what is wrong with it).
fn fields_of(line: &str) -> Option<(Hash, u64, bool, &str)> {
    let b = line.as_bytes();
    if b.len() < 38 || b[32] != b' ' {
        return None;
    }
    let hash = Hash::from_hex(&b[..32])?;
    let digits = b[33..].iter().take_while(|d| d.is_ascii_digit()).count();
    // 19 digits always fit in a u64; a longer size takes the slow path.
    if digits == 0 || digits > 19 {
        return None;
    }
    let size = b[33..33 + digits]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let rest = &b[33 + digits..];
    let executable = match rest {
        [b' ', b'x', b' ', ..] => true,
        [b' ', b'-', b' ', ..] => false,
        _ => return None,
    };
    Some((hash, size, executable, &line[line.len() - rest.len() + 3..]))
}

/// The fields of a line, or what is wrong with it.
fn fields_or_why(line: &str) -> std::result::Result<(Hash, u64, bool, &str), String> {
    let fields = line.split_once(' ').and_then(|(h, rest)| {
        let (size, rest) = rest.split_once(' ')?;
        let (x, path) = rest.split_once(' ')?;
        Some((h, size, x, path))
    });
    let Some((h, size, x, path)) = fields else {
        return Err("expected 4 fields".into());
    };
    let hash: Hash = h.parse().map_err(|e| format!("{e}"))?;
    let size: u64 = size.parse().map_err(|_| format!("bad size {size:?}"))?;
    let executable = match x {
        "x" => true,
        "-" => false,
        _ => return Err(format!("bad mode {x:?}")),
    };
    Ok((hash, size, executable, path))
}

/// A path that is a file must not also be a folder of another path.
fn check_no_file_is_a_folder(m: &Manifest) -> std::result::Result<(), String> {
    // The entries are sorted: a folder is looked up by binary search, and
    // only when an entry's folder differs from the one before it (files of
    // one folder are neighbours), so no set of all paths is built.
    let mut last_parent: Option<&str> = None;
    for e in m.entries() {
        let parent = e.path.rfind('/').map(|i| &e.path[..i]);
        if parent.is_none() || parent == last_parent {
            continue;
        }
        last_parent = parent;
        for (i, _) in e.path.match_indices('/') {
            let folder = &e.path[..i];
            if m.find(folder).is_some() {
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

/// Appends `s` with its escapes undone; false for a bad escape.
fn unescape_into(s: &str, out: &mut String) -> bool {
    if memchr::memchr(b'\\', s.as_bytes()).is_none() {
        out.push_str(s);
        return true;
    }
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                _ => return false,
            }
        } else {
            out.push(c);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_field_reader_agrees_with_the_careful_one() {
        let h = "0123456789abcdef0123456789abcdef";
        let lines = [
            format!("{h} 5 - a"),
            format!("{h} 0 x a b  c"),
            format!("{h} 0005 - p"),
            format!("{h} +5 - p"),
            format!("{h} 18446744073709551615 - p"),
            format!("{h} 18446744073709551616 - p"),
            format!("{h} 9999999999999999999 - p"),
            format!("{h} 5 X p"),
            format!("{h} 5 -- p"),
            format!("{h} 5 - "),
            format!("{h} 5 -"),
            format!("{h}  5 - p"),
            format!("{h} 5  - p"),
            format!("{} 5 - p", h.to_uppercase()),
            format!("{h}0 5 - p"),
            format!("{} 5 - p", &h[1..]),
            format!("{h} 5 - é/ü"),
        ];
        for line in &lines {
            let careful = fields_or_why(line).ok();
            if let Some(fast) = fields_of(line) {
                assert_eq!(Some(fast), careful, "{line:?}");
            }
        }
        assert!(fields_of(&lines[0]).is_some() && fields_of(&lines[6]).is_some());
    }

    fn entry(path: &str, n: u128) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            hash: Hash(n),
            size: n as u64,
            executable: n % 2 == 1,
        }
    }

    proptest::proptest! {
        /// A lookup by binary search finds exactly what a whole decode
        /// does: every wanted path's entry, or `None` when one is absent.
        #[test]
        fn a_lookup_agrees_with_a_whole_decode(
            names in proptest::collection::btree_set("[ab\\\\\n.é]{1,3}(/[ab]{1,2})?", 1..60),
            picks in proptest::collection::vec(0usize..80, 0..12),
            absent in "[ab]{4}",
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let built: Vec<ManifestEntry> = names
                .iter()
                .enumerate()
                .map(|(i, p)| entry(p, i as u128 + 1))
                .collect();
            // Names that are both a file and a folder are not a manifest.
            let Ok(m) = Manifest::new(built) else { return Ok(()) };
            let bytes = m.encode();
            let mut wanted: Vec<&str> = picks
                .iter()
                .filter_map(|&k| m.entries().nth(k).map(|e| e.path))
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let found = Manifest::decode_at(&bytes, m.hash(), &wanted).unwrap().unwrap();
            let expected: Vec<Entry> = wanted.iter().map(|p| m.get(m.find(p).unwrap())).collect();
            proptest::prop_assert_eq!(found.entries().collect::<Vec<_>>(), expected);
            if m.find(&absent).is_none() {
                let mut with_absent = wanted.clone();
                with_absent.push(&absent);
                with_absent.sort_unstable();
                proptest::prop_assert!(
                    Manifest::decode_at(&bytes, m.hash(), &with_absent).unwrap().is_none()
                );
            }
        }
    }

    proptest::proptest! {
        /// A builder fed entries in any order makes what building them
        /// sorted, one by one, makes, or refuses what that refuses.
        #[test]
        fn a_builder_equals_new(
            paths in proptest::collection::vec("[ab.]{1,2}(/[ab]{1,2})?", 0..40),
            exec in proptest::collection::vec(proptest::bool::ANY, 40),
        ) {
            let entries: Vec<ManifestEntry> = paths
                .iter()
                .zip(&exec)
                .enumerate()
                .map(|(i, (p, x))| ManifestEntry {
                    path: p.clone(),
                    hash: Hash(i as u128 * 7),
                    size: i as u64,
                    executable: *x,
                })
                .collect();
            let mut b = Builder::default();
            for e in &entries {
                b.push(&e.path, e.hash, e.size, e.executable).unwrap();
            }
            proptest::prop_assert_eq!(b.len(), entries.len());
            proptest::prop_assert_eq!(b.size(), entries.iter().map(|e| e.size).sum::<u64>());
            let built = b.finish();
            // The oracle: the same entries sorted, checked one by one.
            let mut sorted = entries.clone();
            sorted.sort_by(|a, b| a.path.cmp(&b.path));
            let one_by_one = Manifest::from_sorted(
                sorted.iter().map(|e| Entry {
                    path: &e.path,
                    hash: e.hash,
                    size: e.size,
                    executable: e.executable,
                }),
                sorted.len(),
                0,
            );
            proptest::prop_assert_eq!(built.is_ok(), one_by_one.is_ok(), "{:?} {:?}", built, one_by_one);
            if let (Ok(b), Ok(n)) = (built, one_by_one) {
                proptest::prop_assert_eq!(b, n);
            }
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
    fn a_subset_holds_exactly_the_chosen_entries_in_order() {
        let m = Manifest::new(vec![
            entry("a", 1),
            entry("b/c", 2),
            entry("b/d", 3),
            entry("e", 4),
        ])
        .unwrap();
        let sub = m.subset(&[1, 3]);
        let got: Vec<Entry> = sub.entries().collect();
        assert_eq!(got, vec![m.get(1), m.get(3)]);
        assert_eq!(sub.find("e"), Some(1));
        assert_eq!(sub.find("a"), None);
        assert!(m.subset(&[]).is_empty());
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
        assert_eq!(back.get(0).path, "a b/é");
        assert_eq!(back.get(2).path, "b");
        assert_eq!(back.get(1).path, "a/new\nline\\x");
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
    fn from_sorted_equals_new_and_refuses_disorder() {
        let e = vec![entry("a", 1), entry("a.txt", 2), entry("ab/c", 3)];
        fn borrowed(e: &[ManifestEntry]) -> Vec<Entry<'_>> {
            e.iter()
                .map(|x| Entry {
                    path: &x.path,
                    hash: x.hash,
                    size: x.size,
                    executable: x.executable,
                })
                .collect()
        }
        let m = Manifest::from_sorted(borrowed(&e).into_iter(), 3, 10).unwrap();
        assert_eq!(m, Manifest::new(e.clone()).unwrap());
        let swapped = vec![e[1].clone(), e[0].clone()];
        assert!(Manifest::from_sorted(borrowed(&swapped).into_iter(), 2, 6).is_err());
        let clash = vec![entry("a", 1), entry("a/b", 2)];
        assert!(Manifest::from_sorted(borrowed(&clash).into_iter(), 2, 4).is_err());
    }

    #[test]
    fn decodes_across_pieces_with_line_numbers() {
        let e: Vec<ManifestEntry> = (0..5000)
            .map(|i| entry(&format!("d{:03}/f{i:05}", i / 100), i as u128))
            .collect();
        let m = Manifest::new(e).unwrap();
        let bytes = m.encode();
        assert!(split_lines(&bytes[HEADER.len()..], 4096).len() > 50);
        assert_eq!(Manifest::decode_in(&bytes, m.hash(), 4096).unwrap(), m);
        // A bad field far into the manifest is reported at its own line.
        let text = String::from_utf8(bytes).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let bad = lines[4001]
            .replacen(" - ", " q ", 1)
            .replacen(" x ", " q ", 1);
        lines[4001] = &bad;
        let broken = lines.join("\n");
        let err = Manifest::decode_in(broken.as_bytes(), Hash(0), 4096)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4002: bad mode"), "{err}");
        // So is a byte that is not UTF-8.
        let mut raw = text.clone().into_bytes();
        let at = text.match_indices('\n').nth(3000).unwrap().0 - 1;
        raw[at] = 0xff;
        let err = Manifest::decode_in(&raw, Hash(0), 4096)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3001: not UTF-8"), "{err}");
    }

    #[test]
    fn pieces_join_only_in_order() {
        let piece = |paths: &[&str]| {
            let mut p = Piece {
                paths: String::new(),
                slots: Vec::new(),
            };
            for path in paths {
                p.paths.push_str(path);
                p.slots.push(Slot {
                    hash: Hash(1),
                    size: 1,
                    end: p.paths.len() as u32,
                    executable: false,
                });
            }
            p
        };
        let mut m = Manifest::default();
        m.append(piece(&["a", "b"]), 0).unwrap();
        m.append(piece(&["c"]), 2).unwrap();
        assert_eq!(
            m.entries().map(|e| e.path).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let err = m.append(piece(&["c", "d"]), 3).unwrap_err();
        assert!(
            err.contains("line 5") && err.contains("not strictly sorted"),
            "{err}"
        );
    }

    #[test]
    fn a_file_beside_a_longer_sibling_is_fine() {
        let m = Manifest::new(vec![entry("a", 1), entry("a.txt", 2), entry("ab/c", 3)]).unwrap();
        assert!(Manifest::decode(&m.encode(), m.hash()).is_ok());
    }
}

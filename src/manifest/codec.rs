//! A manifest's canonical text encoding:
//!
//! ```text
//! bale-manifest 1
//! <hash> <size> <x|-> <path>
//! ```
//! Paths are '/'-separated; `\`, newline and carriage return in a path are
//! written `\\`, `\n` and `\r`, so every entry is one line.

use rayon::prelude::*;

use super::{Entry, MAX_PATH_BYTES, Manifest, Slot, check_no_file_is_a_folder};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::paths;

/// The first line of every manifest.
pub const HEADER: &str = "bale-manifest 1\n";

impl Manifest {
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
    use super::super::ManifestEntry;
    use super::super::tests::entry;
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
}

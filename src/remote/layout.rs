//! Where things are on a remote, and the index each remote pack carries.
//!
//! ```text
//! <root>/objects/<2 hex>/<30 hex>   one object, its raw content (large
//!                                   objects and manifests)
//! <root>/packs/<32 hex>.pack        small objects: pack records, end to end
//! <root>/packs/<32 hex>.idx         that pack's index (below)
//! ```
//!
//! A pack's name is the hash of its index, so two clients pushing different
//! content never pick the same name. The `.idx` is uploaded after its
//! `.pack`, and is what makes the pack's objects part of the remote: a pack
//! without an index is an interrupted upload, and nothing is read from it.

use xxhash_rust::xxh3::xxh3_64;

use crate::hash::Hash;

pub const OBJECTS: &str = "objects";
pub const PACKS: &str = "packs";
pub const BAD: &str = "bad";

const IDX_MAGIC: [u8; 8] = *b"BALEIDX\x01";
const IDX_ENTRY: usize = 32;

/// The key of a single object, under the remote's root.
pub fn object_key(hash: Hash) -> String {
    let hex = hash.to_string();
    format!("{OBJECTS}/{}/{}", &hex[..2], &hex[2..])
}

/// The object a key under `objects/` names.
pub fn object_of_key(key: &str) -> Option<Hash> {
    let rest = key.strip_prefix(OBJECTS)?.strip_prefix('/')?;
    let (a, b) = rest.split_once('/')?;
    if a.len() != 2 || b.len() != 30 {
        return None;
    }
    format!("{a}{b}").parse().ok()
}

pub fn pack_key(name: &str) -> String {
    format!("{PACKS}/{name}.pack")
}

pub fn idx_key(name: &str) -> String {
    format!("{PACKS}/{name}.idx")
}

/// The pack name of a key `packs/<name>.idx`.
pub fn pack_of_idx_key(key: &str) -> Option<&str> {
    let name = key
        .strip_prefix(PACKS)?
        .strip_prefix('/')?
        .strip_suffix(".idx")?;
    (name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// The pack name of a key `packs/<name>.pack`.
pub fn pack_of_pack_key(key: &str) -> Option<&str> {
    let name = key
        .strip_prefix(PACKS)?
        .strip_prefix('/')?
        .strip_suffix(".pack")?;
    (name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

/// The key of the note that the remote's copy of `hash` in `pack` (the
/// single object when `None`) is damaged: `bad/<hash>.<pack or "single">`.
pub fn bad_key(hash: Hash, pack: Option<&str>) -> String {
    format!("{BAD}/{hash}.{}", pack.unwrap_or("single"))
}

/// The object and the copy (a pack name, or "-" for the single object) a
/// damage note names.
pub fn bad_of_key(key: &str) -> Option<(Hash, String)> {
    let rest = key.strip_prefix(BAD)?.strip_prefix('/')?;
    let (h, w) = rest.split_once('.')?;
    let w = if w == "single" {
        "-".to_owned()
    } else {
        w.to_owned()
    };
    Some((h.parse().ok()?, w))
}

/// One object in a remote pack: its record starts at `offset` and is `len`
/// bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxEntry {
    pub hash: Hash,
    pub offset: u64,
    pub len: u64,
}

/// Encodes a pack index: `BALEIDX\x01`, the entry count (u64 LE), per entry
/// the hash (16 bytes), the record's offset and length (u64 LE each), in
/// pack order, then an xxh3-64 (LE) of everything before it.
pub fn encode_idx(entries: &[IdxEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + entries.len() * IDX_ENTRY + 8);
    b.extend_from_slice(&IDX_MAGIC);
    b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.hash.to_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.len.to_le_bytes());
    }
    let sum = xxh3_64(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

/// The name of the pack whose index is `idx`.
pub fn pack_name(idx: &[u8]) -> String {
    Hash::of_bytes(idx).to_string()
}

/// Decodes a pack index; `None` when it is damaged in any way.
pub fn decode_idx(b: &[u8]) -> Option<Vec<IdxEntry>> {
    let body_len = b.len().checked_sub(8)?;
    let (body, sum) = b.split_at(body_len);
    if body.len() < 16
        || body[..8] != IDX_MAGIC
        || xxh3_64(body) != u64::from_le_bytes(sum.try_into().ok()?)
    {
        return None;
    }
    let count = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let entries = &body[16..];
    if entries.len() as u64 != count.checked_mul(IDX_ENTRY as u64)? {
        return None;
    }
    let u64_at = |c: &[u8], i: usize| u64::from_le_bytes(c[i..i + 8].try_into().unwrap_or([0; 8]));
    Some(
        entries
            .chunks_exact(IDX_ENTRY)
            .map(|c| IdxEntry {
                hash: Hash::from_bytes(c[..16].try_into().unwrap_or([0; 16])),
                offset: u64_at(c, 16),
                len: u64_at(c, 24),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_round_trips_and_any_damage_is_refused() {
        let entries: Vec<IdxEntry> = (0..5u64)
            .map(|i| IdxEntry {
                hash: Hash::of_bytes(&i.to_le_bytes()),
                offset: i * 100,
                len: 100,
            })
            .collect();
        let b = encode_idx(&entries);
        assert_eq!(decode_idx(&b).unwrap(), entries);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert_eq!(decode_idx(&bad), None, "byte {i} flipped");
        }
        assert_eq!(decode_idx(&b[..b.len() - 1]), None);
        assert_eq!(decode_idx(&encode_idx(&[])).unwrap(), []);
    }

    #[test]
    fn keys_name_what_they_hold() {
        let h = Hash::of_bytes(b"x");
        assert_eq!(object_of_key(&object_key(h)), Some(h));
        assert_eq!(object_of_key("objects/ab/cd"), None);
        let name = pack_name(b"idx");
        assert_eq!(pack_of_idx_key(&idx_key(&name)), Some(name.as_str()));
        assert_eq!(pack_of_pack_key(&pack_key(&name)), Some(name.as_str()));
        assert_eq!(pack_of_idx_key(&pack_key(&name)), None);
        assert_eq!(pack_of_idx_key("packs/x.idx"), None);
        assert_eq!(
            bad_of_key(&bad_key(h, Some(&name))),
            Some((h, name.clone()))
        );
        assert_eq!(bad_of_key(&bad_key(h, None)), Some((h, "-".to_owned())));
    }
}

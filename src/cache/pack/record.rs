//! Pack records: the pack header and the self-describing record format,
//! encoding (zstd when it pays), decoding and checking.
//!
//! Layout (all integers little-endian; docs/formats.md has the table):
//! a pack starts with the 16-byte header `BALEPACK`, u32 version 1, u32 0;
//! then records, each:
//!
//! ```text
//! 0   4  magic "BREC"
//! 4   1  codec: 0 raw, 1 zstd
//! 5   3  zero
//! 8  16  xxh3-128 of the raw content, big-endian (the object's name)
//! 24  8  raw length
//! 32  8  stored length (of the payload)
//! 40  .  payload
//! ..  8  xxh3-64 of the 40 header bytes and the payload
//! ```

use xxhash_rust::xxh3::xxh3_64;

use crate::hash::Hash;

pub const PACK_HEADER: [u8; 16] = *b"BALEPACK\x01\0\0\0\0\0\0\0";
pub(super) const RECORD_MAGIC: [u8; 4] = *b"BREC";
pub const RECORD_HEADER: usize = 40;
pub const RECORD_TRAILER: usize = 8;
/// Records are compressed only from this size on, and kept compressed only
/// when that saves at least an eighth of the bytes.
const COMPRESS_MIN: usize = 256;
/// zstd's "fast 3": about twice the speed of level 1 on small records, for
/// a few percent less saved.
const ZSTD_LEVEL: i32 = -3;

const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;

/// One object encoded as a record, ready to append: header, payload and
/// checksum kept apart, so that a raw payload is never copied to be
/// written.
pub struct Record {
    pub hash: Hash,
    pub(super) size: u64,
    pub(super) codec: u8,
    pub(super) head: [u8; RECORD_HEADER],
    pub(super) payload: Vec<u8>,
    pub(super) tail: [u8; RECORD_TRAILER],
}

thread_local! {
    /// Recent compression attempts of this thread that did not pay: after
    /// a run of them the next ones are not tried (see `compress_pays`).
    static FUTILE: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Attempts that saved nothing, in a row, before trying is paused...
const FUTILE_RUN: u32 = 32;
/// ...for this many records.
const FUTILE_PAUSE: u32 = 512;

impl Record {
    /// Encodes `raw` (whose hash is `hash`), compressed (if `may_compress`:
    /// `pack.compression` is not `none`) when that saves at
    /// least an eighth of its bytes. Data that does not compress (images,
    /// archives) soon stops being tried: after 32 futile attempts in a row,
    /// the next 512 records of the thread are stored raw untried.
    pub fn encode(hash: Hash, raw: Vec<u8>, may_compress: bool) -> Record {
        let compressed = (may_compress && raw.len() >= COMPRESS_MIN && compress_worth_trying())
            .then(|| {
                let c = compress(&raw).filter(|c| c.len() <= raw.len() - raw.len() / 8);
                note_attempt(c.is_some());
                c
            })
            .flatten();
        let size = raw.len() as u64;
        let (codec, payload) = match compressed {
            Some(c) => (CODEC_ZSTD, c),
            None => (CODEC_RAW, raw),
        };
        let mut head = [0u8; RECORD_HEADER];
        head[..4].copy_from_slice(&RECORD_MAGIC);
        head[4] = codec;
        head[8..24].copy_from_slice(&hash.to_bytes());
        head[24..32].copy_from_slice(&size.to_le_bytes());
        head[32..40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let mut sum = xxhash_rust::xxh3::Xxh3::new();
        sum.update(&head);
        sum.update(&payload);
        Record {
            hash,
            size,
            codec,
            head,
            payload,
            tail: sum.digest().to_le_bytes(),
        }
    }

    /// A record read back whole from a pack (gc copies records as they are).
    pub(super) fn from_bytes(mut bytes: Vec<u8>) -> Option<Record> {
        let h = Header::parse(&bytes)?;
        let end = bytes.len().checked_sub(RECORD_TRAILER)?;
        let tail: [u8; RECORD_TRAILER] = bytes[end..].try_into().ok()?;
        let head: [u8; RECORD_HEADER] = bytes[..RECORD_HEADER].try_into().ok()?;
        bytes.truncate(end);
        bytes.drain(..RECORD_HEADER);
        Some(Record {
            hash: h.hash,
            size: h.size,
            codec: h.codec,
            head,
            payload: bytes,
            tail,
        })
    }

    /// The record as it is written.
    pub fn to_bytes(&self) -> Vec<u8> {
        [&self.head[..], &self.payload, &self.tail].concat()
    }

    /// A whole record received from elsewhere (a remote's pack), once its
    /// checksum, lengths and content hash check out as the object `want`;
    /// kept as it is, not encoded again. Returns the raw content too.
    pub fn received(bytes: &[u8], want: Hash) -> Option<(Record, Vec<u8>)> {
        let raw = decode(bytes, want)?;
        Some((Record::from_bytes(bytes.to_vec())?, raw))
    }

    /// The record's length as written.
    pub(super) fn written_len(&self) -> u64 {
        (RECORD_HEADER + self.payload.len() + RECORD_TRAILER) as u64
    }
}

fn compress_worth_trying() -> bool {
    FUTILE.with(|f| {
        let (run, pause) = f.get();
        if pause > 0 {
            f.set((run, pause - 1));
            false
        } else {
            true
        }
    })
}

fn note_attempt(paid: bool) {
    FUTILE.with(|f| {
        let (run, _) = f.get();
        f.set(match (paid, run + 1 >= FUTILE_RUN) {
            (true, _) => (0, 0),
            (false, true) => (0, FUTILE_PAUSE),
            (false, false) => (run + 1, 0),
        });
    });
}

/// Decompresses a zstd payload into exactly `size` bytes, with this
/// thread's context (making one per record would cost more than the work).
fn decompress(payload: &[u8], size: usize) -> Option<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        d.as_mut()?.decompress(payload, size).ok()
    })
}

fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        c.as_mut()?.compress(raw).ok()
    })
}

/// A record's header, parsed.
pub(super) struct Header {
    pub(super) codec: u8,
    pub(super) hash: Hash,
    pub(super) size: u64,
    pub(super) stored: u64,
}

impl Header {
    pub(super) fn parse(b: &[u8]) -> Option<Header> {
        if b.len() < RECORD_HEADER || b[..4] != RECORD_MAGIC || b[5..8] != [0, 0, 0] {
            return None;
        }
        let codec = b[4];
        if codec != CODEC_RAW && codec != CODEC_ZSTD {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let hash = Hash::from_bytes(b[8..24].try_into().ok()?);
        let (size, stored) = (u64_at(24), u64_at(32));
        if codec == CODEC_RAW && size != stored {
            return None;
        }
        Some(Header {
            codec,
            hash,
            size,
            stored,
        })
    }
}

/// Checks a whole record (`bytes` from its header to its checksum) and
/// returns the raw content, or `None` when anything is wrong: checksum,
/// codec, lengths, or the content's hash.
pub(super) fn decode(bytes: &[u8], want: Hash) -> Option<Vec<u8>> {
    if !record_holds(bytes, want) {
        return None;
    }
    let h = Header::parse(bytes)?;
    let payload = &bytes[RECORD_HEADER..RECORD_HEADER + usize::try_from(h.stored).ok()?];
    let raw = match h.codec {
        CODEC_RAW => payload.to_vec(),
        _ => decompress(payload, usize::try_from(h.size).ok()?)?,
    };
    (raw.len() as u64 == h.size && Hash::of_bytes(&raw) == want).then_some(raw)
}

/// Whether `bytes` is one whole record of the object `want` whose checksum
/// holds (without decompressing or hashing the content).
pub(super) fn record_holds(bytes: &[u8], want: Hash) -> bool {
    let Some(h) = Header::parse(bytes) else {
        return false;
    };
    let end = RECORD_HEADER as u64 + h.stored;
    if h.hash != want || bytes.len() as u64 != end + RECORD_TRAILER as u64 {
        return false;
    }
    let end = end as usize;
    bytes[end..]
        .try_into()
        .is_ok_and(|sum| xxh3_64(&bytes[..end]) == u64::from_le_bytes(sum))
}

/// The length of the well-formed record at the start of `data`, if any.
#[cfg(test)]
fn record_at(data: &[u8]) -> Option<usize> {
    let h = Header::parse(data)?;
    let len = usize::try_from(h.stored)
        .ok()?
        .checked_add(RECORD_HEADER + RECORD_TRAILER)?;
    if len > data.len() {
        return None;
    }
    let end = len - RECORD_TRAILER;
    let sum = u64::from_le_bytes(data[end..len].try_into().ok()?);
    (xxh3_64(&data[..end]) == sum).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pack::tests::obj;

    #[test]
    fn records_round_trip_and_reject_any_flipped_byte() {
        for raw in [Vec::new(), b"x".to_vec(), obj(49), vec![7u8; 5000]] {
            let h = Hash::of_bytes(&raw);
            let r = Record::encode(h, raw.clone(), true);
            let bytes = r.to_bytes();
            assert_eq!(decode(&bytes, h).as_deref(), Some(&raw[..]));
            assert_eq!(record_at(&bytes), Some(bytes.len()));
            for i in (0..bytes.len()).step_by(7) {
                let mut bad = bytes.clone();
                bad[i] ^= 0x20;
                assert!(decode(&bad, h).is_none(), "flipped byte {i} accepted");
            }
        }
        let long = vec![7u8; 5000];
        let r = Record::encode(Hash::of_bytes(&long), long, true);
        assert_eq!(r.codec, CODEC_ZSTD, "a compressible object is compressed");
        let mut rng = fastrand::Rng::with_seed(7);
        let noise: Vec<u8> = (0..5000).map(|_| rng.u8(..)).collect();
        let r = Record::encode(Hash::of_bytes(&noise), noise, true);
        assert_eq!(r.codec, CODEC_RAW, "noise is stored raw");
    }
}

//! xxh3-128 content hashes, written as 32 lowercase hex digits.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use xxhash_rust::xxh3::Xxh3;

/// Buffer size for streaming reads: large enough to amortise syscalls,
/// small enough that a thread's buffer is no burden.
pub const CHUNK: usize = 256 * 1024;

/// Aligned to 8, not 16: a u128's alignment would pad every struct and
/// `Option` that holds a hash (an `Option<Hash>` is 24 bytes, not 32),
/// and there is one of them per file of an out.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C, packed(8))]
pub struct Hash(pub u128);

impl Hash {
    pub fn of_bytes(bytes: &[u8]) -> Hash {
        Hash(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(b: [u8; 16]) -> Hash {
        Hash(u128::from_be_bytes(b))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", { self.0 })
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a hash: expected 32 lowercase hex digits")]
pub struct ParseHashError;

impl FromStr for Hash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(s.as_bytes()).ok_or(ParseHashError)
    }
}

/// Each byte's value as a lowercase hex digit, or `NOT_HEX`.
const HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
const NOT_HEX: u8 = 0x10;

impl Hash {
    /// 32 lowercase hex digits. By table, without a branch per digit: a
    /// manifest of 10^6 lines parses 10^6 of these.
    pub fn from_hex(s: &[u8]) -> Option<Hash> {
        let digits: &[u8; 32] = s.try_into().ok()?;
        let mut v = 0u128;
        let mut bad = 0u8;
        for &b in digits {
            let d = HEX[usize::from(b)];
            bad |= d;
            v = (v << 4) | u128::from(d & 0xf);
        }
        (bad & NOT_HEX == 0).then_some(Hash(v))
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("{e}, got {s:?}")))
    }
}

/// Hashes everything `reader` yields, reading it once in chunks.
pub fn hash_reader(reader: impl Read, buf: &mut [u8]) -> io::Result<(Hash, u64)> {
    copy_hashing(reader, io::sink(), buf).map_err(CopyError::into_inner)
}

/// Which side of a copy failed: a full disk must not be reported as a read
/// error of the source.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    pub fn into_inner(self) -> io::Error {
        match self {
            CopyError::Read(e) | CopyError::Write(e) => e,
        }
    }
}

/// Copies `reader` to `writer`, hashing on the way: the content is read once.
pub fn copy_hashing(
    mut reader: impl Read,
    mut writer: impl Write,
    buf: &mut [u8],
) -> Result<(Hash, u64), CopyError> {
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    Ok((Hash(hasher.digest128()), total))
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Xxh3,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Xxh3::new(),
        }
    }

    /// The hash of what was written, and the inner writer.
    pub fn finish(self) -> (Hash, W) {
        (Hash(self.hasher.digest128()), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Runs `f` with this thread's reusable read buffer.
pub fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < CHUNK {
            b.resize(CHUNK, 0);
        }
        f(&mut b[..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_zero_padded_lowercase() {
        assert_eq!(Hash(0xab).to_string(), format!("{}ab", "0".repeat(30)));
        assert_eq!(Hash(u128::MAX).to_string(), "f".repeat(32));
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_input() {
        let h = Hash::of_bytes(b"hello");
        assert_eq!(h.to_string().parse::<Hash>(), Ok(h));
        assert!("ABCDEF00000000000000000000000000".parse::<Hash>().is_err());
        assert!("abc".parse::<Hash>().is_err());
        assert!("+bcdef00000000000000000000000000".parse::<Hash>().is_err());
    }

    #[test]
    fn every_byte_in_every_place_parses_as_from_str_radix_says() {
        let base = "0123456789abcdef0123456789abcdef";
        for place in [0, 17, 31] {
            for b in 0..=255u8 {
                let mut s = base.as_bytes().to_vec();
                s[place] = b;
                let lowercase_hex = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                let want = lowercase_hex.then(|| {
                    Hash(u128::from_str_radix(std::str::from_utf8(&s).unwrap(), 16).unwrap())
                });
                assert_eq!(Hash::from_hex(&s), want, "byte {b} at {place}");
            }
        }
        assert_eq!(Hash::from_hex(&base.as_bytes()[..31]), None);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut buf = vec![0; 4096];
        let (h, n) = hash_reader(&data[..], &mut buf).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(h, Hash::of_bytes(&data));
        let mut out = Vec::new();
        let (h2, _) = copy_hashing(&data[..], &mut out, &mut buf).unwrap();
        assert_eq!(h2, h);
        assert_eq!(out, data);
    }
}

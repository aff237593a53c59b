//! Decoding an entry's bytes (stored, deflate, zstd) with its size and
//! CRC-32 checked on the way, and recognising the archive's format.

use std::io::{self, Read};

use crate::error::Result;
use crate::progress::Bar;

use super::sink::{Pending, read_error};
use super::{Codec, EntryError, Format};

pub(super) fn decoder<'r>(
    codec: Codec,
    r: &'r mut dyn Read,
) -> Result<Box<dyn Read + 'r>, EntryError> {
    Ok(match codec {
        Codec::Stored => Box::new(r),
        Codec::Deflate => Box::new(flate2::read::DeflateDecoder::new(r)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(r).map_err(EntryError::Io)?),
    })
}

/// Passes an entry's decoded bytes through, failing as soon as they exceed
/// the declared size (a zip bomb is never inflated beyond it), and at the
/// end when they fall short or their CRC-32 does not match.
pub(super) struct Checked<R> {
    pub(super) inner: R,
    pub(super) declared: u64,
    pub(super) crc: Option<u32>,
    pub(super) hasher: crc32fast::Hasher,
    pub(super) total: u64,
}

impl<R: Read> Checked<R> {
    pub(super) fn new(inner: R, declared: u64, crc: Option<u32>) -> Checked<R> {
        Checked {
            inner,
            declared,
            crc,
            hasher: crc32fast::Hasher::new(),
            total: 0,
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.declared {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "inflates beyond its declared size of {} bytes",
                    self.declared
                ),
            ));
        }
        if self.crc.is_some() {
            self.hasher.update(&buf[..n]);
        }
        if n == 0 && !buf.is_empty() {
            if self.total < self.declared {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "holds {} bytes, not the {} it declares: the archive is damaged",
                        self.total, self.declared
                    ),
                ));
            }
            if let Some(want) = self.crc {
                let got = self.hasher.clone().finalize();
                if got != want {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "fails its CRC-32 check ({got:08x}, expected {want:08x}): the archive is damaged"
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// Decodes and checks an entry of a batch; a stored entry's bytes are
/// checked where they are, not copied.
pub(super) fn decode(p: &mut Pending) -> Result<Vec<u8>, EntryError> {
    if p.codec == Codec::Stored {
        let mut sink = io::sink();
        let mut body: &[u8] = &p.bytes;
        io::copy(&mut Checked::new(&mut body, p.size, p.crc), &mut sink)
            .map_err(|e| read_error(&p.path, e))?;
        return Ok(std::mem::take(&mut p.bytes));
    }
    let mut out = Vec::with_capacity(p.size as usize);
    {
        let mut body: &[u8] = &p.bytes;
        let mut checked = Checked::new(decoder(p.codec, &mut body)?, p.size, p.crc);
        checked
            .read_to_end(&mut out)
            .map_err(|e| read_error(&p.path, e))?;
    }
    p.bytes = Vec::new();
    Ok(out)
}

/// Recognises the archive by its first bytes (up to `HEAD` of them).
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::TarGz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::TarZst)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::Tar)
    } else if head.len() >= 1024 && head[..1024].iter().all(|&b| b == 0) {
        // Two zero blocks end a tar: with nothing before them, an empty one
        // (as `tar cf e.tar --files-from /dev/null` writes it).
        Some(Format::Tar)
    } else {
        None
    }
}

/// How many first bytes `detect` looks at: an empty tar is two zero
/// blocks of 512.
const HEAD: usize = 1024;

/// Reads up to `HEAD` bytes: enough to recognise any format.
pub(super) fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD);
    r.take(HEAD as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Counts the bytes read from the archive on the progress bar.
pub(super) struct Counting<'a, R> {
    pub(super) inner: R,
    pub(super) bar: &'a Bar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

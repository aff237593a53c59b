//! Reading a zip archive in bounded memory: the central directory is read
//! entry by entry from its own buffered handle (never held whole: at 10^6
//! entries the `zip` crate's in-memory table would take ~300 MB), and each
//! entry's bytes are read from a second handle at its local header, in the
//! archive's order. Compressed bytes are handed on as they are, to be
//! inflated in parallel; an entry too large for a batch is streamed.
//!
//! Only the fixed-layout records of APPNOTE 6.3 are parsed: the end of
//! central directory record (4.3.16) and its zip64 form (4.3.14, 4.3.15),
//! central directory headers (4.3.12) with the zip64 extra field (4.5.3),
//! and the local header's length fields (4.3.7).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{Codec, EntryError, Sink};

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const ZIP64_EOCD_SIG: &[u8; 4] = b"PK\x06\x06";
const CENTRAL_SIG: &[u8; 4] = b"PK\x01\x02";
const LOCAL_SIG: &[u8; 4] = b"PK\x03\x04";

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// An opened zip: where its central directory is.
pub struct Zip {
    /// Two handles of their own (a cloned descriptor would share the
    /// offset): one for the central directory, one for the entries.
    file: File,
    cd: File,
    len: u64,
    cd_offset: u64,
    cd_size: u64,
    entries: u64,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn damaged(reason: impl Into<String>) -> EntryError {
    EntryError::archive(reason)
}

impl Zip {
    /// Finds the end of central directory record (and its zip64 form).
    pub fn open(path: &Path) -> Result<Zip, EntryError> {
        let mut file = File::open(path).map_err(EntryError::Io)?;
        let len = file.metadata().map_err(EntryError::Io)?.len();
        let tail_len = len.min(22 + 65535);
        let mut tail = vec![0; tail_len as usize];
        file.seek(SeekFrom::Start(len - tail_len))
            .and_then(|_| file.read_exact(&mut tail))
            .map_err(EntryError::Io)?;
        let at = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| &tail[i..i + 4] == EOCD_SIG)
            .ok_or_else(|| {
                damaged("no end of central directory record: the zip is truncated or not a zip")
            })?;
        let e = &tail[at..];
        if u16_at(e, 4) != 0 || u16_at(e, 6) != 0 {
            return Err(damaged("multi-disk zip archives are not supported"));
        }
        let mut entries = u64::from(u16_at(e, 10));
        let mut cd_size = u64::from(u32_at(e, 12));
        let mut cd_offset = u64::from(u32_at(e, 16));
        let eocd_pos = len - tail_len + at as u64;
        if entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            let loc = at
                .checked_sub(20)
                .map(|l| &tail[l..l + 20])
                .filter(|l| &l[..4] == ZIP64_LOCATOR_SIG)
                .ok_or_else(|| damaged("the zip64 end of central directory locator is missing"))?;
            let z64 = u64_at(loc, 8);
            let mut rec = [0u8; 56];
            file.seek(SeekFrom::Start(z64))
                .and_then(|_| file.read_exact(&mut rec))
                .map_err(|_| damaged("the zip64 end of central directory record is cut off"))?;
            if &rec[..4] != ZIP64_EOCD_SIG {
                return Err(damaged(
                    "the zip64 end of central directory record is damaged",
                ));
            }
            entries = u64_at(&rec, 32);
            cd_size = u64_at(&rec, 40);
            cd_offset = u64_at(&rec, 48);
        }
        if cd_offset
            .checked_add(cd_size)
            .is_none_or(|end| end > eocd_pos)
        {
            return Err(damaged(
                "the central directory lies beyond the end of the file: the zip is truncated",
            ));
        }
        let cd = File::open(path).map_err(EntryError::Io)?;
        Ok(Zip {
            file,
            cd,
            len,
            cd_offset,
            cd_size,
            entries,
        })
    }

    /// Hands every entry to `sink`, in central directory order.
    pub fn read(self, sink: &mut Sink<'_>) -> Result<(), EntryError> {
        let mut cd = BufReader::with_capacity(1 << 16, self.cd);
        cd.seek(SeekFrom::Start(self.cd_offset))
            .map_err(EntryError::Io)?;
        let mut data = BufReader::with_capacity(1 << 18, self.file);
        let mut pos = 0u64;
        data.seek(SeekFrom::Start(0)).map_err(EntryError::Io)?;
        let mut fixed = [0u8; 46];
        let mut var = Vec::new();
        // The central directory's size, not its entry count, says where it
        // ends (writers that exceed 65535 entries without zip64 wrap the
        // count); a count that disagrees otherwise is damage.
        let mut cd_left = self.cd_size;
        let mut seen = 0u64;
        // Entries must not share bytes: overlapping entries are how a
        // small zip inflates to gigabytes.
        let mut data_end = 0u64;
        while cd_left > 0 {
            if cd_left < 46 {
                return Err(damaged("the central directory is damaged"));
            }
            cd.read_exact(&mut fixed)
                .map_err(|_| damaged("the central directory is cut off"))?;
            seen += 1;
            if &fixed[..4] != CENTRAL_SIG {
                return Err(damaged("the central directory is damaged"));
            }
            let made_by = u16_at(&fixed, 4) >> 8;
            let flags = u16_at(&fixed, 8);
            let method = u16_at(&fixed, 10);
            let crc = u32_at(&fixed, 16);
            let mut csize = u64::from(u32_at(&fixed, 20));
            let mut size = u64::from(u32_at(&fixed, 24));
            let (n, m, k) = (
                usize::from(u16_at(&fixed, 28)),
                usize::from(u16_at(&fixed, 30)),
                usize::from(u16_at(&fixed, 32)),
            );
            let external = u32_at(&fixed, 38);
            let mut offset = u64::from(u32_at(&fixed, 42));
            let header_len = 46 + (n + m + k) as u64;
            if header_len > cd_left {
                return Err(damaged("the central directory is damaged"));
            }
            cd_left -= header_len;
            var.resize(n + m + k, 0);
            cd.read_exact(&mut var)
                .map_err(|_| damaged("the central directory is cut off"))?;
            let raw_name = &var[..n];
            zip64_extra(&var[n..n + m], &mut size, &mut csize, &mut offset);
            let name = sink.name(raw_name)?;
            let mode = if made_by == 3 { external >> 16 } else { 0 };
            let is_dir = raw_name.ends_with(b"/") || mode & S_IFMT == S_IFDIR;
            match mode & S_IFMT {
                0 | S_IFREG | S_IFDIR => {}
                S_IFLNK => {
                    return Err(EntryError::entry(
                        &name,
                        "is a symlink; bale imports files only",
                    ));
                }
                _ => {
                    return Err(EntryError::entry(
                        &name,
                        "is not a regular file (a device or fifo)",
                    ));
                }
            }
            if is_dir {
                sink.dir(name)?;
                continue;
            }
            if flags & 1 != 0 {
                return Err(EntryError::entry(&name, "is encrypted"));
            }
            let codec = match method {
                0 => Codec::Stored,
                8 => Codec::Deflate,
                93 => Codec::Zstd,
                other => {
                    return Err(EntryError::entry(
                        &name,
                        format!(
                            "uses compression method {other}, which bale cannot read (stored, deflate and zstd can be)"
                        ),
                    ));
                }
            };
            if csize
                .checked_add(30)
                .and_then(|n| offset.checked_add(n))
                .is_none_or(|end| end > self.len)
            {
                return Err(EntryError::entry(
                    &name,
                    "lies beyond the end of the file: the zip is truncated",
                ));
            }
            if offset < data_end {
                return Err(EntryError::entry(
                    &name,
                    "overlaps the entry before it: the zip is malformed (or a zip bomb)",
                ));
            }
            // To the entry's local header (usually where the last one ended).
            if offset != pos {
                data.seek(SeekFrom::Start(offset)).map_err(EntryError::Io)?;
            }
            let mut local = [0u8; 30];
            data.read_exact(&mut local)
                .map_err(|_| EntryError::entry(&name, "is cut off: the zip is truncated"))?;
            if &local[..4] != LOCAL_SIG {
                return Err(EntryError::entry(&name, "has a damaged local header"));
            }
            let skip = u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
            skip_bytes(&mut data, skip)
                .map_err(|_| EntryError::entry(&name, "is cut off: the zip is truncated"))?;
            let executable = mode & 0o111 != 0;
            let mut body = (&mut data).take(csize);
            sink.file(name, executable, size, Some(crc), codec, csize, &mut body)?;
            if body.limit() != 0 {
                // The sink stopped early (an error it reports itself) or
                // the archive ended: either way, read on from a seek.
                pos = u64::MAX;
            } else {
                pos = offset + 30 + skip + csize;
            }
            data_end = offset + 30 + skip + csize;
            sink.progress(30 + skip + csize + header_len);
        }
        if seen != self.entries && seen % 65536 != self.entries % 65536 {
            return Err(damaged(format!(
                "the central directory holds {seen} entries, but its end record says {}: the zip is damaged",
                self.entries
            )));
        }
        Ok(())
    }
}

/// Reads the zip64 extended information extra field: the 64-bit values of
/// the fields whose 32-bit ones are 0xFFFFFFFF, in this order.
fn zip64_extra(mut extra: &[u8], size: &mut u64, csize: &mut u64, offset: &mut u64) {
    while extra.len() >= 4 {
        let id = u16_at(extra, 0);
        let len = usize::from(u16_at(extra, 2));
        let Some(body) = extra.get(4..4 + len) else {
            return;
        };
        if id == 0x0001 {
            let mut at = 0;
            for field in [size, csize, offset] {
                if *field == 0xFFFF_FFFF && at + 8 <= body.len() {
                    *field = u64_at(body, at);
                    at += 8;
                }
            }
            return;
        }
        extra = &extra[4 + len..];
    }
}

fn skip_bytes(r: &mut BufReader<File>, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let k = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        r.consume(k);
        n -= k as u64;
    }
    Ok(())
}

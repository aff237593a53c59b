//! The reader's side: entry names checked, entries gathered into batches
//! of bounded entries and bytes and handed over one at a time; an entry too
//! large for a batch decoded and stored by the reader itself.

use std::io::{self, Read};
use std::sync::mpsc::SyncSender;

use crate::cache::Cache;
use crate::error::Result;
use crate::manifest::ManifestEntry;
use crate::paths;
use crate::progress::Bar;

use super::decode::{Checked, decoder};
use super::{Codec, EntryError};

/// The name of an entry, checked: UTF-8, relative, normalized, no `..`,
/// `.bale` or `.git` component, no name longer than `name_max` bytes. A
/// trailing '/' (a folder) is dropped.
pub fn entry_name(raw: &[u8], name_max: usize) -> Result<String, EntryError> {
    let shown = || raw.escape_ascii().to_string();
    let text = std::str::from_utf8(raw).map_err(|_| EntryError::entry(&shown(), "is not UTF-8"))?;
    let name = text.strip_suffix('/').unwrap_or(text);
    if let Some(long) = paths::component_longer_than(name, name_max.min(paths::NAME_MAX)) {
        return Err(EntryError::entry(
            text,
            format!(
                "has a name of {} bytes; the file system allows {} at most",
                long.len(),
                name_max.min(paths::NAME_MAX)
            ),
        ));
    }
    paths::check_relative(name).map_err(|reason| EntryError::entry(text, reason))?;
    Ok(name.to_owned())
}

/// The error for an entry (not a folder) whose name is empty or names the
/// archive's root folder (`.`, `./`): there is no path to make it at.
pub fn unnamed_file(raw: &[u8]) -> EntryError {
    let reason = if raw.is_empty() {
        "has an empty name; bale imports files only"
    } else {
        "names the archive's root folder, which only a folder entry may"
    };
    EntryError::entry(&raw.escape_ascii().to_string(), reason)
}

/// A tar name without its leading `./` components; `None` for `./` itself.
pub fn strip_dot_slash(mut raw: &[u8]) -> Option<&[u8]> {
    while let Some(rest) = raw.strip_prefix(b"./") {
        raw = rest;
    }
    (!raw.is_empty() && raw != b".").then_some(raw)
}

/// One entry of a batch, its bytes as the archive holds them.
pub(super) struct Pending {
    pub(super) path: String,
    pub(super) executable: bool,
    pub(super) size: u64,
    pub(super) crc: Option<u32>,
    pub(super) codec: Codec,
    pub(super) bytes: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Batch {
    pub(super) entries: Vec<Pending>,
    /// Entries the reader stored itself (too large for a batch).
    pub(super) done: Vec<ManifestEntry>,
    /// How many of those were new to the cache.
    pub(super) done_new: usize,
    pub(super) dirs: Vec<String>,
    /// The batch was cut by a bound (the archive goes on).
    pub(super) full: bool,
}

/// The reader's side: collects entries into batches and sends them on.
pub struct Sink<'a> {
    pub(super) cache: &'a Cache,
    pub(super) tx: SyncSender<Batch>,
    pub(super) batch: Batch,
    pub(super) bytes: u64,
    pub(super) max_entries: usize,
    pub(super) max_bytes: u64,
    pub(super) name_max: usize,
    pub(super) bar: &'a Bar,
}

impl Sink<'_> {
    /// `entry_name` with the limit of the destination's file system.
    pub(super) fn name(&self, raw: &[u8]) -> Result<String, EntryError> {
        entry_name(raw, self.name_max)
    }

    pub(super) fn dir(&mut self, name: String) -> Result<(), EntryError> {
        self.batch.dirs.push(name);
        Ok(())
    }

    /// Takes one file entry: `csize` bytes of `body`, which decode (per
    /// `codec`) to `size` bytes with the given CRC-32.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn file(
        &mut self,
        path: String,
        executable: bool,
        size: u64,
        crc: Option<u32>,
        codec: Codec,
        csize: u64,
        body: &mut dyn Read,
    ) -> Result<(), EntryError> {
        if size.max(csize) >= self.max_bytes {
            return self.stream(path, executable, size, crc, codec, body);
        }
        let mut bytes = Vec::with_capacity(csize as usize);
        body.take(csize)
            .read_to_end(&mut bytes)
            .map_err(|e| EntryError::entry(&path, format!("cannot be read: {e}")))?;
        if (bytes.len() as u64) < csize {
            return Err(EntryError::entry(
                &path,
                "is cut off: the archive is truncated",
            ));
        }
        // Decoded, the entry takes its full size: that is what is bounded.
        self.bytes += size.max(csize);
        self.batch.entries.push(Pending {
            path,
            executable,
            size,
            crc,
            codec,
            bytes,
        });
        if self.batch.entries.len() >= self.max_entries || self.bytes >= self.max_bytes {
            self.batch.full = true;
            self.send()?;
        }
        Ok(())
    }

    /// Decodes, checks and stores a large entry as a loose object, reading
    /// it once.
    pub(super) fn stream(
        &mut self,
        path: String,
        executable: bool,
        size: u64,
        crc: Option<u32>,
        codec: Codec,
        body: &mut dyn Read,
    ) -> Result<(), EntryError> {
        let mut checked = Checked::new(decoder(codec, body)?, size, crc);
        let (hash, got, new) = match self.cache.store_reader(&mut checked)? {
            Ok(x) => x,
            Err(e) => return Err(read_error(&path, e)),
        };
        self.batch.done_new += usize::from(new);
        self.batch.done.push(ManifestEntry {
            path,
            hash,
            size: got,
            executable,
        });
        Ok(())
    }

    pub(super) fn progress(&self, n: u64) {
        self.bar.inc(n);
    }

    pub(super) fn send(&mut self) -> Result<(), EntryError> {
        let batch = std::mem::take(&mut self.batch);
        self.bytes = 0;
        self.tx.send(batch).map_err(|_| EntryError::Stopped)
    }
}

/// The error for reading an entry's content.
pub(super) fn read_error(path: &str, e: io::Error) -> EntryError {
    if e.kind() == io::ErrorKind::InvalidData {
        EntryError::entry(path, e.to_string())
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        EntryError::entry(path, "is cut off: the archive is truncated")
    } else {
        EntryError::entry(path, format!("cannot be read: {e}"))
    }
}

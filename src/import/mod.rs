//! `bale import`: an archive streamed into the cache in bounded memory.
//!
//! A reader thread walks the archive in its own order (`zip.rs`, `tar.rs`)
//! and cuts it into batches of at most `import.batch_entries` entries and
//! `import.batch_bytes` bytes, holding each entry's bytes as they are in the
//! archive (still compressed, for a zip). An entry too large for a batch is
//! decompressed, checked and stored by the reader itself, streaming. The
//! importer takes one batch at a time: decompresses, checks and hashes its
//! entries in parallel, encodes the new small ones as pack records in
//! parallel, appends them in order and commits the batch (or stores loose
//! objects in parallel). Only the manifest entries (path, hash, size, mode)
//! outlive a batch; they are sorted and checked at the end.

mod tar;
mod zip;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use rayon::prelude::*;

use crate::cache::Cache;
use crate::cache::pack::{Record, write_batches};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{self, ManifestEntry};
use crate::paths;
use crate::progress::Bar;

/// Small entries go to packs when a first batch holds at least this many
/// (a fetch uses the same rule for what it downloads).
pub const PACK_WHEN_MANY: usize = 1000;

/// How an entry's bytes are stored in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Stored,
    Deflate,
    Zstd,
}

/// What the archive is, recognised by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
    TarZst,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
        }
    }
}

/// Where small entries go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Packs when the archive holds many small entries and the workspace
    /// will not hard-link or symlink them (those need loose objects).
    Auto {
        links_share: bool,
    },
    Packed,
    Loose,
}

pub struct Options {
    pub mode: Mode,
    pub threshold: u64,
    /// Whether pack records may be compressed.
    pub compress: bool,
    pub batch_entries: usize,
    pub batch_bytes: u64,
    /// The most bytes a file name may have where the out is checked out
    /// (`fsutil::name_max`): a longer entry name is refused.
    pub name_max: usize,
    pub wait: Duration,
    pub quiet: bool,
}

/// What an import stored.
#[derive(Debug)]
pub struct Imported {
    pub format: Format,
    /// Files in the manifest (which is stored, and dropped here: a
    /// checkout reads it back, and two copies of 10^6 entries cost).
    pub nfiles: usize,
    /// The manifest's hash (the out's hash).
    pub hash: Hash,
    pub size: u64,
    /// Whether small entries went to packs.
    pub packed: bool,
    /// Objects new to the cache.
    pub stored: usize,
}

/// Where an archive comes from.
pub enum Input<'a> {
    File(&'a Path),
    Stdin,
}

/// Why reading an entry (or the archive) failed.
#[derive(Debug)]
pub enum EntryError {
    Entry {
        name: String,
        reason: String,
    },
    Archive(String),
    Io(io::Error),
    Bale(Error),
    /// The importer stopped taking batches (it reports its own error).
    Stopped,
}

impl EntryError {
    pub fn entry(name: &str, reason: impl Into<String>) -> EntryError {
        EntryError::Entry {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn archive(reason: impl Into<String>) -> EntryError {
        EntryError::Archive(reason.into())
    }

    fn into_error(self, archive: &Path) -> Error {
        let bad = |entry, reason| Error::BadArchive {
            archive: archive.to_path_buf(),
            entry,
            reason,
        };
        match self {
            EntryError::Entry { name, reason } => bad(Some(name), reason),
            EntryError::Archive(reason) => bad(None, reason),
            EntryError::Io(e) => Error::io("read", archive, e),
            EntryError::Bale(e) => e,
            EntryError::Stopped => bad(None, "the import stopped".into()),
        }
    }
}

impl From<Error> for EntryError {
    fn from(e: Error) -> Self {
        EntryError::Bale(e)
    }
}

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
struct Pending {
    path: String,
    executable: bool,
    size: u64,
    crc: Option<u32>,
    codec: Codec,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Batch {
    entries: Vec<Pending>,
    /// Entries the reader stored itself (too large for a batch).
    done: Vec<ManifestEntry>,
    /// How many of those were new to the cache.
    done_new: usize,
    dirs: Vec<String>,
    /// The batch was cut by a bound (the archive goes on).
    full: bool,
}

/// The reader's side: collects entries into batches and sends them on.
pub struct Sink<'a> {
    cache: &'a Cache,
    tx: SyncSender<Batch>,
    batch: Batch,
    bytes: u64,
    max_entries: usize,
    max_bytes: u64,
    name_max: usize,
    bar: &'a Bar,
}

impl Sink<'_> {
    /// `entry_name` with the limit of the destination's file system.
    fn name(&self, raw: &[u8]) -> Result<String, EntryError> {
        entry_name(raw, self.name_max)
    }

    fn dir(&mut self, name: String) -> Result<(), EntryError> {
        self.batch.dirs.push(name);
        Ok(())
    }

    /// Takes one file entry: `csize` bytes of `body`, which decode (per
    /// `codec`) to `size` bytes with the given CRC-32.
    #[allow(clippy::too_many_arguments)]
    fn file(
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
    fn stream(
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

    fn progress(&self, n: u64) {
        self.bar.inc(n);
    }

    fn send(&mut self) -> Result<(), EntryError> {
        let batch = std::mem::take(&mut self.batch);
        self.bytes = 0;
        self.tx.send(batch).map_err(|_| EntryError::Stopped)
    }
}

/// The error for reading an entry's content.
fn read_error(path: &str, e: io::Error) -> EntryError {
    if e.kind() == io::ErrorKind::InvalidData {
        EntryError::entry(path, e.to_string())
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        EntryError::entry(path, "is cut off: the archive is truncated")
    } else {
        EntryError::entry(path, format!("cannot be read: {e}"))
    }
}

fn decoder<'r>(codec: Codec, r: &'r mut dyn Read) -> Result<Box<dyn Read + 'r>, EntryError> {
    Ok(match codec {
        Codec::Stored => Box::new(r),
        Codec::Deflate => Box::new(flate2::read::DeflateDecoder::new(r)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(r).map_err(EntryError::Io)?),
    })
}

/// Passes an entry's decoded bytes through, failing as soon as they exceed
/// the declared size (a zip bomb is never inflated beyond it), and at the
/// end when they fall short or their CRC-32 does not match.
struct Checked<R> {
    inner: R,
    declared: u64,
    crc: Option<u32>,
    hasher: crc32fast::Hasher,
    total: u64,
}

impl<R: Read> Checked<R> {
    fn new(inner: R, declared: u64, crc: Option<u32>) -> Checked<R> {
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
fn decode(p: &mut Pending) -> Result<Vec<u8>, EntryError> {
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
fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD);
    r.take(HEAD as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Counts the bytes read from the archive on the progress bar.
struct Counting<'a, R> {
    inner: R,
    bar: &'a Bar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Imports the archive into the cache: every entry stored, the manifest
/// built, checked and stored. Nothing of the workspace is touched. On an
/// error, the batches committed so far stay in the cache.
pub fn import(cache: &Cache, input: Input<'_>, opts: &Options) -> Result<Imported> {
    let shown: PathBuf = match input {
        Input::File(p) => p.to_path_buf(),
        Input::Stdin => PathBuf::from("-"),
    };
    let (format, len, mut stream): (Format, u64, Box<dyn Read + Send>) = match input {
        Input::File(p) => {
            let mut f = File::open(p).map_err(|e| Error::io("read", p, e))?;
            let len = f.metadata().map_err(|e| Error::io("read", p, e))?.len();
            let head = read_head(&mut f).map_err(|e| Error::io("read", p, e))?;
            let format = detect(&head).ok_or_else(|| not_an_archive(p))?;
            let rest = io::Cursor::new(head).chain(f);
            (format, len, Box::new(rest))
        }
        Input::Stdin => {
            let mut stdin = io::stdin().lock();
            let head = read_head(&mut stdin).map_err(|e| Error::io("read", "-", e))?;
            let format = detect(&head).ok_or_else(|| not_an_archive(Path::new("-")))?;
            if format == Format::Zip {
                return Err(Error::BadArchive {
                    archive: shown,
                    entry: None,
                    reason: "a zip cannot be read from a stream (its directory is at its end): give the file's path".into(),
                });
            }
            let rest = io::Cursor::new(head).chain(io::stdin());
            (format, 0, Box::new(rest))
        }
    };
    let bar = Bar::bytes(len, "importing", opts.quiet);
    let zip = match (format, input) {
        (Format::Zip, Input::File(p)) => Some(zip::Zip::open(p).map_err(|e| e.into_error(&shown))?),
        _ => None,
    };
    let (tx, rx) = sync_channel::<Batch>(0);
    let (records_tx, records_rx) = sync_channel::<Vec<Record>>(0);
    let mut importer = Importer {
        cache,
        opts,
        records: Some(records_tx),
        packed: match opts.mode {
            Mode::Packed => Some(true),
            Mode::Loose => Some(false),
            Mode::Auto { .. } => None,
        },
        entries: manifest::Builder::default(),
        dirs: Vec::new(),
        stored: AtomicUsize::new(0),
        loose_possible: cache.has_loose_objects(),
    };
    let result = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut sink = Sink {
                cache,
                tx,
                batch: Batch::default(),
                bytes: 0,
                max_entries: opts.batch_entries,
                max_bytes: opts.batch_bytes,
                name_max: opts.name_max,
                bar: &bar,
            };
            let read = match zip {
                Some(z) => z.read(&mut sink),
                None => {
                    let counted = Counting {
                        inner: std::mem::replace(&mut stream, Box::new(io::empty())),
                        bar: &bar,
                    };
                    let input = BufReader::with_capacity(1 << 18, counted);
                    match format {
                        Format::TarGz => {
                            tar::read(flate2::read::MultiGzDecoder::new(input), &mut sink)
                        }
                        Format::TarZst => match zstd::stream::read::Decoder::with_buffer(input) {
                            Ok(d) => tar::read(d, &mut sink),
                            Err(e) => Err(EntryError::Io(e)),
                        },
                        _ => tar::read(input, &mut sink),
                    }
                }
            };
            read.and_then(|()| sink.send())
        });
        // The pack writer appends the records in archive order, on a
        // thread of its own, while the next batch is decoded.
        let writer = s.spawn(move || write_batches(cache.packs(), opts.wait, records_rx));
        let mut failed = None;
        for batch in rx.iter() {
            if let Err(e) = importer.take(batch) {
                failed = Some(e);
                break;
            }
        }
        drop(rx);
        // Closing the channel ends the writer, which commits what it has.
        importer.records = None;
        let read = reader.join().unwrap_or(Err(EntryError::Stopped));
        let written = writer.join().unwrap_or_else(|_| {
            Err(Error::io(
                "write",
                cache.packs().dir(),
                io::Error::other("the pack writer stopped"),
            ))
        });
        let packed_stored = match written {
            Ok(n) => n,
            Err(e) => return Err(EntryError::Bale(e)),
        };
        importer.stored.fetch_add(packed_stored, Ordering::Relaxed);
        match (failed, read) {
            (Some(EntryError::Stopped), Err(e)) | (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    });
    bar.finish();
    result.map_err(|e| e.into_error(&shown))?;
    importer.finish(format, &shown)
}

fn not_an_archive(p: &Path) -> Error {
    Error::BadArchive {
        archive: p.to_path_buf(),
        entry: None,
        reason: "is not an archive bale can read (zip, tar, tar.gz or tar.zst)".into(),
    }
}

/// The batch-taking side.
struct Importer<'a> {
    cache: &'a Cache,
    opts: &'a Options,
    /// To the pack writer's thread; `None` once closed.
    records: Option<SyncSender<Vec<Record>>>,
    /// Whether small entries go to packs (`None`: not decided yet).
    packed: Option<bool>,
    /// The manifest's entries, gathered as the archive lists them.
    entries: manifest::Builder,
    dirs: Vec<String>,
    /// Objects new to the cache.
    stored: AtomicUsize,
    /// Whether the cache has loose objects at all (else a small entry
    /// cannot be loose already, and no stat is made to find out).
    loose_possible: bool,
}

impl Importer<'_> {
    /// Decodes, checks and hashes a batch's entries in parallel; stores the
    /// large ones (or all, when loose) as loose objects on the way, and
    /// hands the small ones, encoded as records, to the pack writer.
    fn take(&mut self, batch: Batch) -> Result<(), EntryError> {
        let threshold = self.opts.threshold;
        let small = |size: u64| size < threshold;
        let mode = self.opts.mode;
        let packed = *self.packed.get_or_insert_with(|| match mode {
            Mode::Auto { links_share: false } => {
                let n = batch.entries.iter().filter(|p| small(p.size)).count();
                n >= PACK_WHEN_MANY || (batch.full && n * 2 > batch.entries.len())
            }
            Mode::Packed => true,
            _ => false,
        });
        for e in batch.done {
            self.gather(&e)?;
        }
        self.stored.fetch_add(batch.done_new, Ordering::Relaxed);
        self.dirs.extend(batch.dirs);
        let (cache, loose_possible, stored) = (self.cache, self.loose_possible, &self.stored);
        let compress = self.opts.compress;
        let done: Vec<(ManifestEntry, Option<Record>)> = batch
            .entries
            .into_par_iter()
            .map(|mut p| {
                let bytes = decode(&mut p)?;
                let hash = Hash::of_bytes(&bytes);
                let entry = ManifestEntry {
                    path: p.path,
                    hash,
                    size: p.size,
                    executable: p.executable,
                };
                if packed && small(p.size) {
                    if loose_possible && cache.is_loose(hash) {
                        return Ok((entry, None));
                    }
                    return Ok((entry, Some(Record::encode(hash, bytes, compress))));
                }
                if cache.store_new(&bytes, hash)? {
                    stored.fetch_add(1, Ordering::Relaxed);
                }
                Ok((entry, None))
            })
            .collect::<Result<_, EntryError>>()?;
        let mut records = Vec::new();
        for (entry, record) in done {
            self.gather(&entry)?;
            records.extend(record);
        }
        if !records.is_empty() {
            let sent = self.records.as_ref().map(|tx| tx.send(records));
            if !matches!(sent, Some(Ok(()))) {
                return Err(EntryError::Stopped);
            }
        }
        Ok(())
    }

    fn gather(&mut self, e: &ManifestEntry) -> Result<(), EntryError> {
        self.entries
            .push(&e.path, e.hash, e.size, e.executable)
            .map_err(EntryError::archive)
    }

    fn finish(self, format: Format, archive: &Path) -> Result<Imported> {
        let bad = |reason: String| Error::BadArchive {
            archive: archive.to_path_buf(),
            entry: None,
            reason,
        };
        let size = self.entries.size();
        let manifest = self.entries.finish().map_err(bad)?;
        for d in &self.dirs {
            if let Some(i) = manifest.find(d) {
                return Err(bad(format!(
                    "{:?} is both a file and a folder",
                    manifest.get(i).path
                )));
            }
        }
        let hash = self.cache.store_manifest(&manifest)?;
        let nfiles = manifest.len();
        drop(manifest);
        Ok(Imported {
            format,
            nfiles,
            hash,
            size,
            packed: self.packed.unwrap_or(false),
            stored: self.stored.into_inner(),
        })
    }
}

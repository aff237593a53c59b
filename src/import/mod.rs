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
//!
//! `sink.rs` is the reader's side, `decode.rs` decodes and checks entries
//! and recognises formats, `store.rs` takes the batches and stores them.

mod decode;
mod sink;
mod store;
mod tar;
mod zip;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use crate::cache::Cache;
use crate::cache::pack::{Record, write_batches};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{self};
use crate::progress::Bar;

pub use decode::detect;

use decode::{Counting, read_head};
use sink::Batch;
pub use sink::{Sink, entry_name, strip_dot_slash, unnamed_file};
use store::Importer;

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

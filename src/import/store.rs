//! The batch-taking side: each batch decoded and hashed in parallel, its
//! small new objects encoded as pack records for the writer thread, the
//! others stored loose; the manifest entries gathered and, at the end,
//! sorted, checked and stored.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;

use rayon::prelude::*;

use crate::cache::Cache;
use crate::cache::pack::Record;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{self, ManifestEntry};

use super::decode::decode;
use super::sink::Batch;
use super::{EntryError, Format, Imported, Mode, Options, PACK_WHEN_MANY};

/// The batch-taking side.
pub(super) struct Importer<'a> {
    pub(super) cache: &'a Cache,
    pub(super) opts: &'a Options,
    /// To the pack writer's thread; `None` once closed.
    pub(super) records: Option<SyncSender<Vec<Record>>>,
    /// Whether small entries go to packs (`None`: not decided yet).
    pub(super) packed: Option<bool>,
    /// The manifest's entries, gathered as the archive lists them.
    pub(super) entries: manifest::Builder,
    pub(super) dirs: Vec<String>,
    /// Objects new to the cache.
    pub(super) stored: AtomicUsize,
    /// Whether the cache has loose objects at all (else a small entry
    /// cannot be loose already, and no stat is made to find out).
    pub(super) loose_possible: bool,
}

impl Importer<'_> {
    /// Decodes, checks and hashes a batch's entries in parallel; stores the
    /// large ones (or all, when loose) as loose objects on the way, and
    /// hands the small ones, encoded as records, to the pack writer.
    pub(super) fn take(&mut self, batch: Batch) -> Result<(), EntryError> {
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

    pub(super) fn gather(&mut self, e: &ManifestEntry) -> Result<(), EntryError> {
        self.entries
            .push(&e.path, e.hash, e.size, e.executable)
            .map_err(EntryError::archive)
    }

    pub(super) fn finish(self, format: Format, archive: &Path) -> Result<Imported> {
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

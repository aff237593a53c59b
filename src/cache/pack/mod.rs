//! Packs: small objects appended as self-describing records to a few large
//! files, `<cache>/packs/<id>.pack`, with one SQLite index,
//! `<cache>/packs/index.db`, that says where each object's record is. The
//! index only caches what the packs hold: it can be rebuilt from them.
//!
//! `record` is the record format, `index` the SQLite index (schema, rebuild,
//! damaged records), `writer` the one writer (commit protocol, recovery,
//! rewriting sparse packs); this module reads: locate, read, list.

mod index;
mod record;
mod writer;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

pub use index::Damage;
use index::{CUT_OFF, NOT_CHECKING_OUT};
pub use record::{PACK_HEADER, RECORD_HEADER, RECORD_TRAILER, Record};
use record::{decode, record_holds};
pub use writer::{MAX_PACK_BYTES, PackWriter, write_batches};

use crate::error::{Error, IoContext, Result};
use crate::hash::Hash;
use crate::warnings::Warnings;

/// Where an object's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: u32,
    pub offset: u64,
    pub stored: u64,
    pub size: u64,
    pub codec: u8,
}

impl Location {
    /// The record's whole length in its pack.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER as u64 + self.stored + RECORD_TRAILER as u64
    }
}

/// What reading a packed object found.
pub enum Found {
    Missing,
    /// The record does not check out (it is dropped from the index).
    Corrupt,
    Bytes(Vec<u8>),
}

/// The packs of one cache, for readers; `PackWriter` appends to them.
#[derive(Debug)]
pub struct Packs {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Opened on first use, and only once the index exists: a cache without
    /// packs is never touched.
    index: Mutex<Option<Connection>>,
    files: Mutex<HashMap<u32, Arc<File>>>,
    /// Locations looked up ahead for a run of reads (`hint`), sorted by
    /// hash: a checkout of 10^5 packed files asks the index once, not once
    /// per file from every thread through one connection.
    hints: RwLock<Vec<(Hash, Location)>>,
    /// What readers and the writer found wrong and dealt with (an index
    /// rebuilt, objects lost with their pack), for the caller to tell.
    warnings: Warnings,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn pack_name(id: u32) -> String {
    format!("{id:08}.pack")
}

fn pack_id(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".pack")?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl Packs {
    pub fn new(cache_dir: &Path) -> Packs {
        Packs {
            dir: cache_dir.join("packs"),
            lock_path: cache_dir.join("lock"),
            index: Mutex::new(None),
            files: Mutex::new(HashMap::new()),
            hints: RwLock::new(Vec::new()),
            warnings: Warnings::default(),
        }
    }

    /// Where this cache's warnings go.
    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// Looks up where the objects `hashes` (sorted, distinct) are packed,
    /// in one pass over the index in hash order, for the reads that follow
    /// (`locate` answers from it; `unhint` drops it). The pass steps along
    /// the index while the objects asked for are dense in it, and seeks
    /// where they are sparse.
    pub fn hint(&self, hashes: &[Hash]) -> Result<()> {
        /// Rows stepped over before a seek is cheaper.
        const STEPS: usize = 8;
        let found = self
            .with_index(|c| {
                let mut st = c.prepare_cached(
                    "SELECT hash, pack, offset, stored, size, codec FROM objects \
                     WHERE hash >= ?1 ORDER BY hash",
                )?;
                let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(Hash, Location)> {
                    let b: [u8; 16] = r.get(0)?;
                    Ok((
                        Hash::from_bytes(b),
                        Location {
                            pack: r.get(1)?,
                            offset: r.get(2)?,
                            stored: r.get(3)?,
                            size: r.get(4)?,
                            codec: r.get(5)?,
                        },
                    ))
                };
                let mut out = Vec::new();
                let mut i = 0;
                while i < hashes.len() {
                    // Rows from the first hash still wanted on, in order:
                    // a wanted hash below a row seen is not packed.
                    let key = hashes[i].to_bytes();
                    let mut rows = st.query([&key[..]])?;
                    let mut stepped = 0;
                    while i < hashes.len() {
                        let Some(r) = rows.next()? else {
                            i = hashes.len();
                            break;
                        };
                        let (h, loc) = row(r)?;
                        while i < hashes.len() && hashes[i] < h {
                            i += 1;
                        }
                        if i < hashes.len() && hashes[i] == h {
                            out.push((h, loc));
                            i += 1;
                            stepped = 0;
                        } else {
                            stepped += 1;
                            if stepped > STEPS {
                                break;
                            }
                        }
                    }
                }
                Ok(out)
            })?
            .unwrap_or_default();
        *self.hints.write().unwrap_or_else(|p| p.into_inner()) = found;
        Ok(())
    }

    /// Forgets the locations `hint` looked up.
    pub fn unhint(&self) {
        let mut hints = self.hints.write().unwrap_or_else(|p| p.into_inner());
        hints.clear();
        hints.shrink_to_fit();
    }

    /// Whether `hint` found the object `hash` packed.
    pub fn is_hinted(&self, hash: Hash) -> bool {
        self.hinted(hash).is_some()
    }

    fn hinted(&self, hash: Hash) -> Option<Location> {
        let hints = self.hints.read().unwrap_or_else(|p| p.into_inner());
        hints
            .binary_search_by(|(h, _)| h.cmp(&hash))
            .ok()
            .map(|i| hints[i].1)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.db")
    }

    fn pack_path(&self, id: u32) -> PathBuf {
        self.dir.join(pack_name(id))
    }

    /// Whether this cache has packs (or an index of them) at all.
    pub fn exist(&self) -> bool {
        guard(&self.index).is_some()
            || self.index_path().exists()
            || self.any_pack().unwrap_or(true)
    }

    /// Whether any pack file exists.
    fn any_pack(&self) -> Result<bool> {
        Ok(!self.pack_ids()?.is_empty())
    }

    fn pack_ids(&self) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        match fs::read_dir(&self.dir) {
            Ok(r) => {
                for e in r {
                    let e = e.at("read the packs folder", &self.dir)?;
                    if let Some(id) = e.file_name().to_str().and_then(pack_id) {
                        ids.push(id);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read the packs folder", &self.dir, e)),
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

impl Packs {
    /// Where the object `hash` is packed, if it is.
    pub fn locate(&self, hash: Hash) -> Result<Option<Location>> {
        match self.hinted(hash) {
            Some(loc) => Ok(Some(loc)),
            None => self.locate_in_index(hash),
        }
    }

    /// `locate`, from the index itself.
    fn locate_in_index(&self, hash: Hash) -> Result<Option<Location>> {
        let key = hash.to_bytes();
        Ok(self
            .with_index(|c| {
                c.prepare_cached(
                    "SELECT pack, offset, stored, size, codec FROM objects WHERE hash = ?1",
                )?
                .query_row([&key[..]], |r| {
                    Ok(Location {
                        pack: r.get(0)?,
                        offset: r.get(1)?,
                        stored: r.get(2)?,
                        size: r.get(3)?,
                        codec: r.get(4)?,
                    })
                })
                .optional()
            })?
            .flatten())
    }

    fn file(&self, id: u32) -> io::Result<Arc<File>> {
        let mut files = guard(&self.files);
        if let Some(f) = files.get(&id) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.pack_path(id))?);
        files.insert(id, f.clone());
        Ok(f)
    }

    /// The bytes of the record the index names for `hash`, as they are in
    /// the pack: `None` when it is not packed (or its pack is gone), and
    /// `Some((loc, None))` when the pack ends before the record does.
    fn raw_record(&self, hash: Hash) -> Result<Option<(Location, Option<Vec<u8>>)>> {
        // A pack may be rewritten by gc between the lookup and the read:
        // then the object has moved, and a second lookup finds it.
        for attempt in 0..2 {
            let found = if attempt == 0 {
                self.locate(hash)?
            } else {
                self.locate_in_index(hash)?
            };
            let Some(loc) = found else {
                return Ok(None);
            };
            let f = match self.file(loc.pack) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.drop_entry(hash, loc, "its pack file is gone");
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("read", self.pack_path(loc.pack), e)),
            };
            let mut bytes = vec![0; loc.record_len() as usize];
            return match f.read_exact_at(&mut bytes, loc.offset) {
                Ok(()) => Ok(Some((loc, Some(bytes)))),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some((loc, None))),
                Err(e) => Err(Error::io("read", self.pack_path(loc.pack), e)),
            };
        }
        Ok(None)
    }

    /// Reads and checks the packed object `hash`. A record that does not
    /// check out is dropped from the index, so it is never served again.
    pub fn read(&self, hash: Hash) -> Result<Found> {
        Ok(match self.raw_record(hash)? {
            None => Found::Missing,
            Some((loc, None)) => {
                self.drop_entry(hash, loc, CUT_OFF);
                Found::Corrupt
            }
            Some((loc, Some(b))) => match decode(&b, hash) {
                Some(raw) => Found::Bytes(raw),
                None => {
                    self.drop_entry(hash, loc, NOT_CHECKING_OUT);
                    Found::Corrupt
                }
            },
        })
    }

    /// The record of the packed object `hash` as it is in its pack, once
    /// its header names the object and its checksum holds (the content is
    /// not decompressed: a receiver checks it); `None` when it is not
    /// packed, or its record is damaged (then it is dropped from the index).
    pub fn read_record(&self, hash: Hash) -> Result<Option<Vec<u8>>> {
        Ok(match self.raw_record(hash)? {
            None => None,
            Some((loc, None)) => {
                self.drop_entry(hash, loc, CUT_OFF);
                None
            }
            Some((loc, Some(b))) => match Some(b).filter(|b| record_holds(b, hash)) {
                Some(b) => Some(b),
                None => {
                    self.drop_entry(hash, loc, NOT_CHECKING_OUT);
                    None
                }
            },
        })
    }

    /// Drops the object's row if it still names `loc` (best effort, not
    /// waiting long for a writer): the record there is corrupt or gone, for
    /// `reason`, which is kept for `fsck` to tell.
    fn drop_entry(&self, hash: Hash, loc: Location, reason: &str) {
        {
            let mut hints = self.hints.write().unwrap_or_else(|p| p.into_inner());
            if let Ok(i) = hints.binary_search_by(|(h, _)| h.cmp(&hash)) {
                hints.remove(i);
            }
        }
        let key = hash.to_bytes();
        let _ = self.with_index(|c| {
            c.busy_timeout(Duration::from_millis(200))?;
            let tx = c.unchecked_transaction()?;
            let dropped = tx.execute(
                "DELETE FROM objects WHERE hash = ?1 AND pack = ?2 AND offset = ?3",
                params![&key[..], loc.pack, loc.offset],
            )?;
            if dropped > 0 {
                tx.execute(
                    "INSERT OR REPLACE INTO damaged (pack, offset, length, hash, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![loc.pack, loc.offset, loc.record_len(), &key[..], reason],
                )?;
            }
            let r = tx.commit();
            c.busy_timeout(Duration::from_secs(30))?;
            r
        });
    }

    /// Every packed object and its raw size.
    pub fn list(&self) -> Result<Vec<(Hash, u64)>> {
        Ok(self
            .with_index(|c| {
                let mut st = c.prepare("SELECT hash, size FROM objects")?;
                let rows = st.query_map([], |r| {
                    let b: [u8; 16] = r.get(0)?;
                    Ok((Hash::from_bytes(b), r.get::<_, u64>(1)?))
                })?;
                rows.collect()
            })?
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    pub(super) fn obj(i: usize) -> Vec<u8> {
        format!("object number {i} ")
            .repeat(i % 50 + 1)
            .into_bytes()
    }

    /// A hint answers for every object asked for exactly as the index
    /// does, whether the objects asked for are dense in the index (a pass
    /// along it) or sparse (seeks), and a hinted corrupt record is dropped
    /// from the hints with the index row.
    #[test]
    fn hints_agree_with_the_index() {
        let t = tempfile::tempdir().unwrap();
        let packs = Packs::new(t.path());
        let h = |i: usize| Hash::of_bytes(&obj(i));
        let mut w = PackWriter::open(&packs, Duration::from_secs(1)).unwrap();
        for i in (0..400).filter(|i| i % 3 != 0) {
            w.add(Record::encode(h(i), obj(i), true)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let mut rng = fastrand::Rng::with_seed(3);
        for density in [1, 2, 5, 40, 400] {
            let mut asked: Vec<Hash> = (0..400)
                .filter(|_| rng.usize(..density) == 0)
                .map(h)
                .collect();
            asked.sort_unstable();
            asked.dedup();
            packs.hint(&asked).unwrap();
            for i in 0..400 {
                let x = h(i);
                let want = packs.locate_in_index(x).unwrap();
                let hinted = packs.hinted(x);
                if asked.binary_search(&x).is_ok() {
                    assert_eq!(hinted, want, "object {i}, 1 in {density} asked");
                    assert_eq!(packs.locate(x).unwrap(), want);
                } else {
                    assert_eq!(hinted, None, "object {i} was not asked for");
                }
            }
        }
        packs.hint(&[]).unwrap();
        assert!(packs.hints.read().unwrap().is_empty());
        let all: Vec<Hash> = {
            let mut v: Vec<Hash> = (0..400).map(h).collect();
            v.sort_unstable();
            v
        };
        packs.hint(&all).unwrap();
        assert_eq!(packs.hints.read().unwrap().len(), 400 - 134);
        // A hinted record found corrupt leaves the hints and the index.
        let loc = packs.hinted(h(5)).unwrap();
        let path = packs.pack_path(loc.pack);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"!", loc.offset + 41).unwrap();
        guard(&packs.files).clear();
        assert!(matches!(packs.read(h(5)).unwrap(), Found::Corrupt));
        assert_eq!(packs.hinted(h(5)), None);
        assert!(packs.locate(h(5)).unwrap().is_none());
        packs.unhint();
        assert!(matches!(packs.read(h(7)).unwrap(), Found::Bytes(b) if b == obj(7)));
    }
}

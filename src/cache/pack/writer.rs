//! The one writer of a cache's packs.
//!
//! Writing (one writer per cache, under `<cache>/lock`): a batch of records
//! is appended, the pack is `fdatasync`ed (and its folder `fsync`ed when the
//! pack is new), then the batch's index rows and each pack's committed
//! length are written in one transaction. An object is in the cache once
//! its row is committed. Bytes beyond a pack's committed length are a torn
//! or abandoned batch: the next writer cuts them off before it appends.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::index::{Damaged, open_db};
use super::record::{PACK_HEADER, RECORD_HEADER, RECORD_TRAILER, Record, decode};
use super::{Location, Packs, guard};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::lock::{self, Access};
use crate::fsutil::sqlite::{self, is_damage};
use crate::hash::Hash;

/// A pack is closed to new records once it holds this many bytes.
pub const MAX_PACK_BYTES: u64 = 256 << 20;
/// Appended bytes are written in pieces of about this size.
const WRITE_BUFFER: usize = 1 << 20;
/// `commit_if_due` commits once this many bytes wait for a commit: each
/// commit costs two syncs, so it is not made for every small batch.
const COMMIT_BYTES: u64 = 64 << 20;

/// The open pack a writer appends to.
struct Appending {
    id: u32,
    file: File,
    /// Where the next record goes (committed bytes plus the batch so far).
    end: u64,
    /// Records appended but not yet written out, and their bytes.
    queue: Vec<Record>,
    queued: u64,
    /// The pack was made by this writer and has no committed row yet.
    new: bool,
}

/// The one writer of a cache's packs: it holds `<cache>/lock` while it
/// lives. `add` appends, `commit` makes a batch durable and indexed.
pub struct PackWriter<'a> {
    packs: &'a Packs,
    _lock: File,
    conn: Connection,
    current: Option<Appending>,
    /// Packs written to in this batch, already closed (synced at commit).
    closed: Vec<Appending>,
    /// Objects appended since the last commit, and their bytes.
    pending: usize,
    pending_bytes: u64,
    /// Hashes appended since the last commit.
    batch: HashSet<Hash>,
    /// A write transaction is open: the rows of the appended records are
    /// in it, to be committed once their bytes are synced.
    in_txn: bool,
}

impl<'a> PackWriter<'a> {
    /// Takes the cache lock (waiting up to `wait`), opens the index, and
    /// cuts off any bytes that a killed writer left beyond the committed
    /// records.
    pub fn open(packs: &'a Packs, wait: Duration) -> Result<PackWriter<'a>> {
        fs::create_dir_all(&packs.dir).at("create the packs folder", &packs.dir)?;
        let lock = lock::lock(&packs.lock_path, Access::Write(wait))?.0;
        if !packs.index_path().exists() && packs.any_pack()? {
            packs.warnings.push(format!(
                "the pack index {} is missing; it is rebuilt from the packs",
                packs.index_path().display()
            ));
            packs.rebuild_index_locked()?;
        }
        let conn = match open_db(&packs.index_path()) {
            Ok(c) => c,
            Err(e) if is_damage(&e) => {
                let path = packs.index_path();
                packs.warnings.push(format!(
                    "the pack index {} cannot be read ({e}); it was set aside and is rebuilt from the packs",
                    path.display()
                ));
                sqlite::set_aside(&path);
                packs.rebuild_index_locked()?;
                open_db(&path).map_err(|e| packs.db_error(e))?
            }
            Err(e) => return Err(packs.db_error(e)),
        };
        let mut w = PackWriter {
            packs,
            _lock: lock,
            conn,
            current: None,
            closed: Vec::new(),
            pending: 0,
            pending_bytes: 0,
            batch: HashSet::new(),
            in_txn: false,
        };
        w.recover()?;
        Ok(w)
    }

    fn db(&self, e: rusqlite::Error) -> Error {
        self.packs.db_error(e)
    }

    /// Every pack's committed length, by id.
    fn committed(&self) -> Result<HashMap<u32, u64>> {
        let mut st = self
            .conn
            .prepare("SELECT id, committed FROM packs")
            .map_err(|e| self.db(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?)))
            .map_err(|e| self.db(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.db(e))
    }

    /// Makes the packs and the index agree again after a writer died,
    /// trusting the packs over the index (which only caches them):
    /// - a pack gc retired is deleted;
    /// - bytes past a pack's committed length (an abandoned batch), and any
    ///   pack the index does not list (a new pack whose first batch never
    ///   committed, or an index older than the packs), are scanned: every
    ///   record there that checks out is indexed (after its pack is
    ///   synced), and only what follows the last good record is cut off;
    /// - rows of a pack whose file is gone are forgotten, with a warning.
    fn recover(&mut self) -> Result<()> {
        let committed = self.committed()?;
        let retired: Vec<u32> = self
            .conn
            .prepare("SELECT id FROM retired")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.db(e))?;
        let on_disk = self.packs.pack_ids()?;
        for &id in &retired {
            let path = self.packs.pack_path(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", path, e)),
            }
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.db(e))?;
        for &id in &retired {
            tx.execute("DELETE FROM retired WHERE id = ?1", [id])
                .map_err(|e| self.packs.db_error(e))?;
        }
        for &id in on_disk.iter().filter(|id| !retired.contains(id)) {
            let path = self.packs.pack_path(id);
            let len = fs::metadata(&path).at("read", &path)?.len();
            let from = committed.get(&id).copied();
            if from.is_some_and(|c| c >= len) {
                continue;
            }
            // Past the committed length lies what a killed writer left: not
            // damage, but a batch that never was.
            let (end, found) =
                self.packs
                    .index_pack(&tx, id, from.unwrap_or(0), Damaged::Ignored)?;
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .at("write", &path)?;
            if len > end {
                f.set_len(end).at("write", &path)?;
            }
            f.sync_data().at("write", &path)?;
            tx.execute(
                "INSERT OR REPLACE INTO packs (id, committed) VALUES (?1, ?2)",
                params![id, end],
            )
            .map_err(|e| self.packs.db_error(e))?;
            if found > 0 {
                self.packs.warnings.push(format!(
                    "{found} object(s) in {} that the pack index did not list were indexed",
                    path.display()
                ));
            }
        }
        let gone: Vec<u32> = committed
            .keys()
            .filter(|id| !on_disk.contains(id))
            .copied()
            .collect();
        if !gone.is_empty() {
            self.packs.warnings.push(format!(
                "{} pack file(s) listed in {} are gone; their objects are no longer in the cache",
                gone.len(),
                self.packs.index_path().display()
            ));
            for id in gone {
                tx.execute("DELETE FROM objects WHERE pack = ?1", [id])
                    .map_err(|e| self.packs.db_error(e))?;
                tx.execute("DELETE FROM packs WHERE id = ?1", [id])
                    .map_err(|e| self.packs.db_error(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Removes the objects from the index (gc), in one transaction; their
    /// bytes stay in their packs until `rewrite_sparse` rewrites them.
    pub fn forget(&mut self, hashes: &[Hash]) -> Result<()> {
        self.commit()?;
        let tx = self.conn.unchecked_transaction().map_err(|e| self.db(e))?;
        {
            let mut del = tx
                .prepare_cached("DELETE FROM objects WHERE hash = ?1")
                .map_err(|e| self.packs.db_error(e))?;
            for h in hashes {
                del.execute([&h.to_bytes()[..]])
                    .map_err(|e| self.packs.db_error(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    /// Opens the write transaction that the next commit ends. (Inside it,
    /// lookups take no lock of their own.)
    fn begin(&mut self) -> Result<()> {
        if !self.in_txn {
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.packs.db_error(e))?;
            self.in_txn = true;
        }
        Ok(())
    }

    /// Whether the object is packed already, or appended since the last
    /// commit.
    pub fn has(&mut self, hash: Hash) -> Result<bool> {
        if self.batch.contains(&hash) {
            return Ok(true);
        }
        self.begin()?;
        self.conn
            .prepare_cached("SELECT 1 FROM objects WHERE hash = ?1")
            .and_then(|mut st| st.exists([&hash.to_bytes()[..]]))
            .map_err(|e| self.db(e))
    }

    /// Appends a record unless its object is packed already (one index
    /// lookup, which is also the insertion of its row); returns whether it
    /// was appended. It is in the cache only after `commit`.
    pub fn add(&mut self, record: Record) -> Result<bool> {
        if self.batch.contains(&record.hash) {
            return Ok(false);
        }
        self.append(record, &[], true)
    }

    fn append(&mut self, record: Record, avoid: &[u32], only_new: bool) -> Result<bool> {
        let len = record.written_len();
        let usable = self.current.as_ref().is_some_and(|c| {
            !avoid.contains(&c.id)
                && (c.end == PACK_HEADER.len() as u64 || c.end + len <= MAX_PACK_BYTES)
        });
        if !usable {
            self.roll(avoid)?;
        }
        self.begin()?;
        let Some(c) = self.current.as_mut() else {
            return Err(Error::io(
                "write",
                &self.packs.dir,
                io::Error::other("no pack is open"),
            ));
        };
        let sql = if only_new {
            "INSERT OR IGNORE INTO objects (hash, pack, offset, stored, size, codec)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        } else {
            "INSERT OR REPLACE INTO objects (hash, pack, offset, stored, size, codec)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        };
        let inserted = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.execute(params![
                    &record.hash.to_bytes()[..],
                    c.id,
                    c.end,
                    record.payload.len() as u64,
                    record.size,
                    record.codec
                ])
            })
            .map_err(|e| self.packs.db_error(e))?;
        if inserted == 0 {
            return Ok(false);
        }
        self.pending += 1;
        self.pending_bytes += len;
        self.batch.insert(record.hash);
        c.end += len;
        c.queued += len;
        c.queue.push(record);
        if c.queued >= WRITE_BUFFER as u64 {
            flush(c, &self.packs.pack_path(c.id))?;
        }
        Ok(true)
    }

    /// Commits when enough bytes wait for it (see `COMMIT_BYTES`).
    pub fn commit_if_due(&mut self) -> Result<usize> {
        if self.pending_bytes >= COMMIT_BYTES {
            self.commit()
        } else {
            Ok(0)
        }
    }

    /// Closes the current pack (if any) and opens the pack to append to
    /// next: the last one while it has room (and is not in `avoid`), else
    /// a new one.
    fn roll(&mut self, avoid: &[u32]) -> Result<()> {
        if let Some(c) = self.current.take() {
            self.closed.push(c);
        }
        let committed = self.committed()?;
        let last = committed.keys().max().copied();
        let written: Vec<u32> = self.closed.iter().map(|c| c.id).collect();
        if let Some(id) = last
            && !avoid.contains(&id)
            && !written.contains(&id)
        {
            let len = committed[&id];
            if len < MAX_PACK_BYTES {
                let path = self.packs.pack_path(id);
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .at("write", &path)?;
                self.current = Some(Appending {
                    id,
                    file,
                    end: len,
                    queue: Vec::new(),
                    queued: 0,
                    new: false,
                });
                return Ok(());
            }
        }
        // Ids are never reused (a reader may hold a retired pack's id).
        let high: u32 = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'next_pack'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.packs.db_error(e))?
            .unwrap_or(1);
        let on_disk = self.packs.pack_ids()?;
        let id = last
            .into_iter()
            .chain(written)
            .chain(on_disk)
            .map(|m| m + 1)
            .chain([high])
            .max()
            .unwrap_or(1);
        self.begin()?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_pack', ?1)",
                [id + 1],
            )
            .map_err(|e| self.packs.db_error(e))?;
        let path = self.packs.pack_path(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .at("create", &path)?;
        file.write_all_at(&PACK_HEADER, 0).at("write", &path)?;
        self.current = Some(Appending {
            id,
            file,
            end: PACK_HEADER.len() as u64,
            queue: Vec::new(),
            queued: 0,
            new: true,
        });
        Ok(())
    }

    /// Makes the appended records durable, then commits their rows (and
    /// each pack's committed length) in one transaction. Returns the number
    /// of objects committed.
    pub fn commit(&mut self) -> Result<usize> {
        if self.pending == 0 {
            if self.in_txn {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| self.packs.db_error(e))?;
                self.in_txn = false;
            }
            return Ok(0);
        }
        let mut packs: Vec<Appending> = self.closed.drain(..).collect();
        packs.extend(self.current.take());
        let mut new_pack = false;
        for c in &mut packs {
            let path = self.packs.pack_path(c.id);
            flush(c, &path)?;
            c.file.sync_data().at("write", &path)?;
            new_pack |= c.new;
        }
        if new_pack {
            File::open(&self.packs.dir)
                .and_then(|d| d.sync_all())
                .at("write", &self.packs.dir)?;
        }
        for c in &packs {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO packs (id, committed) VALUES (?1, ?2)",
                    params![c.id, c.end],
                )
                .map_err(|e| self.packs.db_error(e))?;
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.packs.db_error(e))?;
        self.in_txn = false;
        let n = self.pending;
        self.pending = 0;
        self.pending_bytes = 0;
        self.batch.clear();
        // Keep appending to the last pack written.
        if let Some(mut last) = packs.pop() {
            last.new = false;
            self.current = Some(last);
        }
        Ok(n)
    }

    /// Rewrites every pack whose live records take less than half its
    /// bytes: its live records are copied into another pack and indexed
    /// there in one transaction, then the old pack is deleted. A crash
    /// before that transaction leaves the old pack in use and the copies
    /// unindexed (cut off by the next writer); after it, the old pack is an
    /// orphan that the next writer deletes. Returns (packs rewritten, bytes
    /// freed).
    pub fn rewrite_sparse(&mut self) -> Result<(usize, u64)> {
        self.commit()?;
        let committed = self.committed()?;
        let mut live: HashMap<u32, u64> = HashMap::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT pack, SUM(stored) + COUNT(*) * ?1 FROM objects GROUP BY pack")
                .map_err(|e| self.db(e))?;
            let rows = st
                .query_map([(RECORD_HEADER + RECORD_TRAILER) as u64], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?))
                })
                .map_err(|e| self.db(e))?;
            for r in rows {
                let (id, bytes) = r.map_err(|e| self.db(e))?;
                live.insert(id, bytes);
            }
        }
        // A pack with damaged records is rewritten too: its sound records
        // move, and the damage goes with the old pack.
        let damaged: HashSet<u32> = self
            .conn
            .prepare("SELECT DISTINCT pack FROM damaged")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.db(e))?;
        let mut sparse: Vec<u32> = committed
            .iter()
            .filter(|&(id, &len)| {
                let body = len.saturating_sub(PACK_HEADER.len() as u64);
                live.get(id).copied().unwrap_or(0) * 2 < body || damaged.contains(id)
            })
            .map(|(&id, _)| id)
            .collect();
        sparse.sort_unstable();
        let (mut rewritten, mut freed) = (0, 0);
        for &id in &sparse {
            let path = self.packs.pack_path(id);
            let locs: Vec<(Hash, Location)> = {
                let mut st = self
                    .conn
                    .prepare(
                        "SELECT hash, offset, stored, size, codec FROM objects WHERE pack = ?1
                         ORDER BY offset",
                    )
                    .map_err(|e| self.db(e))?;
                let rows = st
                    .query_map([id], |r| {
                        let b: [u8; 16] = r.get(0)?;
                        Ok((
                            Hash::from_bytes(b),
                            Location {
                                pack: id,
                                offset: r.get(1)?,
                                stored: r.get(2)?,
                                size: r.get(3)?,
                                codec: r.get(4)?,
                            },
                        ))
                    })
                    .map_err(|e| self.db(e))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(|e| self.db(e))?
            };
            let f = File::open(&path).at("read", &path)?;
            let mut moved = Vec::with_capacity(locs.len());
            for (h, l) in &locs {
                let mut bytes = vec![0; l.record_len() as usize];
                let good = match f.read_exact_at(&mut bytes, l.offset) {
                    Ok(()) => decode(&bytes, *h).is_some(),
                    // Cut off: as corrupt as a flipped byte.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
                    Err(e) => return Err(Error::io("read", &path, e)),
                };
                match Record::from_bytes(bytes).filter(|_| good) {
                    Some(r) => {
                        self.append(r, &sparse, false)?;
                        moved.push(*h);
                    }
                    // A corrupt record is not carried over.
                    None => self.packs.warnings.push(format!(
                        "object {h} in {} is corrupt; it is dropped",
                        path.display()
                    )),
                }
            }
            let before = committed[&id];
            self.commit()?;
            // The live records are indexed elsewhere now: the old pack is
            // retired (the next writer deletes it if this one dies first).
            let tx = self.conn.unchecked_transaction().map_err(|e| self.db(e))?;
            tx.execute("DELETE FROM objects WHERE pack = ?1", [id])
                .map_err(|e| self.db(e))?;
            tx.execute("DELETE FROM packs WHERE id = ?1", [id])
                .map_err(|e| self.db(e))?;
            tx.execute("DELETE FROM damaged WHERE pack = ?1", [id])
                .map_err(|e| self.db(e))?;
            tx.execute("INSERT OR IGNORE INTO retired (id) VALUES (?1)", [id])
                .map_err(|e| self.db(e))?;
            tx.commit().map_err(|e| self.db(e))?;
            guard(&self.packs.files).remove(&id);
            fs::remove_file(&path).at("delete", &path)?;
            self.conn
                .execute("DELETE FROM retired WHERE id = ?1", [id])
                .map_err(|e| self.db(e))?;
            let kept: u64 = locs.iter().map(|(_, l)| l.record_len()).sum();
            freed += before.saturating_sub(kept);
            rewritten += 1;
        }
        Ok((rewritten, freed))
    }
}

/// The pack writer's thread: appends the records of each batch received,
/// in order, committing when due and at the end. The writer (and the cache
/// lock) is opened at the first batch, so nothing is taken when none comes.
/// Returns how many objects were new to the cache.
pub fn write_batches(
    packs: &Packs,
    wait: Duration,
    batches: impl IntoIterator<Item = Vec<Record>>,
) -> Result<usize> {
    let mut w: Option<PackWriter<'_>> = None;
    let mut stored = 0;
    for records in batches {
        let w = match &mut w {
            Some(w) => w,
            None => w.insert(PackWriter::open(packs, wait)?),
        };
        for r in records {
            stored += usize::from(w.add(r)?);
        }
        w.commit_if_due()?;
    }
    if let Some(mut w) = w {
        w.commit()?;
    }
    Ok(stored)
}

/// Writes the queued records at their place, in few `writev` calls.
fn flush(c: &mut Appending, path: &Path) -> Result<()> {
    use std::io::{IoSlice, Seek, SeekFrom};
    if c.queue.is_empty() {
        return Ok(());
    }
    let at = c.end - c.queued;
    c.file.seek(SeekFrom::Start(at)).at("write", path)?;
    // IOV_MAX is 1024 on Linux.
    for chunk in c.queue.chunks(340) {
        let mut slices: Vec<IoSlice<'_>> = chunk
            .iter()
            .flat_map(|r| {
                [
                    IoSlice::new(&r.head),
                    IoSlice::new(&r.payload),
                    IoSlice::new(&r.tail),
                ]
            })
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match c.file.write_vectored(rest) {
                Ok(0) => {
                    return Err(Error::io("write", path, io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("write", path, e)),
            }
        }
    }
    c.queue.clear();
    c.queued = 0;
    Ok(())
}

impl Drop for PackWriter<'_> {
    fn drop(&mut self) {
        // An uncommitted batch is abandoned: the next writer cuts it off.
        // The reader side must not keep a stale view of the index.
        *guard(&self.packs.index) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Found;
    use super::super::tests::obj;
    use super::*;

    #[test]
    fn committed_objects_read_back_and_a_torn_tail_is_recovered_or_cut_off() {
        let t = tempfile::tempdir().unwrap();
        let packs = Packs::new(t.path());
        let wait = Duration::from_secs(1);
        let h = |i: usize| Hash::of_bytes(&obj(i));
        {
            let mut w = PackWriter::open(&packs, wait).unwrap();
            for i in 0..60 {
                assert!(w.add(Record::encode(h(i), obj(i), true)).unwrap());
            }
            assert!(!w.add(Record::encode(h(0), obj(0), true)).unwrap());
            assert_eq!(w.commit().unwrap(), 60);
            // A batch that never commits (the process dies).
            for i in 60..100 {
                w.add(Record::encode(h(i), obj(i), true)).unwrap();
            }
            let c = w.current.as_mut().unwrap();
            let path = packs.pack_path(c.id);
            flush(c, &path).unwrap();
            // Dropped uncommitted, as by a killed process.
            drop(w);
        }
        for i in 0..60 {
            let Found::Bytes(b) = packs.read(h(i)).unwrap() else {
                panic!("object {i} not read back");
            };
            assert_eq!(b, obj(i));
        }
        assert!(matches!(packs.read(h(70)).unwrap(), Found::Missing));
        // The last record written only in part, and garbage after it.
        let path = packs.pack_path(1);
        let whole = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(whole - 5).unwrap();
        f.write_all_at(b"garbage", whole - 5).unwrap();
        let mut w = PackWriter::open(&packs, wait).unwrap();
        // The sound records of the abandoned batch are indexed, the torn
        // one and the garbage cut off.
        let cut = fs::metadata(&path).unwrap().len();
        assert!(cut < whole, "the torn tail is cut off");
        assert!(matches!(packs.read(h(70)).unwrap(), Found::Bytes(b) if b == obj(70)));
        assert!(matches!(packs.read(h(99)).unwrap(), Found::Missing));
        assert!(w.add(Record::encode(h(99), obj(99), true)).unwrap());
        assert!(!w.add(Record::encode(h(98), obj(98), true)).unwrap());
        w.commit().unwrap();
        drop(w);
        for i in 0..100 {
            assert!(matches!(packs.read(h(i)).unwrap(), Found::Bytes(b) if b == obj(i)));
        }
        // The index is rebuilt from the packs alone.
        fs::remove_file(packs.index_path()).unwrap();
        *guard(&packs.index) = None;
        assert_eq!(packs.list().unwrap().len(), 100);
        // A corrupt record is not served, and is dropped.
        let loc = packs.locate(h(5)).unwrap().unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"!", loc.offset + 41).unwrap();
        guard(&packs.files).clear();
        assert!(matches!(packs.read(h(5)).unwrap(), Found::Corrupt));
        assert!(packs.locate(h(5)).unwrap().is_none());
        assert!(matches!(packs.read(h(6)).unwrap(), Found::Bytes(_)));
    }

    #[test]
    fn rewriting_a_sparse_pack_keeps_the_live_objects_only() {
        let t = tempfile::tempdir().unwrap();
        let packs = Packs::new(t.path());
        let wait = Duration::from_secs(1);
        let hashes: Vec<Hash> = (0..200).map(|i| Hash::of_bytes(&obj(i))).collect();
        let mut w = PackWriter::open(&packs, wait).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            w.add(Record::encode(*h, obj(i), true)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let dead: Vec<Hash> = hashes
            .iter()
            .copied()
            .step_by(3)
            .chain([hashes[1]])
            .collect();
        let before = fs::metadata(packs.pack_path(1)).unwrap().len();
        let mut w = PackWriter::open(&packs, wait).unwrap();
        w.forget(&dead).unwrap();
        assert_eq!(
            w.rewrite_sparse().unwrap().0,
            0,
            "a third dead is not sparse"
        );
        drop(w);
        let more: Vec<Hash> = hashes.iter().copied().skip(1).step_by(3).collect();
        let mut w = PackWriter::open(&packs, wait).unwrap();
        w.forget(&more).unwrap();
        let (n, freed) = w.rewrite_sparse().unwrap();
        drop(w);
        assert_eq!(n, 1);
        assert!(!packs.pack_path(1).exists());
        let after = fs::metadata(packs.pack_path(2)).unwrap().len();
        assert_eq!(before - (after - PACK_HEADER.len() as u64), freed);
        for (i, h) in hashes.iter().enumerate() {
            let got = packs.read(*h).unwrap();
            if i % 3 == 2 {
                assert!(matches!(got, Found::Bytes(b) if b == obj(i)), "{i}");
            } else {
                assert!(matches!(got, Found::Missing), "{i}");
            }
        }
    }
}

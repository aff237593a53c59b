//! Packs: small objects appended as self-describing records to a few large
//! files, `<cache>/packs/<id>.pack`, with one SQLite index,
//! `<cache>/packs/index.db`, that says where each object's record is. The
//! index only caches what the packs hold: it can be rebuilt from them.
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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::lock::{self, Access};
use crate::hash::Hash;

pub const PACK_HEADER: [u8; 16] = *b"BALEPACK\x01\0\0\0\0\0\0\0";
const RECORD_MAGIC: [u8; 4] = *b"BREC";
pub const RECORD_HEADER: usize = 40;
pub const RECORD_TRAILER: usize = 8;
/// A pack is closed to new records once it holds this many bytes.
pub const MAX_PACK_BYTES: u64 = 256 << 20;
/// Records are compressed only from this size on, and kept compressed only
/// when that saves at least an eighth of the bytes.
const COMPRESS_MIN: usize = 256;
/// zstd's "fast 3": about twice the speed of level 1 on small records, for
/// a few percent less saved.
const ZSTD_LEVEL: i32 = -3;
/// Appended bytes are written in pieces of about this size.
const WRITE_BUFFER: usize = 1 << 20;
/// `commit_if_due` commits once this many bytes wait for a commit: each
/// commit costs two syncs, so it is not made for every small batch.
const COMMIT_BYTES: u64 = 64 << 20;

const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packs (
    id        INTEGER PRIMARY KEY,
    committed INTEGER NOT NULL   -- bytes of the pack that hold committed records
);
CREATE TABLE IF NOT EXISTS objects (
    hash   BLOB PRIMARY KEY,     -- 16 bytes, big-endian xxh3-128
    pack   INTEGER NOT NULL,
    offset INTEGER NOT NULL,     -- of the record's header
    stored INTEGER NOT NULL,     -- payload length
    size   INTEGER NOT NULL,     -- raw length
    codec  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retired (
    id INTEGER PRIMARY KEY       -- a pack gc replaced, whose file may remain
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,      -- 'next_pack': pack ids are never reused
    value INTEGER NOT NULL
);
";
const SCHEMA_VERSION: i64 = 2;

/// Records found damaged and dropped from `objects`, kept so that `fsck`
/// names them until the user has dealt with them (the object is in the
/// cache again, or its pack was rewritten or is gone). Made by every open:
/// an index of an earlier version gains it in place.
const DAMAGED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS damaged (
    pack   INTEGER NOT NULL,
    offset INTEGER NOT NULL,     -- where the damaged bytes start
    length INTEGER NOT NULL,     -- how many
    hash   BLOB,                 -- the object, when its header still names it
    reason TEXT NOT NULL,
    PRIMARY KEY (pack, offset)
);
";

/// A stretch of a pack found damaged: its records are not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub pack: PathBuf,
    pub offset: u64,
    pub length: u64,
    /// The object the damaged record held, when its header still says.
    pub hash: Option<Hash>,
    pub reason: String,
}

/// Why a packed record is dropped.
const NOT_CHECKING_OUT: &str = "the record does not check out (checksum or hash)";
const CUT_OFF: &str = "the pack ends before the record does (the pack is truncated)";
const UNREADABLE: &str = "bytes that hold no readable record";

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

/// One object encoded as a record, ready to append: header, payload and
/// checksum kept apart, so that a raw payload is never copied to be
/// written.
pub struct Record {
    pub hash: Hash,
    size: u64,
    codec: u8,
    head: [u8; RECORD_HEADER],
    payload: Vec<u8>,
    tail: [u8; RECORD_TRAILER],
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
    fn from_bytes(mut bytes: Vec<u8>) -> Option<Record> {
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
    fn written_len(&self) -> u64 {
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
struct Header {
    codec: u8,
    hash: Hash,
    size: u64,
    stored: u64,
}

impl Header {
    fn parse(b: &[u8]) -> Option<Header> {
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
fn decode(bytes: &[u8], want: Hash) -> Option<Vec<u8>> {
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
fn record_holds(bytes: &[u8], want: Hash) -> bool {
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

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

impl Packs {
    pub fn new(cache_dir: &Path) -> Packs {
        Packs {
            dir: cache_dir.join("packs"),
            lock_path: cache_dir.join("lock"),
            index: Mutex::new(None),
            files: Mutex::new(HashMap::new()),
            hints: RwLock::new(Vec::new()),
        }
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

    /// Runs `f` on the index, opening it first; `None` when there are no
    /// packs. A damaged index, or one missing beside packs, is rebuilt.
    fn with_index<R>(&self, f: impl Fn(&Connection) -> rusqlite::Result<R>) -> Result<Option<R>> {
        let mut index = guard(&self.index);
        if index.is_none() {
            if !self.index_path().exists() {
                if !self.any_pack()? {
                    return Ok(None);
                }
                warn(format!(
                    "the pack index {} is missing; it is rebuilt from the packs",
                    self.index_path().display()
                ));
                self.rebuild_index(lock::DEFAULT_WAIT)?;
            }
            *index = Some(self.open_index()?);
        }
        let Some(conn) = index.as_ref() else {
            return Ok(None);
        };
        match f(conn) {
            Ok(r) => Ok(Some(r)),
            Err(e) if is_damage(&e) => {
                *index = None;
                self.set_aside_index(&e)?;
                let conn = index.insert(self.open_index()?);
                f(conn).map(Some).map_err(|e| self.db_error(e))
            }
            Err(e) => Err(self.db_error(e)),
        }
    }

    fn db_error(&self, source: rusqlite::Error) -> Error {
        Error::State {
            path: self.index_path(),
            source,
        }
    }

    /// Opens the index (which must exist, or be made by the caller, who
    /// holds the cache lock); a damaged one is set aside and rebuilt.
    fn open_index(&self) -> Result<Connection> {
        match open_existing_db(&self.index_path()) {
            Ok(c) => Ok(c),
            Err(e) if is_damage(&e) => {
                self.set_aside_index(&e)?;
                open_existing_db(&self.index_path()).map_err(|e| self.db_error(e))
            }
            Err(e) => Err(self.db_error(e)),
        }
    }

    /// Sets a damaged index aside and rebuilds it, under the cache lock (a
    /// writer that holds it finishes first; its index may be sound again
    /// by then, and is then kept).
    fn set_aside_index(&self, e: &rusqlite::Error) -> Result<()> {
        let _lock = lock::lock(&self.lock_path, Access::Write(lock::DEFAULT_WAIT))?.0;
        let path = self.index_path();
        if path.exists() && open_existing_db(&path).is_ok() {
            return Ok(());
        }
        let aside = path.with_extension("db.corrupt");
        warn(format!(
            "the pack index {} cannot be read ({e}); it was set aside as {} and is rebuilt from the packs",
            path.display(),
            aside.display()
        ));
        let _ = fs::rename(&path, &aside);
        remove_db_side_files(&path);
        self.rebuild_index_locked().map(|_| ())
    }

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

    /// The damaged records the index remembers, after forgetting those
    /// dealt with: the object is in the index again (fetched or added
    /// anew), or the pack is no longer one of the index's (rewritten by gc,
    /// or gone). `loose(hash)` says whether the cache holds the object loose.
    pub fn damage(&self, loose: impl Fn(Hash) -> bool) -> Result<Vec<Damage>> {
        let rows = self
            .with_index(|c| {
                c.execute(
                    "DELETE FROM damaged WHERE pack NOT IN (SELECT id FROM packs)
                     OR hash IN (SELECT hash FROM objects)",
                    [],
                )?;
                let mut st = c.prepare(
                    "SELECT pack, offset, length, hash, reason FROM damaged ORDER BY pack, offset",
                )?;
                let rows = st.query_map([], |r| {
                    let hash: Option<[u8; 16]> = r.get(3)?;
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, u64>(1)?,
                        r.get::<_, u64>(2)?,
                        hash.map(Hash::from_bytes),
                        r.get::<_, String>(4)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?
            .unwrap_or_default();
        let mut out = Vec::new();
        for (pack, offset, length, hash, reason) in rows {
            if hash.is_some_and(&loose) {
                let key = hash.map(|h| h.to_bytes());
                self.with_index(|c| {
                    c.execute(
                        "DELETE FROM damaged WHERE pack = ?1 AND offset = ?2 AND hash = ?3",
                        params![pack, offset, key.as_ref().map(|k| &k[..])],
                    )
                })?;
                continue;
            }
            out.push(Damage {
                pack: self.pack_path(pack),
                offset,
                length,
                hash,
                reason,
            });
        }
        Ok(out)
    }

    /// Finds packs shorter than the index says they are (cut off by a
    /// copy, a full disk, a bad sector...): the objects recorded past a
    /// pack's end are dropped from the index, as one damaged stretch, and
    /// the pack's committed length becomes the end of its last whole
    /// record. Returns how many objects each such pack lost.
    pub fn drop_truncated(&self, wait: Duration) -> Result<Vec<(PathBuf, usize)>> {
        let _lock = lock::lock(&self.lock_path, Access::Write(wait))?.0;
        let committed: Vec<(u32, u64)> = self
            .with_index(|c| {
                let mut st = c.prepare("SELECT id, committed FROM packs")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?
            .unwrap_or_default();
        let mut out = Vec::new();
        for (id, committed) in committed {
            let path = self.pack_path(id);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            if len >= committed {
                continue;
            }
            let lost = self
                .with_index(|c| {
                    let tx = c.unchecked_transaction()?;
                    let lost = tx.execute(
                        "DELETE FROM objects WHERE pack = ?1 AND offset + ?2 + stored > ?3",
                        params![id, (RECORD_HEADER + RECORD_TRAILER) as u64, len],
                    )?;
                    let end: u64 = tx.query_row(
                        "SELECT COALESCE(MAX(offset + ?2 + stored), ?3) FROM objects WHERE pack = ?1",
                        params![id, (RECORD_HEADER + RECORD_TRAILER) as u64, PACK_HEADER.len() as u64],
                        |r| r.get(0),
                    )?;
                    tx.execute(
                        "UPDATE packs SET committed = ?2 WHERE id = ?1",
                        params![id, end],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO damaged (pack, offset, length, hash, reason)
                         VALUES (?1, ?2, ?3, NULL, ?4)",
                        params![
                            id,
                            end,
                            committed - end,
                            format!(
                                "the pack is truncated: it ends at byte {len} of {committed}, and the {lost} object(s) stored past that are lost"
                            )
                        ],
                    )?;
                    tx.commit()?;
                    Ok(lost)
                })?
                .unwrap_or(0);
            guard(&self.files).remove(&id);
            out.push((path, lost));
        }
        Ok(out)
    }

    /// Rebuilds the index from the packs alone, under the cache lock: every
    /// record whose checksum and hash check out is indexed (the first one
    /// wins when an object is in two packs), and each pack's committed
    /// length is where its last good record ends. Returns (objects, packs).
    pub fn rebuild_index(&self, wait: Duration) -> Result<(usize, usize)> {
        let _lock = lock::lock(&self.lock_path, Access::Write(wait))?.0;
        self.rebuild_index_locked()
    }

    /// Repairs pack `id`'s header, then indexes (in `conn`'s transaction)
    /// every sound record from byte `from` on that the index does not hold
    /// yet, and, with `Damaged::Recorded`, records every damaged stretch.
    /// Returns where the last good record ends, and how many records were
    /// indexed.
    fn index_pack(
        &self,
        conn: &Connection,
        id: u32,
        from: u64,
        damage: Damaged,
    ) -> Result<(u64, usize)> {
        let path = self.pack_path(id);
        repair_header(&path)?;
        let mut found = 0;
        let bad = |offset: u64, length: u64, hash: Option<Hash>, reason: &str| {
            if damage == Damaged::Ignored {
                return Ok(());
            }
            let key = hash.map(|h| h.to_bytes());
            conn.prepare_cached(
                "INSERT OR REPLACE INTO damaged (pack, offset, length, hash, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id,
                offset,
                length,
                key.as_ref().map(|k| &k[..]),
                reason
            ])?;
            Ok(())
        };
        let end = scan_pack(&path, from, bad, |offset, h| {
            found += conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO objects (hash, pack, offset, stored, size, codec)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    &h.hash.to_bytes()[..],
                    id,
                    offset,
                    h.stored,
                    h.size,
                    h.codec
                ])?;
            Ok(())
        })
        .map_err(|e| match e {
            ScanError::Io(e) => Error::io("read", &path, e),
            ScanError::Db(e) => self.db_error(e),
        })?;
        Ok((end, found))
    }

    /// The rebuild proper; the caller holds the cache lock and has closed
    /// its connection to the index.
    fn rebuild_index_locked(&self) -> Result<(usize, usize)> {
        fs::create_dir_all(&self.dir).at("create the packs folder", &self.dir)?;
        let tmp = self.dir.join("index.db.rebuild");
        let _ = fs::remove_file(&tmp);
        remove_db_side_files(&tmp);
        let conn = open_db(&tmp).map_err(|e| self.db_error(e))?;
        let ids = self.pack_ids()?;
        let mut objects = 0;
        {
            let tx = conn.unchecked_transaction().map_err(|e| self.db_error(e))?;
            for &id in &ids {
                let (committed, found) = self.index_pack(&tx, id, 0, Damaged::Recorded)?;
                objects += found;
                tx.execute(
                    "INSERT OR REPLACE INTO packs (id, committed) VALUES (?1, ?2)",
                    params![id, committed],
                )
                .map_err(|e| self.db_error(e))?;
            }
            let next = ids.iter().max().map_or(1, |m| m + 1);
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_pack', ?1)",
                [next],
            )
            .map_err(|e| self.db_error(e))?;
            tx.commit().map_err(|e| self.db_error(e))?;
        }
        drop(conn);
        let path = self.index_path();
        remove_db_side_files(&path);
        fs::rename(&tmp, &path).at("write", &path)?;
        remove_db_side_files(&tmp);
        Ok((objects, ids.len()))
    }
}

fn warn(message: String) {
    let _ = writeln!(io::stderr(), "warning: {message}");
}

fn remove_db_side_files(path: &Path) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(PathBuf::from(side));
    }
}

/// Opens an index that must exist (a reader never makes one).
fn open_existing_db(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    setup_db(conn)
}

fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    setup_db(Connection::open(path)?)
}

fn setup_db(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // A committed batch must survive a power cut: its bytes were synced
    // before, and the rows that name them are synced here.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if version != SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            Some(format!(
                "pack index schema {version}, expected {SCHEMA_VERSION}"
            )),
        ));
    }
    conn.execute_batch(DAMAGED_SCHEMA)?;
    // Reading a table proves the file is a database.
    conn.query_row("SELECT count(*) FROM packs", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

enum ScanError {
    Io(io::Error),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for ScanError {
    fn from(e: rusqlite::Error) -> Self {
        ScanError::Db(e)
    }
}

/// Whether `index_pack` records the damaged stretches it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damaged {
    Recorded,
    /// Bytes past the committed length: an abandoned batch, not damage.
    Ignored,
}

/// Reads a pack from byte `from` (at least its header's end), calling
/// `each(offset, header)` for every record whose checksum and hash hold;
/// a damaged stretch is skipped by looking for the next record magic, and
/// told to `bad(offset, length, hash its header names, reason)`. The pack's
/// own header is not needed: records describe themselves. Reads with
/// `pread`, one record (and a 64 KiB search window) at a time. Returns
/// where the last good record ends (the header's end, at least).
fn scan_pack(
    path: &Path,
    from: u64,
    mut bad: impl FnMut(u64, u64, Option<Hash>, &str) -> Result<(), rusqlite::Error>,
    mut each: impl FnMut(u64, &Header) -> Result<(), ScanError>,
) -> Result<u64, ScanError> {
    let f = File::open(path).map_err(ScanError::Io)?;
    let len = f.metadata().map_err(ScanError::Io)?.len();
    let mut at = from.max(PACK_HEADER.len() as u64);
    let mut end = at;
    let mut head = [0u8; RECORD_HEADER];
    let mut buf = Vec::new();
    let mut window = vec![0u8; 1 << 16];
    while at + (RECORD_HEADER + RECORD_TRAILER) as u64 <= len {
        f.read_exact_at(&mut head, at).map_err(ScanError::Io)?;
        let parsed = Header::parse(&head);
        let mut why = UNREADABLE;
        if let Some(h) = &parsed {
            why = NOT_CHECKING_OUT;
            let total = h
                .stored
                .checked_add((RECORD_HEADER + RECORD_TRAILER) as u64);
            match total {
                Some(total) if at + total <= len => {
                    buf.resize(total as usize, 0);
                    f.read_exact_at(&mut buf, at).map_err(ScanError::Io)?;
                    if decode(&buf, h.hash).is_some() {
                        each(at, h)?;
                        at += total;
                        end = at;
                        continue;
                    }
                }
                Some(_) => why = CUT_OFF,
                None => {}
            }
        }
        // Resynchronise on the next magic after `at`.
        let mut next = None;
        let mut probe = at + 1;
        while next.is_none() && probe + RECORD_MAGIC.len() as u64 <= len {
            let n = window.len().min((len - probe) as usize);
            f.read_exact_at(&mut window[..n], probe)
                .map_err(ScanError::Io)?;
            next = window[..n]
                .windows(RECORD_MAGIC.len())
                .position(|w| w == RECORD_MAGIC)
                .map(|p| probe + p as u64);
            // Overlap by the magic's length less one, not to miss one cut
            // by the window's edge.
            probe += (n as u64)
                .saturating_sub(RECORD_MAGIC.len() as u64 - 1)
                .max(1);
        }
        let stop = next.unwrap_or(len);
        bad(at, stop - at, parsed.map(|h| h.hash), why)?;
        match next {
            Some(n) => at = n,
            None => {
                at = len;
                break;
            }
        }
    }
    if at < len {
        // A tail too short to hold a record.
        bad(at, len - at, None, CUT_OFF)?;
    }
    Ok(end)
}

/// Puts a pack's 16-byte header back if it was damaged (no record can
/// start inside it, so nothing else is touched).
fn repair_header(path: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at("write", path)?;
    let mut head = [0u8; 16];
    if f.read_exact_at(&mut head, 0).is_err() || head != PACK_HEADER {
        f.write_all_at(&PACK_HEADER, 0).at("write", path)?;
        f.sync_data().at("write", path)?;
    }
    Ok(())
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
            warn(format!(
                "the pack index {} is missing; it is rebuilt from the packs",
                packs.index_path().display()
            ));
            packs.rebuild_index_locked()?;
        }
        let conn = match open_db(&packs.index_path()) {
            Ok(c) => c,
            Err(e) if is_damage(&e) => {
                let path = packs.index_path();
                warn(format!(
                    "the pack index {} cannot be read ({e}); it was set aside and is rebuilt from the packs",
                    path.display()
                ));
                let _ = fs::rename(&path, path.with_extension("db.corrupt"));
                remove_db_side_files(&path);
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
                warn(format!(
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
            warn(format!(
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
                    None => warn(format!(
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
    use super::*;

    fn obj(i: usize) -> Vec<u8> {
        format!("object number {i} ")
            .repeat(i % 50 + 1)
            .into_bytes()
    }

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
    fn a_stale_index_or_a_damaged_header_loses_no_committed_record() {
        let t = tempfile::tempdir().unwrap();
        let packs = Packs::new(t.path());
        let wait = Duration::from_secs(1);
        let h = |i: usize| Hash::of_bytes(&obj(i));
        let mut w = PackWriter::open(&packs, wait).unwrap();
        for i in 0..30 {
            w.add(Record::encode(h(i), obj(i), true)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let old = fs::read(packs.index_path()).unwrap();
        let mut w = PackWriter::open(&packs, wait).unwrap();
        for i in 30..60 {
            w.add(Record::encode(h(i), obj(i), true)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        // An index older than the packs (a restored copy).
        for side in ["index.db-wal", "index.db-shm"] {
            let _ = fs::remove_file(packs.dir().join(side));
        }
        fs::write(packs.index_path(), &old).unwrap();
        *guard(&packs.index) = None;
        drop(PackWriter::open(&packs, wait).unwrap());
        for i in 0..60 {
            assert!(
                matches!(packs.read(h(i)).unwrap(), Found::Bytes(b) if b == obj(i)),
                "object {i} lost to a stale index"
            );
        }
        // A damaged pack header, and no index.
        let path = packs.pack_path(1);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", 2).unwrap();
        fs::remove_file(packs.index_path()).unwrap();
        *guard(&packs.index) = None;
        let (n, _) = packs.rebuild_index(wait).unwrap();
        assert_eq!(n, 60);
        let mut head = [0u8; 16];
        File::open(&path)
            .unwrap()
            .read_exact_at(&mut head, 0)
            .unwrap();
        assert_eq!(head, PACK_HEADER, "the header is put back");
        drop(PackWriter::open(&packs, wait).unwrap());
        assert_eq!(packs.list().unwrap().len(), 60);
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

//! Looking after the cache: listing its objects, verifying them (fsck),
//! setting a corrupt one aside, and removing objects and leftovers (gc).

use std::fs::{self, File};
use std::io::{self};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::temp;
use crate::hash::{self, Hash};

use super::{Cache, pack};

/// What `Cache::remove` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Removed {
    /// Bytes of the loose files deleted.
    pub loose_bytes: u64,
    /// Bytes of the packed objects dropped from the index: freed on disk
    /// only when their packs are rewritten.
    pub packed_bytes: u64,
    pub packs_rewritten: usize,
    /// Bytes the rewritten packs gave back.
    pub pack_bytes_freed: u64,
}

impl Removed {
    /// What the disk got back.
    pub fn freed(&self) -> u64 {
        self.loose_bytes + self.pack_bytes_freed
    }
}

impl Cache {
    /// Re-hashes the object `hash`, loose and packed: `None` when it is not
    /// in the cache, `Some(false)` when a copy of it no longer matches its
    /// name (a loose one is then moved aside, a packed one dropped).
    pub fn verify(&self, hash: Hash) -> Result<Option<bool>> {
        let path = self.loose_path(hash);
        let loose = match File::open(&path) {
            Ok(f) => {
                let (got, _) =
                    hash::with_buffer(|buf| hash::hash_reader(&f, buf)).at("read", &path)?;
                if got != hash {
                    self.set_aside(hash);
                }
                Some(got == hash)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let packed = match self.packs.read(hash)? {
            pack::Found::Bytes(_) => Some(true),
            pack::Found::Missing => None,
            pack::Found::Corrupt => Some(false),
        };
        Ok(match (loose, packed) {
            (None, None) => None,
            (Some(a), Some(b)) => Some(a && b),
            (Some(a), None) | (None, Some(a)) => Some(a),
        })
    }

    /// Moves a corrupt loose object out of its name into `<cache>/corrupt/`,
    /// so that it is never served again (and can still be looked at). Best
    /// effort: the caller reports the corruption either way. (A packed copy
    /// is checked, and dropped when corrupt, whenever it is read.)
    pub fn set_aside(&self, hash: Hash) {
        let corrupt = self.dir.join("corrupt");
        let _ = fs::create_dir_all(&corrupt);
        let _ = fs::rename(self.loose_path(hash), corrupt.join(hash.to_string()));
    }

    /// The damaged pack records the cache remembers and the user has not
    /// dealt with yet (`Packs::damage`).
    pub fn pack_damage(&self) -> Result<Vec<pack::Damage>> {
        self.packs.damage(|h| self.loose_path(h).is_file())
    }

    /// Every object in the cache, loose or packed, sorted.
    pub fn list(&self) -> Result<Vec<Hash>> {
        let mut out = self.list_loose()?;
        out.extend(self.packs.list()?.into_iter().map(|(h, _)| h));
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Whether any loose object may be in the cache (an object folder
    /// exists); cheap: one folder read, stopped at the first match.
    pub fn has_loose_objects(&self) -> bool {
        fs::read_dir(&self.dir).is_ok_and(|r| {
            r.flatten()
                .any(|e| e.file_name().len() == 2 && e.file_type().is_ok_and(|t| t.is_dir()))
        })
    }

    /// Every loose object.
    pub fn list_loose(&self) -> Result<Vec<Hash>> {
        let mut out = Vec::new();
        let top = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read the cache folder", &self.dir, e)),
        };
        for prefix in top {
            let prefix = prefix.at("read the cache folder", &self.dir)?;
            let name = prefix.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 2 || !prefix.path().is_dir() {
                continue;
            }
            for obj in fs::read_dir(prefix.path()).at("read the cache folder", &prefix.path())? {
                let obj = obj.at("read the cache folder", &prefix.path())?;
                if let Some(hash) = self.hash_of_loose_path(&obj.path()) {
                    out.push(hash);
                }
            }
        }
        Ok(out)
    }

    /// Deletes the loose object `hash`; returns the bytes it held.
    pub fn remove_loose(&self, hash: Hash) -> Result<u64> {
        let path = self.loose_path(hash);
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("delete", path, e)),
        }
    }

    /// Deletes the objects: loose files at once, packed ones from the index
    /// under the cache lock (waiting up to `wait`), after which packs left
    /// mostly dead are rewritten. Says what that freed on disk.
    pub fn remove(&self, hashes: &[Hash], wait: std::time::Duration) -> Result<Removed> {
        let mut r = Removed::default();
        let mut packed = Vec::new();
        for &h in hashes {
            r.loose_bytes += self.remove_loose(h)?;
            if let Some(l) = self.packs.locate(h)? {
                r.packed_bytes += l.size;
                packed.push(h);
            }
        }
        if !self.packs.dir().join("index.db").exists() {
            return Ok(r);
        }
        let mut w = pack::PackWriter::open(&self.packs, wait)?;
        w.forget(&packed)?;
        (r.packs_rewritten, r.pack_bytes_freed) = w.rewrite_sparse()?;
        Ok(r)
    }

    /// Removes the object folders (`<2 hex>/`) left empty, best effort.
    pub fn remove_empty_folders(&self) {
        if let Ok(r) = fs::read_dir(&self.dir) {
            for e in r.flatten() {
                if e.file_name().len() == 2 && e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
    }

    /// Removes the temp files left by killed processes. Only for a caller
    /// that knows no other writer uses the cache now.
    pub fn remove_temp_files(&self) {
        if let Ok(r) = fs::read_dir(&self.tmp) {
            for e in r.flatten() {
                if e.file_name().to_str().is_some_and(temp::is_temp_shape) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn a_corrupt_object_is_reported_and_set_aside() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let h = Hash::of_bytes(b"bale-manifest 1\n");
        cache.store_new(b"bale-manifest 1\n", h).unwrap();
        assert!(cache.read_manifest(h, Path::new("d")).is_ok());
        let obj = cache.loose_path(h);
        fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&obj, "bale-manifest 1\nx").unwrap();
        assert!(matches!(
            cache.read_manifest(h, Path::new("d")),
            Err(Error::CorruptObject { .. })
        ));
        assert!(!cache.contains(h), "a corrupt object is not served again");
        assert!(t.path().join("cache/corrupt").join(h.to_string()).is_file());
        assert!(matches!(
            cache.read_manifest(h, Path::new("d")),
            Err(Error::MissingObject { .. })
        ));
        assert_eq!(cache.verify(h).unwrap(), None);
    }
}

//! Finding and opening a repository: its folders, configuration, cache,
//! state DB and the lock that keeps two writers apart.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cache::Cache;
use crate::config::{ConfigFiles, Settings};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::lock::lock;
pub use crate::fsutil::lock::{Access, Held};
use crate::paths;
use crate::state::{Snapshot, StateDb};

pub const BALE_DIR: &str = ".bale";

/// How long a writer waits for another bale process to release the lock,
/// unless `--wait` says otherwise.
pub const DEFAULT_LOCK_WAIT: Duration = crate::fsutil::lock::DEFAULT_WAIT;

const GITIGNORE: &str = "/*\n!/config.yaml\n!/.gitignore\n";

pub struct Repo {
    pub root: PathBuf,
    pub bale_dir: PathBuf,
    pub config: ConfigFiles,
    pub settings: Settings,
    pub cache: Cache,
    lock: File,
    pub held: Held,
}

/// The nearest folder at or above `start` that holds `.bale/`.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    let start = paths::normalize(start);
    let mut dir = start.as_path();
    loop {
        if dir.join(BALE_DIR).is_dir() {
            return Ok(dir.to_path_buf());
        }
        dir = dir
            .parent()
            .ok_or_else(|| Error::NotARepository(start.clone()))?;
    }
}

impl Repo {
    /// Creates `.bale/` in `dir`. With `force`, an existing repository gets
    /// its default configuration and `.gitignore` back; the cache and the
    /// state DB are kept.
    pub fn init(dir: &Path, force: bool) -> Result<PathBuf> {
        let bale_dir = dir.join(BALE_DIR);
        if bale_dir.exists() && !force {
            return Err(Error::AlreadyInitialized(dir.to_path_buf()));
        }
        for sub in ["", "tmp", "cache"] {
            let d = bale_dir.join(sub);
            fs::create_dir_all(&d).at("create", &d)?;
        }
        crate::fsutil::write_atomic(&bale_dir.join(".gitignore"), GITIGNORE.as_bytes())?;
        temp_key(&bale_dir);
        crate::fsutil::write_atomic(
            &bale_dir.join("config.yaml"),
            b"# bale configuration: see `bale config --help`\n",
        )?;
        Ok(bale_dir)
    }

    pub fn open(start: &Path, access: Access) -> Result<Repo> {
        let root = find_root(start)?;
        let bale_dir = root.join(BALE_DIR);
        let (lock, held) = lock(&bale_dir.join("lock"), access)?;
        crate::fsutil::temp::set_key(temp_key(&bale_dir));
        let config = ConfigFiles::in_dir(&bale_dir);
        let settings = config.settings()?;
        let cache = Cache::new(match &settings.cache_dir {
            Some(d) => paths::normalize(&root.join(d)),
            None => bale_dir.join("cache"),
        })
        .with_default_remote_name(config.get("core.remote")?);
        Ok(Repo {
            root,
            bale_dir,
            config,
            settings,
            cache,
            lock,
            held,
        })
    }

    /// The state DB; one that cannot be opened is set aside and started
    /// afresh (it only caches what can be derived again), with a warning.
    pub fn state(&self) -> Result<StateDb> {
        StateDb::open_or_rebuild(&self.bale_dir.join("state.db"), self.cache.warnings())
    }

    /// What the cache and the state DB found wrong and dealt with: the
    /// command line prints them (`cli::Ctx`).
    pub fn warnings(&self) -> &crate::warnings::Warnings {
        self.cache.warnings()
    }

    /// For a reader: takes the exclusive lock if no one else holds the lock
    /// now (never waiting), so that it may write the state DB.
    pub fn try_upgrade(&mut self) -> bool {
        if self.held == Held::Exclusive {
            return true;
        }
        if self.lock.try_lock().is_ok() {
            self.held = Held::Exclusive;
            true
        } else {
            false
        }
    }

    /// The time now on the workspace file system's own clock, in ns: the
    /// mtime of a file written for the purpose.
    pub fn fs_now(&self) -> Result<i64> {
        let tmp = self.bale_dir.join("tmp");
        fs::create_dir_all(&tmp).at("create", &tmp)?;
        let mut f = crate::fsutil::temp::create_in(&tmp).at("write", &tmp)?;
        f.write_all(b"x").at("write", f.path())?;
        let m = f.as_file().metadata().at("read", f.path())?;
        Ok(m.mtime() * 1_000_000_000 + m.mtime_nsec())
    }

    /// Saves the snapshots of the outs a command completed, in one
    /// transaction, stamped with the file system's clock read now: after
    /// every stat they hold was taken.
    pub fn save_snapshots(
        &self,
        state: &mut StateDb,
        mut snapshots: Vec<(String, Snapshot)>,
    ) -> Result<()> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let taken_ns = self.fs_now()?;
        for (_, s) in &mut snapshots {
            s.taken_ns = taken_ns;
        }
        state.save(&snapshots, &[])
    }

    /// `abs` as a '/'-separated path relative to the repository root.
    pub fn relative(&self, abs: &Path) -> Result<String> {
        let norm = paths::normalize(abs);
        let Ok(rel) = norm.strip_prefix(&self.root) else {
            return Err(Error::OutsideRepository {
                path: abs.to_path_buf(),
                root: self.root.clone(),
            });
        };
        if rel.to_str().is_none() {
            return Err(Error::BadNames(vec![abs.to_path_buf()]));
        }
        paths::to_slash(rel).ok_or_else(|| Error::OutsideRepository {
            path: abs.to_path_buf(),
            root: self.root.clone(),
        })
    }
}

/// The repository's key for tagging temp names (`fsutil::temp`), from
/// `.bale/temp-key`, made on first use. Should it be unreadable, or not
/// writable, a random key of this process's own is used: then no file left
/// by an earlier run is taken for bale's, which is the safe side (a
/// leftover shows as an untracked file rather than a user's file being
/// deleted).
fn temp_key(bale_dir: &Path) -> [u8; 16] {
    use crate::fsutil::temp;
    let path = bale_dir.join(TEMP_KEY);
    let parse = |text: &str| -> Option<[u8; 16]> {
        let v = u128::from_str_radix(text.trim(), 16).ok()?;
        (text.trim().len() == 32).then(|| v.to_be_bytes())
    };
    if let Some(k) = fs::read_to_string(&path).ok().as_deref().and_then(parse) {
        return k;
    }
    let key = temp::new_key();
    let text = format!("{:032x}\n", u128::from_be_bytes(key));
    // Made aside and renamed in without replacing: two processes making it
    // at once agree on the first one's.
    // (Not through `temp::create_in`, whose names need the key.)
    let tmp = bale_dir.join(format!(
        "{TEMP_KEY}.{:032x}",
        u128::from_be_bytes(temp::new_key())
    ));
    let made = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        temp::rename_no_replace(&tmp, &path)
    })();
    let _ = fs::remove_file(&tmp);
    match made {
        Ok(()) => key,
        Err(_) => fs::read_to_string(&path)
            .ok()
            .as_deref()
            .and_then(parse)
            .unwrap_or(key),
    }
}

/// Where a repository keeps its temp-name key.
const TEMP_KEY: &str = "temp-key";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
        let t = tempfile::tempdir().unwrap();
        Repo::init(t.path(), false).unwrap();
        assert!(matches!(
            Repo::init(t.path(), false),
            Err(Error::AlreadyInitialized(_))
        ));
        let wait = Duration::from_millis(200);
        let first = Repo::open(t.path(), Access::Write(wait)).unwrap();
        let started = Instant::now();
        assert!(matches!(
            Repo::open(t.path(), Access::Write(wait)),
            Err(Error::Locked(_))
        ));
        assert!(started.elapsed() >= wait);
        let reader = Repo::open(t.path(), Access::Read).unwrap();
        assert_eq!(reader.held, Held::Nothing, "a reader does not wait");
        drop((first, reader));
        let mut r1 = Repo::open(t.path(), Access::Read).unwrap();
        let r2 = Repo::open(&t.path().join("sub/dir"), Access::Read).unwrap();
        assert_eq!((&r1.held, &r2.held), (&Held::Shared, &Held::Shared));
        assert_eq!(r1.root, r2.root);
        assert!(!r1.try_upgrade(), "another reader holds it");
        drop(r2);
        assert!(r1.try_upgrade());
    }
}

//! Finding and opening a repository: its folders, configuration, cache,
//! state DB and the lock that keeps two writers apart.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::config::{ConfigFiles, Settings};
use crate::error::{Error, IoContext, Result};
use crate::paths;
use crate::state::StateDb;

pub const BALE_DIR: &str = ".bale";

/// How long a command waits for another bale process to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

const GITIGNORE: &str = "/*\n!/config.yaml\n!/.gitignore\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A shared lock: status, config reads.
    Read,
    /// An exclusive lock: everything that writes.
    Write,
}

pub struct Repo {
    pub root: PathBuf,
    pub bale_dir: PathBuf,
    pub config: ConfigFiles,
    pub settings: Settings,
    pub cache: Cache,
    _lock: File,
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
        crate::pointer::write_atomic(&bale_dir.join(".gitignore"), GITIGNORE.as_bytes())?;
        crate::pointer::write_atomic(
            &bale_dir.join("config.yaml"),
            b"# bale configuration: see `bale config --help`\n",
        )?;
        Ok(bale_dir)
    }

    pub fn open(start: &Path, access: Access) -> Result<Repo> {
        let root = find_root(start)?;
        let bale_dir = root.join(BALE_DIR);
        let lock = lock(&bale_dir.join("lock"), access)?;
        let config = ConfigFiles::in_dir(&bale_dir);
        let settings = config.settings()?;
        let cache_dir = match &settings.cache_dir {
            Some(d) => paths::normalize(&root.join(d)),
            None => bale_dir.join("cache"),
        };
        Ok(Repo {
            root,
            bale_dir,
            config,
            settings,
            cache: Cache::new(cache_dir),
            _lock: lock,
        })
    }

    pub fn state(&self) -> Result<StateDb> {
        StateDb::open(&self.bale_dir.join("state.db"))
    }

    /// The time now on the workspace file system's own clock, in ns: the
    /// mtime of a file written for the purpose.
    pub fn fs_now(&self) -> Result<i64> {
        let tmp = self.bale_dir.join("tmp");
        fs::create_dir_all(&tmp).at("create", &tmp)?;
        let path = tmp.join(format!("clock.{}", std::process::id()));
        let mut f = File::create(&path).at("write", &path)?;
        f.write_all(b"x").at("write", &path)?;
        let m = f.metadata().at("read", &path)?;
        drop(f);
        let _ = fs::remove_file(&path);
        Ok(m.mtime() * 1_000_000_000 + m.mtime_nsec())
    }

    /// `abs` as a '/'-separated path relative to the repository root.
    pub fn relative(&self, abs: &Path) -> Result<String> {
        let norm = paths::normalize(abs);
        norm.strip_prefix(&self.root)
            .ok()
            .and_then(paths::to_slash)
            .ok_or_else(|| Error::OutsideRepository {
                path: abs.to_path_buf(),
                root: self.root.clone(),
            })
    }
}

fn lock(path: &Path, access: Access) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open the lock file", path)?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let attempt = match access {
            Access::Read => f.try_lock_shared(),
            Access::Write => f.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(f),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked(path.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
        let t = tempfile::tempdir().unwrap();
        Repo::init(t.path(), false).unwrap();
        assert!(matches!(
            Repo::init(t.path(), false),
            Err(Error::AlreadyInitialized(_))
        ));
        let first = Repo::open(t.path(), Access::Write).unwrap();
        let started = Instant::now();
        assert!(matches!(
            Repo::open(t.path(), Access::Read),
            Err(Error::Locked(_))
        ));
        assert!(started.elapsed() >= LOCK_WAIT);
        drop(first);
        let r1 = Repo::open(t.path(), Access::Read).unwrap();
        let r2 = Repo::open(&t.path().join("sub/dir"), Access::Read).unwrap();
        assert_eq!(r1.root, r2.root);
    }
}

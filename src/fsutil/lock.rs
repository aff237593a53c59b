//! The advisory locks that keep two writers apart: `.bale/lock` of a
//! repository and `<cache>/lock` of a cache's packs.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How long a writer waits for another bale process to release a lock,
/// unless `--wait` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How long a writer waits quietly before it says that it is waiting.
const QUIET_WAIT: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Readers (status, config reads) never wait for a writer: they take a
    /// shared lock when it is free, and otherwise read the last committed
    /// state (the state DB is SQLite in WAL mode: always consistent).
    Read,
    /// An exclusive lock: everything that writes. Waits up to the duration
    /// for another writer, saying so, then fails.
    Write(Duration),
}

/// What a command holds of a lock.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    Exclusive,
    Shared,
    /// A writer holds it; this reader goes on without.
    Nothing,
}

/// Opens (creating) the lock file `path` and takes it as `access` says.
pub fn lock(path: &Path, access: Access) -> Result<(File, Held)> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open the lock file", path)?;
    let wait = match access {
        Access::Read => {
            return match f.try_lock_shared() {
                Ok(()) => Ok((f, Held::Shared)),
                Err(fs::TryLockError::WouldBlock) => Ok((f, Held::Nothing)),
                Err(fs::TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
            };
        }
        Access::Write(wait) => wait,
    };
    let start = Instant::now();
    let mut said = false;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok((f, Held::Exclusive)),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                if !said && start.elapsed() >= QUIET_WAIT.min(wait) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "waiting for another bale command to finish (up to {} s; see --wait)...",
                        wait.as_secs()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked(path.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
    }
}

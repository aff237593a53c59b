//! What the state DB and the pack index share as SQLite files that only
//! cache facts: telling a damaged file, and setting one aside so that a
//! fresh one is made in its place.

use std::fs;
use std::path::{Path, PathBuf};

/// Whether an SQLite error means the file is not a sound database.
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Removes a database's WAL, shared-memory and journal files, which belong
/// to the file that was there.
pub fn remove_side_files(path: &Path) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(PathBuf::from(side));
    }
}

/// Renames a damaged database to `<name>.corrupt` beside it (best effort:
/// it is kept for a look, not needed) and removes its side files. Returns
/// the name it was set aside as.
pub fn set_aside(path: &Path) -> PathBuf {
    let aside = path.with_extension("db.corrupt");
    let _ = fs::rename(path, &aside);
    remove_side_files(path);
    aside
}

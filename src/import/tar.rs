//! Reading a tar stream (plain, gzip or zstd, decompressed on the way) with
//! the `tar` crate, entry by entry: nothing but the current entry is read.

use std::io::Read;

use super::{Codec, EntryError, Sink};

/// Hands every entry of the tar stream `input` to `sink`.
pub fn read(input: impl Read, sink: &mut Sink<'_>) -> Result<(), EntryError> {
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| EntryError::archive(format!("cannot read the tar stream: {e}")))?;
    let mut last = String::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged_after(&last, &e))?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let Some(name) = super::strip_dot_slash(&raw) else {
            // The archive's own root folder, "./", is no entry of the out;
            // but a file cannot be made at it.
            if matches!(
                kind,
                tar::EntryType::Directory | tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            return Err(super::unnamed_file(&raw));
        };
        let name = sink.name(name)?;
        last.clone_from(&name);
        let what = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => None,
            tar::EntryType::Directory => {
                sink.dir(name)?;
                continue;
            }
            // Metadata for the entries (git archive's commit id): nothing
            // of the folder's content.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            tar::EntryType::Symlink => Some("is a symlink"),
            tar::EntryType::Link => Some("is a hard link"),
            tar::EntryType::Char | tar::EntryType::Block => Some("is a device"),
            tar::EntryType::Fifo => Some("is a fifo"),
            _ => Some("is of a kind bale cannot import"),
        };
        if let Some(what) = what {
            return Err(EntryError::entry(
                &name,
                format!("{what}; bale imports files only"),
            ));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        let size = entry.size();
        sink.file(
            name,
            mode & 0o111 != 0,
            size,
            None,
            Codec::Stored,
            size,
            &mut entry,
        )?;
    }
    // Read the stream to its end: a gzip or zstd checksum comes after the
    // tar's last block, and damage it reveals is damage to the entries.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(|e| {
        EntryError::archive(format!(
            "the compressed stream fails its checksum, so the entries read are not to be trusted: {e}"
        ))
    })?;
    Ok(())
}

fn damaged_after(last: &str, e: &std::io::Error) -> EntryError {
    if last.is_empty() {
        EntryError::archive(format!("the tar stream is damaged or truncated: {e}"))
    } else {
        EntryError::archive(format!(
            "the tar stream is damaged or truncated after entry {last:?}: {e}"
        ))
    }
}

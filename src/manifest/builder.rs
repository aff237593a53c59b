//! Gathering a manifest's entries in any order, compactly, and sorting and
//! checking them once at the end.

use rayon::prelude::*;

use super::{MAX_PATH_BYTES, Manifest, Slot, check_no_file_is_a_folder};
use crate::hash::Hash;
use crate::paths;

/// Entries gathered in any order (an import's, as its archive lists them),
/// held compactly until they are sorted: every path in one string and 32
/// bytes of fixed fields each, where a list of `ManifestEntry` costs a
/// string of its own per entry besides 56 bytes.
#[derive(Debug, Default)]
pub struct Builder {
    paths: String,
    items: Vec<Item>,
    size: u64,
}

/// A gathered entry: its path is `paths[start..start + len]`; the top bit
/// of `len_x` is the executable bit.
#[derive(Clone, Copy, Debug)]
struct Item {
    hash: Hash,
    size: u64,
    start: u32,
    len_x: u32,
}

const EXECUTABLE_BIT: u32 = 1 << 31;

impl Builder {
    pub fn push(
        &mut self,
        path: &str,
        hash: Hash,
        size: u64,
        executable: bool,
    ) -> Result<(), String> {
        if self.paths.len() + path.len() > MAX_PATH_BYTES || path.len() >= EXECUTABLE_BIT as usize {
            return Err("the paths of the folder's files add up to more than 4 GiB".into());
        }
        let start = self.paths.len() as u32;
        self.paths.push_str(path);
        self.items.push(Item {
            hash,
            size,
            start,
            len_x: path.len() as u32 | if executable { EXECUTABLE_BIT } else { 0 },
        });
        self.size = self.size.saturating_add(size);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The sum of the entries' sizes (saturating: sizes are what an archive
    /// declares).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The manifest of the entries, sorted and checked as `Manifest::new`
    /// checks its own: every path safe, none twice, none both a file and a
    /// folder. At its peak it holds the gathered paths twice and the fixed
    /// fields once (they become the manifest's in place).
    pub fn finish(self) -> Result<Manifest, String> {
        let Builder {
            paths: arena,
            mut items,
            ..
        } = self;
        let path_of = |it: &Item| {
            let start = it.start as usize;
            &arena[start..start + (it.len_x & !EXECUTABLE_BIT) as usize]
        };
        items.par_iter().try_for_each(|it| {
            let p = path_of(it);
            paths::check_relative(p).map_err(|r| format!("path {p:?}: {r}"))
        })?;
        items.par_sort_unstable_by(|a, b| path_of(a).cmp(path_of(b)));
        if let Some(w) = items.windows(2).find(|w| path_of(&w[0]) == path_of(&w[1])) {
            return Err(format!("{:?} is listed twice", path_of(&w[0])));
        }
        let mut sorted = String::with_capacity(arena.len());
        // Same size and alignment: the items' allocation becomes the slots'.
        let slots: Vec<Slot> = items
            .into_iter()
            .map(|it| {
                sorted.push_str(path_of(&it));
                Slot {
                    hash: it.hash,
                    size: it.size,
                    end: sorted.len() as u32,
                    executable: it.len_x & EXECUTABLE_BIT != 0,
                }
            })
            .collect();
        drop(arena);
        let m = Manifest {
            paths: sorted,
            slots,
        };
        check_no_file_is_a_folder(&m)?;
        Ok(m)
    }
}

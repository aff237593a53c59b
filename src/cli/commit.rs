//! `bale commit [TARGET...]`: record the current content of tracked outs,
//! re-hashing only files whose stat changed.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::ops::{Changes, display_path};
use crate::out::{self, Inside, Out};
use crate::pointer::PointerFile;
use crate::repo::Repo;
use crate::state::StateDb;
use crate::workspace::{self, RecordOptions, link::Linker, plan};

use super::{Ctx, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Refuse)?;
    let linker = Linker::new(repo.settings.cache_types.clone());
    let mut snapshots = Vec::new();
    let mut failed = 0;
    for o in &outs {
        match commit_one(ctx, &repo, &state, &linker, o) {
            Ok(r) => {
                snapshots.push((o.key.clone(), r.snapshot(0)));
            }
            Err(e) => {
                report(&e);
                failed += 1;
            }
        }
    }
    repo.save_snapshots(&mut state, snapshots)?;
    if failed > 0 {
        return Err(Error::Incomplete {
            count: failed,
            total: outs.len(),
        }
        .into());
    }
    Ok(())
}

fn commit_one(
    ctx: &Ctx,
    repo: &Repo,
    state: &StateDb,
    linker: &Linker,
    o: &Out,
) -> Result<workspace::Recorded> {
    let old = state.load(&o.key)?;
    let r = workspace::record(
        &o.root,
        old,
        &repo.cache,
        linker,
        RecordOptions {
            skip_symlinks: o.record.skip_symlinks,
        },
        ctx.quiet,
    )?;
    for (h, f) in &r.corrupt {
        super::warn(edited_in_place(&display_path(&o.key, f), *h));
    }
    if r.hash == o.record.hash {
        ctx.say(format!("{}: unchanged", o.key));
        return Ok(r);
    }
    let before = match repo.cache.read_manifest(o.record.hash, &o.root) {
        Ok(before) if o.is_dir() && r.is_dir => Some(before),
        _ => None,
    };
    let mut file = PointerFile::read(&o.pointer)?;
    if let Some(rec) = file.outs.get_mut(o.index) {
        r.update(rec);
    }
    file.write(&o.pointer)?;
    match before {
        Some(before) => {
            let c = changes(&o.key, &before, &r.manifest);
            ctx.say(format!(
                "{}: committed ({} added, {} modified, {} deleted)",
                o.key,
                c.added.len(),
                c.modified.len(),
                c.deleted.len()
            ));
            if ctx.verbose {
                c.lines().for_each(|l| ctx.say(l));
            }
        }
        None => ctx.say(format!("{}: committed (new content)", o.key)),
    }
    Ok(r)
}

/// The warning for a file recorded after an edit in place through a link
/// to its object: the new content is recorded, the old object is gone.
pub(super) fn edited_in_place(path: &str, old: crate::hash::Hash) -> String {
    format!(
        "{} was edited in place through its link to the cache: its new content is recorded, but the object {old} of its previous version changed with it and was set aside (restore that version from a remote, if one holds it)",
        crate::paths::quoted_str(path)
    )
}

/// The files added, modified and deleted between two manifests.
fn changes(key: &str, before: &Manifest, after: &Manifest) -> Changes {
    let d = plan::diff_by(before, after.len(), |i| {
        let e = after.get(i);
        (e.path, Some(e.hash), e.executable)
    });
    let (b, a) = (before, after);
    Changes {
        added: d
            .added
            .iter()
            .map(|&i| display_path(key, a.get(i).path))
            .collect(),
        modified: d
            .modified
            .iter()
            .map(|&(i, _)| display_path(key, a.get(i).path))
            .collect(),
        deleted: d
            .deleted
            .iter()
            .map(|&j| display_path(key, b.get(j).path))
            .collect(),
    }
}

//! `bale commit [TARGET...]`: record the current content of tracked outs,
//! re-hashing only files whose stat changed.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::out::{self, Out};
use crate::pointer::PointerFile;
use crate::repo::{Access, Repo};
use crate::state::StateDb;
use crate::workspace::{self, link::Linker, plan};

use super::{Ctx, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets)?;
    let linker = Linker::new(repo.settings.cache_types.clone());
    let mut recorded = Vec::new();
    let mut failed = 0;
    for o in &outs {
        match commit_one(ctx, &repo, &state, &linker, o) {
            Ok(r) => recorded.push((o.key.clone(), r)),
            Err(e) => {
                report(&e);
                failed += 1;
            }
        }
    }
    let snapshots = recorded
        .into_iter()
        .map(|(key, r)| (key, r.snapshot(0)))
        .collect();
    super::save_snapshots(&repo, &mut state, snapshots)?;
    if failed > 0 {
        return Err(Error::Incomplete { count: failed }.into());
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
    let r = workspace::record(&o.root, old.as_ref(), &repo.cache, linker, ctx.quiet)?;
    if r.hash == o.record.hash {
        ctx.say(format!("{}: unchanged", o.key));
        return Ok(r);
    }
    let summary = match repo.cache.read_manifest(o.record.hash, &o.root) {
        Ok(before) if o.is_dir() && r.is_dir => changes(&before, &r.manifest),
        _ => "new content".to_owned(),
    };
    let mut file = PointerFile::read(&o.pointer)?;
    if let Some(rec) = file.outs.get_mut(o.index) {
        r.update(rec);
    }
    file.write(&o.pointer)?;
    ctx.say(format!("{}: committed ({summary})", o.key));
    Ok(r)
}

/// "2 added, 1 modified, 0 deleted" between two manifests.
fn changes(before: &Manifest, after: &Manifest) -> String {
    let d = plan::diff_by(before.entries(), after.entries(), |e| {
        (&e.path, Some(e.hash), e.executable)
    });
    format!(
        "{} added, {} modified, {} deleted",
        d.added.len(),
        d.modified.len(),
        d.deleted.len()
    )
}

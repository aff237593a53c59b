//! `bale checkout [TARGET...] [--force]`: make the workspace match the
//! pointer files. Every out is planned first; if any plan would destroy
//! content that is not in the cache, nothing is changed.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::out::{self, Out};
use crate::progress::Bar;
use crate::repo::{Access, Repo};
use crate::state::{Snapshot, SnapshotEntry, StateDb};
use crate::workspace::{self, Observation, apply, link::Linker, plan};

use super::status::expected_of;
use super::{Ctx, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
    /// Overwrite or delete workspace content that is not in the cache
    #[arg(short, long)]
    pub force: bool,
}

struct Planned {
    out: Out,
    obs: Observation,
    plan: plan::CheckoutPlan,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets)?;
    let linker = Linker::new(repo.settings.cache_types.clone());

    let mut failed = 0;
    let mut planned = Vec::new();
    for o in outs {
        match plan_one(ctx, &repo, &state, o, args.force) {
            Ok(p) => planned.push(p),
            Err(e) => {
                report(&e);
                failed += 1;
            }
        }
    }
    let conflicts: Vec<PathBuf> = planned
        .iter()
        .flat_map(|p| {
            p.plan
                .conflicts
                .iter()
                .map(|c| PathBuf::from(crate::paths::join(Path::new(&p.out.key), c)))
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(Error::WouldLoseData(conflicts).into());
    }

    let total: usize = planned.iter().map(|p| p.plan.writes.len()).sum();
    let bar = Bar::new(total as u64, "checkout", ctx.quiet || total < 1000);
    let mut snapshots = Vec::new();
    for p in planned {
        let outcome = apply::apply(
            &p.plan,
            &p.out.root,
            &p.obs.stale_temps,
            &repo.cache,
            &linker,
            &bar,
        );
        if outcome.errors.is_empty() {
            ctx.say(summary(&p));
            snapshots.push((
                p.out.key.clone(),
                snapshot_after(&p, outcome.placed, &linker),
            ));
        } else {
            failed += 1;
            for e in &outcome.errors {
                report(e);
            }
        }
    }
    bar.finish();
    if !snapshots.is_empty() {
        let taken_ns = repo.fs_now()?;
        for (_, s) in &mut snapshots {
            s.taken_ns = taken_ns;
        }
        state.save(&snapshots, &[])?;
    }
    if failed > 0 {
        return Err(Error::Incomplete { count: failed }.into());
    }
    Ok(())
}

fn plan_one(ctx: &Ctx, repo: &Repo, state: &StateDb, o: Out, force: bool) -> Result<Planned> {
    let expected = expected_of(repo, &o)?;
    let snapshot = state.load(&o.key)?;
    let obs = workspace::observe(&o.root, snapshot.as_ref(), &repo.cache, ctx.quiet)?;
    let plan = plan::plan(
        expected.entries(),
        o.is_dir(),
        &obs.files,
        &obs.dirs,
        obs.root,
        |h| repo.cache.contains(h),
        force,
    );
    Ok(Planned { out: o, obs, plan })
}

fn summary(p: &Planned) -> String {
    if p.plan.is_empty() {
        return format!("{}: unchanged", p.out.key);
    }
    // From the workspace's side: what checkout restored, replaced, removed.
    format!(
        "{}: {} added, {} modified, {} deleted",
        p.out.key, p.plan.deleted, p.plan.modified, p.plan.added
    )
}

/// The snapshot of an out that now matches its manifest: files left alone
/// keep the stat they were compared with; placed files have their new one.
fn snapshot_after(p: &Planned, placed: Vec<apply::Placed>, linker: &Linker) -> Snapshot {
    let mut entries: Vec<SnapshotEntry> = p
        .plan
        .kept
        .iter()
        .filter_map(|&i| {
            let a = &p.obs.files[i];
            a.hash.map(|hash| SnapshotEntry {
                path: a.path.clone(),
                stat: a.stat,
                hash,
            })
        })
        .chain(placed.into_iter().map(|pl| SnapshotEntry {
            path: pl.write.path,
            stat: pl.stat,
            hash: pl.write.hash,
        }))
        .collect();
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Snapshot {
        hash: p.out.record.hash,
        link_type: linker.current(),
        taken_ns: 0,
        entries,
    }
}

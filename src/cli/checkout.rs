//! `bale checkout [TARGET...] [--relink] [--force]`: make the workspace match
//! the pointer files.
//!
//! An out whose pointer hash equals its snapshot's, and whose fresh stat walk
//! reproduces the snapshot exactly, is unchanged: nothing else is done for it.
//! Every other out is planned; if any plan would destroy content that is not
//! in the cache, nothing is changed. Then the plans are applied in parallel.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::out::{self, Out};
use crate::progress::Bar;
use crate::repo::{Access, Repo};
use crate::state::{Snapshot, StateDb};
use crate::workspace::{
    self, Observation, apply,
    link::{Linker, relink_advised},
    plan, relink, walk,
};

use super::status::expected_of;
use super::{Ctx, hint, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
    /// Also relink files whose link type differs from cache.type
    #[arg(long)]
    pub relink: bool,
    /// Overwrite or delete workspace content that is not in the cache
    #[arg(short, long)]
    pub force: bool,
}

struct Work {
    out: Out,
    obs: Observation,
    plan: plan::CheckoutPlan,
    /// Files with the right content relinked to the configured type.
    relinked: usize,
}

enum Planned {
    /// The out's key: its snapshot matched, nothing to do.
    Unchanged(String),
    Work(Box<Work>),
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets)?;
    let linker = Linker::new(repo.settings.cache_types.clone());

    let mut failed = 0;
    let mut planned = Vec::new();
    let mut advise = Vec::new();
    for o in outs {
        match plan_one(ctx, &repo, &state, &linker, o, &args) {
            Ok((p, stale_links)) => {
                if let Some(key) = stale_links {
                    advise.push(key);
                }
                planned.push(p);
            }
            Err(e) => {
                report(&e);
                failed += 1;
            }
        }
    }
    let conflicts: Vec<PathBuf> = planned
        .iter()
        .filter_map(|p| match p {
            Planned::Work(w) => Some(w),
            Planned::Unchanged(_) => None,
        })
        .flat_map(|w| {
            w.plan
                .conflicts
                .iter()
                .map(|c| crate::paths::join(Path::new(&w.out.key), c))
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(Error::WouldLoseData(conflicts).into());
    }

    let total: usize = planned
        .iter()
        .map(|p| match p {
            Planned::Work(w) => w.plan.writes.len(),
            Planned::Unchanged(_) => 0,
        })
        .sum();
    let bar = Bar::new(total as u64, "checkout", ctx.quiet || total < 1000);
    let mut snapshots = Vec::new();
    for p in planned {
        let w = match p {
            Planned::Unchanged(key) => {
                ctx.say(format!("{key}: unchanged"));
                continue;
            }
            Planned::Work(w) => w,
        };
        let outcome = apply::apply(
            &w.plan,
            &w.out.root,
            &w.obs.stale_temps,
            &repo.cache,
            &linker,
            &bar,
        );
        if outcome.errors.is_empty() {
            ctx.say(summary(&w, args.relink));
            match snapshot_after(&w, outcome.placed, &linker) {
                Ok(s) => snapshots.push((w.out.key.clone(), s)),
                Err(e) => {
                    failed += 1;
                    report(&e);
                }
            }
        } else {
            failed += 1;
            for e in &outcome.errors {
                report(e);
            }
        }
    }
    bar.finish();
    super::save_snapshots(&repo, &mut state, snapshots)?;
    if !advise.is_empty() {
        hint(relink_hint(&advise, &linker));
    }
    if failed > 0 {
        return Err(Error::Incomplete { count: failed }.into());
    }
    Ok(())
}

/// The hint for outs last linked under another `cache.type`.
pub fn relink_hint(keys: &[String], linker: &Linker) -> String {
    format!(
        "{} {} linked before cache.type became {}; existing workspace files keep their old links: run `bale checkout --relink` to relink them",
        keys.join(", "),
        if keys.len() == 1 { "was" } else { "were" },
        linker.describe()
    )
}

/// Plans one out. The second value is the out's key when its files were
/// last linked under another `cache.type` (and `--relink` was not given).
fn plan_one(
    ctx: &Ctx,
    repo: &Repo,
    state: &StateDb,
    linker: &Linker,
    o: Out,
    args: &Args,
) -> Result<(Planned, Option<String>)> {
    let snapshot = state.load(&o.key)?;
    let stale_links = snapshot
        .as_ref()
        .filter(|s| !args.relink && relink_advised(s.link_type, &s.cache_type, linker))
        .map(|_| o.key.clone());
    let walked = walk::walk(&o.root, snapshot.as_ref().map_or(0, Snapshot::len))?;
    if !args.relink
        && let (Some(s), Some(w)) = (&snapshot, &walked)
        && s.hash == o.record.hash
        && workspace::matches_snapshot(w, s)
    {
        return Ok((Planned::Unchanged(o.key), stale_links));
    }
    let expected = expected_of(repo, &o)?;
    let obs = workspace::observe(&o.root, walked, snapshot.as_ref(), &repo.cache, ctx.quiet)?;
    let mut plan = plan::plan(
        expected.entries(),
        o.is_dir(),
        &obs.files,
        &obs.dirs,
        obs.root,
        |h| repo.cache.contains(h),
        args.force,
    );
    let mut relinked = 0;
    if args.relink {
        // Settle the chain on what works here before judging links by it.
        if let Some(&(i, j)) = plan.kept.first() {
            let dest = crate::paths::join(&o.root, &obs.files[i].path);
            if let Some(dir) = dest.parent() {
                let h = expected.entries()[j].hash;
                linker.probe_reflink(&repo.cache.object_path(h), h, dir);
            }
        }
        let wrong = relink::wrong_links(
            &plan.kept,
            &obs.files,
            expected.entries(),
            &repo.cache,
            linker,
        );
        relinked = wrong.len();
        let wrong_set: std::collections::HashSet<usize> = wrong.iter().map(|&(i, _)| i).collect();
        plan.kept.retain(|(i, _)| !wrong_set.contains(i));
        plan.writes.extend(wrong.iter().map(|&(_, j)| {
            let e = &expected.entries()[j];
            plan::Write {
                path: e.path.clone(),
                hash: e.hash,
                size: e.size,
                executable: e.executable,
            }
        }));
    }
    Ok((
        Planned::Work(Box::new(Work {
            out: o,
            obs,
            plan,
            relinked,
        })),
        stale_links,
    ))
}

fn summary(w: &Work, relink: bool) -> String {
    let p = &w.plan;
    let changes = p.added + p.modified + p.deleted;
    let mut s = if changes == 0 {
        format!("{}: unchanged", w.out.key)
    } else {
        // From the workspace's side: what checkout restored, replaced, removed.
        format!(
            "{}: {} added, {} modified, {} deleted",
            w.out.key, p.deleted, p.modified, p.added
        )
    };
    if relink {
        s.push_str(&format!(
            "; relinked {} file{}, {} already right",
            w.relinked,
            if w.relinked == 1 { "" } else { "s" },
            p.kept.len()
        ));
    }
    s
}

/// The snapshot of an out that now matches its manifest: files left alone
/// keep the stat they were compared with; placed files have their new one.
/// Both lists are in path order once `placed` is sorted: one merge.
fn snapshot_after(w: &Work, mut placed: Vec<apply::Placed>, linker: &Linker) -> Result<Snapshot> {
    placed.sort_unstable_by(|a, b| a.write.path.cmp(&b.write.path));
    let mut rows = Vec::with_capacity(w.plan.kept.len() + placed.len());
    let mut kept = w
        .plan
        .kept
        .iter()
        .filter_map(|&(i, _)| {
            let a = &w.obs.files[i];
            a.hash.map(|hash| workspace::Row {
                path: &a.path,
                stat: a.stat,
                hash,
                link: a.recorded_link,
            })
        })
        .peekable();
    let mut placed = placed
        .iter()
        .map(|p| workspace::Row {
            path: &p.write.path,
            stat: p.stat,
            hash: p.write.hash,
            link: Some(p.link_type),
        })
        .peekable();
    loop {
        let next = match (kept.peek(), placed.peek()) {
            (Some(k), Some(p)) if k.path < p.path => kept.next(),
            (Some(_), Some(_)) | (None, Some(_)) => placed.next(),
            (Some(_), None) => kept.next(),
            (None, None) => break,
        };
        rows.extend(next);
    }
    workspace::restat_shared_inodes(&w.out.root, &mut rows)?;
    Ok(Snapshot::new(
        w.out.record.hash,
        linker.current(),
        linker.describe(),
        0,
        workspace::snapshot_entries(&rows),
    ))
}

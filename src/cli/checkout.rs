//! `bale checkout [TARGET...] [--relink] [--force]`: make the workspace match
//! the pointer files. Every out is planned before anything is applied: if
//! any plan would destroy content that is not in the cache, nothing changes.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::ops::checkout::{self as co, Planned};
use crate::out::{self, Inside};
use crate::workspace::link::Linker;

use super::{Ctx, hint, report, report_all};

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
    /// Set by `pull`: the remote just fetched from, so that an object still
    /// missing is not met with `hint: bale fetch`.
    #[arg(skip)]
    pub fetched_from: Option<String>,
}

impl Args {
    /// `e` as this checkout reports it: after a fetch, an object still
    /// missing is one the remote lacks.
    fn explain(&self, e: Error) -> Error {
        match (&self.fetched_from, e) {
            (Some(remote), e @ (Error::MissingObject { .. } | Error::ObjectsMissing { .. })) => {
                Error::MissingOnRemote {
                    remote: remote.clone(),
                    inner: Box::new(e),
                }
            }
            (_, e) => e,
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Refuse)?;
    let linker = Linker::new(repo.settings.cache_types.clone());
    let opts = co::Options {
        relink: args.relink,
        force: args.force,
    };

    let total = outs.len();
    // The outs that could not be completed, by key.
    let mut failed = std::collections::BTreeSet::new();
    let mut planned = Vec::new();
    for o in outs {
        let key = o.key.clone();
        match co::plan_out(&repo, &state, &linker, o, opts, ctx.quiet) {
            Ok(p) => planned.push(p),
            Err(e) => {
                report(&args.explain(e));
                failed.insert(key);
            }
        }
    }
    let works = || {
        planned.iter().filter_map(|p| match p {
            Planned::Work(w) => Some(w),
            Planned::Unchanged(..) => None,
        })
    };
    let conflicts: Vec<PathBuf> = works()
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
    for w in works() {
        for e in &w.corrupt {
            report(e);
            failed.insert(w.out.key.clone());
        }
    }

    let bar = co::bar_for(works().map(|w| &**w), ctx.quiet);
    let mut snapshots = Vec::new();
    let mut advise = Vec::new();
    let mut lines = Vec::new();
    for p in planned {
        let w = match p {
            Planned::Unchanged(u) => {
                let (o, s) = *u;
                if !args.relink && s.as_ref().is_some_and(|s| co::needs_relink(s, &linker)) {
                    advise.push(o.key.clone());
                }
                lines.push(format!("{}: unchanged", o.key));
                continue;
            }
            Planned::Work(w) => w,
        };
        let applied = co::apply_out(&repo, &linker, &w, &bar, ctx.verbose);
        if applied.errors.is_empty() {
            lines.push(co::summary(&w, args.relink));
        } else {
            failed.insert(w.out.key.clone());
            let errors: Vec<Error> = applied
                .errors
                .into_iter()
                .map(|e| args.explain(e))
                .collect();
            bar.suspend(|| report_all(&errors));
        }
        if ctx.verbose {
            lines.extend(applied.changes.lines());
        }
        if let Some(s) = applied.snapshot {
            if !args.relink && co::needs_relink(&s, &linker) {
                advise.push(w.out.key.clone());
            }
            snapshots.push((w.out.key.clone(), s));
        }
    }
    bar.finish();
    lines.iter().for_each(|l| ctx.say(l));
    repo.save_snapshots(&mut state, snapshots)?;
    if !advise.is_empty() {
        hint(co::relink_hint(&advise, &linker));
    }
    if !failed.is_empty() {
        return Err(Error::Incomplete {
            count: failed.len(),
            total,
        }
        .into());
    }
    Ok(())
}

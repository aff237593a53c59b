//! `bale checkout [TARGET...] [--relink] [--force]`: make the workspace match
//! the pointer files. Every out is planned before anything is applied: if
//! any plan would destroy content that is not in the cache, nothing changes.

use std::path::PathBuf;

use crate::error::Error;
use crate::ops::checkout as co;
use crate::out::{self, Inside};

use super::{Ctx, hint, report_all};

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

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Refuse)?;
    let opts = co::Options {
        plan: co::PlanOptions {
            relink: args.relink,
            force: args.force,
        },
        quiet: ctx.quiet,
        list_changes: ctx.verbose,
        fetched_from: args.fetched_from,
    };
    let done = co::run(&repo, &mut state, outs, &opts)?;
    done.errors.iter().for_each(|e| report_all(e));
    if !done.conflicts.is_empty() {
        return Err(Error::WouldLoseData(done.conflicts).into());
    }
    for o in &done.outs {
        if let Some(s) = &o.summary {
            ctx.say(s);
        }
        if ctx.verbose {
            o.changes.lines().for_each(|l| ctx.say(l));
        }
    }
    if let Some(h) = &done.relink_hint {
        hint(h);
    }
    if let Some(e) = done.unsaved {
        return Err(e.into());
    }
    if !done.failed.is_empty() {
        return Err(Error::Incomplete {
            count: done.failed.len(),
            total: done.total,
        }
        .into());
    }
    Ok(())
}

//! `bale status [TARGET...] [--json]`: per out, `unchanged`, `modified`
//! (with counts), `missing` or `not-in-cache`. Read-only, and never waits
//! for a writer; it refreshes a stale snapshot only when the lock is free.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;
use crate::ops::{Changes, status};
use crate::out::{self, Inside};
use crate::repo::Held;

use super::{Ctx, hint, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs, pointer files, or paths inside outs (default: every pointer
    /// file under this folder)
    pub targets: Vec<PathBuf>,
    /// Print one JSON array, one object per out (with -v: the paths too)
    #[arg(long)]
    pub json: bool,
    /// Say instead whether each out's content is all on the remote
    #[arg(long)]
    pub remote: bool,
    /// The remote for --remote (default: core.remote); implies --remote
    #[arg(short = 'r', value_name = "NAME")]
    pub remote_name: Option<String>,
}

#[derive(Serialize, Debug)]
struct JsonOnRemote<'a> {
    path: &'a str,
    remote: &'a str,
    state: &'static str,
    missing: Option<usize>,
    objects: Option<usize>,
}

/// `status --remote`: per out, whether the remote holds all of it.
fn on_remote(ctx: &Ctx, args: &Args) -> anyhow::Result<()> {
    let repo = ctx.open(false)?;
    let done = status::on_remote(
        &repo,
        &ctx.cwd,
        &args.targets,
        args.remote_name.as_deref(),
        ctx.transfers(),
    )?;
    let states = &done.outs;
    let state = |s: &status::OnRemote| match s.missing_of {
        Some((0, _)) => "on-remote",
        Some((m, n)) if m < n => "partly-on-remote",
        _ => "not-on-remote",
    };
    if args.json {
        let json: Vec<JsonOnRemote> = states
            .iter()
            .map(|s| JsonOnRemote {
                path: &s.key,
                remote: &done.remote,
                state: state(s),
                missing: s.missing_of.map(|(m, _)| m),
                objects: s.missing_of.map(|(_, n)| n),
            })
            .collect();
        ctx.print(serde_json::to_string_pretty(&json)?);
    } else {
        for s in states {
            let name = &done.remote;
            ctx.print(match s.missing_of {
                Some((0, _)) => format!("{}: on the remote {name}", s.key),
                Some((m, n)) => {
                    format!("{}: {m} of {n} objects are not on the remote {name}", s.key)
                }
                None => format!(
                    "{}: not on the remote {name} (its manifest is neither there nor in the cache)",
                    s.key
                ),
            });
        }
    }
    if ctx.verbose {
        ctx.say(format!("remote {}: {}", done.remote, done.stats));
    }
    Ok(())
}

#[derive(Serialize, Debug)]
struct JsonStatus<'a> {
    path: &'a str,
    pointer: String,
    state: &'static str,
    added: usize,
    modified: usize,
    deleted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    paths: Option<&'a Changes>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    if args.remote || args.remote_name.is_some() {
        return on_remote(ctx, &args);
    }
    let mut repo = ctx.open(false)?;
    if repo.held == Held::Nothing {
        super::warn("another bale command is writing; showing the state it last recorded");
    }
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Allow)?;
    let done = status::run(&mut repo, &mut state, &outs, ctx.quiet)?;
    let mut results = Vec::with_capacity(done.outs.len());
    for o in &done.outs {
        match o {
            Ok(s) => {
                s.corrupt.iter().for_each(|e| report(e));
                results.push((&s.status, &s.pointer));
            }
            Err(e) => report(e),
        }
    }
    if args.json {
        let json: Vec<JsonStatus> = results
            .iter()
            .map(|(s, pointer)| JsonStatus {
                path: &s.path,
                pointer: (*pointer).clone(),
                state: s.state.as_str(),
                added: s.changes.added.len(),
                modified: s.changes.modified.len(),
                deleted: s.changes.deleted.len(),
                paths: ctx.verbose.then_some(&s.changes),
            })
            .collect();
        ctx.print(serde_json::to_string_pretty(&json)?);
    } else {
        for (s, _) in &results {
            match s.state {
                status::State::Modified => ctx.print(format!(
                    "{}: modified ({} added, {} modified, {} deleted)",
                    s.path,
                    s.changes.added.len(),
                    s.changes.modified.len(),
                    s.changes.deleted.len()
                )),
                other => ctx.print(format!("{}: {}", s.path, other.as_str())),
            }
            if ctx.verbose {
                s.changes.lines().for_each(|l| ctx.print(l));
            }
        }
    }
    if let Some(h) = &done.relink_hint {
        hint(h);
    }
    let failed = done.failed();
    if failed > 0 {
        return Err(Error::Incomplete {
            count: failed,
            total: done.total,
        }
        .into());
    }
    Ok(())
}

//! `bale fetch [TARGET...] [-r NAME]`: download what the cache lacks of the
//! targets; `bale pull` is fetch, then checkout.

use std::path::PathBuf;

use crate::error::Error;
use crate::ops::fetch;

use super::{Ctx, human_size, plural, report_all};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
    /// The remote (default: core.remote)
    #[arg(short, long, value_name = "NAME")]
    pub remote: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    #[command(flatten)]
    pub fetch: Args,
    /// Overwrite or delete workspace content that is not in the cache
    #[arg(short, long)]
    pub force: bool,
}

/// Fetches; returns how many outs could not be fetched whole, and the
/// remote's name.
pub fn fetch_targets(ctx: &Ctx, args: &Args) -> anyhow::Result<(usize, String)> {
    let repo = ctx.open(true)?;
    let opts = fetch::Options {
        threads: ctx.transfers(),
        wait: ctx.wait,
        quiet: ctx.quiet,
    };
    let done = fetch::run(&repo, &ctx.cwd, &args.targets, args.remote.as_deref(), opts)?;
    if ctx.verbose {
        ctx.say(format!("remote {}: {}", done.remote, done.stats));
    }
    report_all(&done.out_errors);
    let fetched = done.fetched?;
    report_all(&fetched.errors);
    if fetched.objects == 0 && fetched.errors.is_empty() {
        ctx.say("everything is in the cache already");
    } else if fetched.objects > 0 {
        ctx.say(format!(
            "fetched {} ({}) from the remote {}{}",
            plural(fetched.objects, "object"),
            human_size(fetched.bytes),
            done.remote,
            if fetched.packed { ", into packs" } else { "" }
        ));
    }
    Ok((done.out_errors.len() + fetched.errors.len(), done.remote))
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    match fetch_targets(ctx, &args)?.0 {
        0 => Ok(()),
        n => Err(Error::Errors { count: n }.into()),
    }
}

pub fn pull(ctx: &Ctx, args: PullArgs) -> anyhow::Result<()> {
    let (missing, remote) = fetch_targets(ctx, &args.fetch)?;
    super::checkout::run(
        ctx,
        super::checkout::Args {
            targets: args.fetch.targets,
            relink: false,
            force: args.force,
            fetched_from: Some(remote),
        },
    )?;
    match missing {
        0 => Ok(()),
        n => Err(Error::Errors { count: n }.into()),
    }
}

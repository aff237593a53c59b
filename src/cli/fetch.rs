//! `bale fetch [TARGET...] [-r NAME]`: download what the cache lacks of the
//! targets; `bale pull` is fetch, then checkout.

use std::path::PathBuf;

use crate::error::Error;
use crate::out::{self, Inside};
use crate::remote::fetch;
use crate::remote::{self, Purpose, Remote};

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
    let spec = remote::spec(&repo.config, args.remote.as_deref())?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Refuse)?;
    let remote = Remote::open(&spec, &repo.root, Purpose::Read)?;
    let mut errors = Vec::new();
    let manifests = fetch::manifests(&repo, &remote, &outs, &mut errors)?;
    let links_share = repo
        .settings
        .cache_types
        .first()
        .is_some_and(|t| t.shares_object());
    let opts = fetch::Options {
        threads: ctx.transfers(),
        threshold: repo.settings.pack_threshold,
        packed: links_share.then_some(false),
        wait: ctx.wait,
        quiet: ctx.quiet,
    };
    let result = fetch::fetch(&repo, &remote, &manifests, &opts);
    if ctx.verbose {
        ctx.say(format!("remote {}: {}", remote.name, remote.stats.line()));
    }
    report_all(&errors);
    let fetched = result?;
    report_all(&fetched.errors);
    if fetched.objects == 0 && fetched.errors.is_empty() {
        ctx.say("everything is in the cache already");
    } else if fetched.objects > 0 {
        ctx.say(format!(
            "fetched {} ({}) from the remote {}{}",
            plural(fetched.objects, "object"),
            human_size(fetched.bytes),
            remote.name,
            if fetched.packed { ", into packs" } else { "" }
        ));
    }
    Ok((errors.len() + fetched.errors.len(), remote.name))
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

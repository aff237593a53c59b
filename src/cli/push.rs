//! `bale push [TARGET...] [-r NAME]`: upload every object the targets
//! reference that the remote lacks; manifests last.

use std::path::PathBuf;

use crate::error::Error;
use crate::out::{self, Inside};
use crate::remote::push::{self, OutObjects};
use crate::remote::{self, Purpose, Remote};

use super::{Ctx, human_size, plural, report, report_all};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
    /// The remote (default: core.remote)
    #[arg(short, long, value_name = "NAME")]
    pub remote: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(false)?;
    let spec = remote::spec(&repo.config, args.remote.as_deref())?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Refuse)?;
    let mut failed = 0;
    let mut objects = Vec::new();
    for o in &outs {
        match crate::ops::expected_of(&repo, o) {
            Ok(manifest) => objects.push(OutObjects {
                key: o.key.clone(),
                top: o.is_dir().then_some(o.record.hash),
                manifest,
            }),
            Err(e) => {
                report(&e);
                failed += 1;
            }
        }
    }
    let remote = Remote::open(&spec, &repo.root, Purpose::Write)?;
    let opts = push::Options {
        threads: ctx.transfers(),
        threshold: repo.settings.pack_threshold,
        compress: repo.settings.pack_compression,
        quiet: ctx.quiet,
    };
    let result = push::push(&repo, &remote, &objects, &opts);
    if ctx.verbose {
        ctx.say(format!("remote {}: {}", remote.name, remote.stats.line()));
    }
    let pushed = result?;
    report_all(&pushed.errors);
    if pushed.objects == 0 {
        ctx.say(format!(
            "everything is on the remote {} already ({})",
            remote.name,
            plural(pushed.complete, "out")
        ));
    } else {
        ctx.say(format!(
            "pushed {} ({}, {}) to the remote {}; {} complete there",
            plural(pushed.objects, "object"),
            human_size(pushed.bytes),
            plural(pushed.packs, "pack"),
            remote.name,
            plural(pushed.complete, "out"),
        ));
    }
    failed += pushed
        .errors
        .iter()
        .filter(|e| matches!(e, Error::Remote { .. }))
        .count();
    if failed > 0 {
        return Err(Error::Errors { count: failed }.into());
    }
    Ok(())
}

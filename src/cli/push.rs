//! `bale push [TARGET...] [-r NAME]`: upload every object the targets
//! reference that the remote lacks; manifests last.

use std::path::PathBuf;

use crate::error::Error;
use crate::ops::push;

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
    let opts = push::Options {
        threads: ctx.transfers(),
        quiet: ctx.quiet,
    };
    let done = push::run(&repo, &ctx.cwd, &args.targets, args.remote.as_deref(), opts)?;
    done.out_errors.iter().for_each(|e| report(e));
    if ctx.verbose {
        ctx.say(format!("remote {}: {}", done.remote, done.stats));
    }
    let failed = done.failed();
    let pushed = done.pushed?;
    report_all(&pushed.errors);
    if pushed.objects == 0 {
        ctx.say(format!(
            "everything is on the remote {} already ({})",
            done.remote,
            plural(pushed.complete, "out")
        ));
    } else {
        ctx.say(format!(
            "pushed {} ({}, {}) to the remote {}; {} complete there",
            plural(pushed.objects, "object"),
            human_size(pushed.bytes),
            plural(pushed.packs, "pack"),
            done.remote,
            plural(pushed.complete, "out"),
        ));
    }
    if failed > 0 {
        return Err(Error::Errors { count: failed }.into());
    }
    Ok(())
}

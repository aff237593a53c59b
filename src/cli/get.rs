//! `bale get --rev REV OUT [-o DIR] [--force]`: make an out as REV records
//! it in another folder (default `OUT@REV` beside the out), linked from the
//! cache per `cache.type`; git, the workspace's out and its snapshot are
//! left alone.

use std::path::PathBuf;

use crate::error::Error;
use crate::ops::get;
use crate::paths;

use super::{Ctx, human_size, plural, report_all};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The revision to read the out from (a branch, tag or commit)
    #[arg(long, value_name = "REV")]
    pub rev: String,
    /// The out (or its pointer file), as a path in the workspace
    pub out: PathBuf,
    /// Where to make it (default: OUT@REV beside the out)
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Replace DIR if it exists
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(false)?;
    let opts = get::Options {
        rev: &args.rev,
        out: &paths::normalize(&ctx.cwd.join(&args.out)),
        dest: args
            .dest
            .as_ref()
            .map(|d| paths::normalize(&ctx.cwd.join(d))),
        force: args.force,
        quiet: ctx.quiet,
    };
    let done = get::run(&repo, &opts)?;
    match done.got {
        Ok(got) => {
            ctx.say(format!(
                "{}@{}: {} ({}) in {}",
                done.key,
                args.rev,
                plural(got.files, "file"),
                human_size(got.bytes),
                paths::quoted(&done.dest)
            ));
            Ok(())
        }
        Err(errors) => {
            report_all(&errors);
            Err(Error::Errors {
                count: errors.len(),
            }
            .into())
        }
    }
}

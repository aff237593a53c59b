//! `bale commit [TARGET...]`: record the current content of tracked outs,
//! re-hashing only files whose stat changed.

use std::path::PathBuf;

use crate::error::Error;
use crate::ops::commit::{self, Committed};
use crate::out::{self, Inside};

use super::{Ctx, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let mut state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets, Inside::Refuse)?;
    let opts = commit::Options { quiet: ctx.quiet };
    let done = commit::run(&repo, &mut state, &outs, opts)?;
    for o in &done.outs {
        o.warnings.iter().for_each(super::warn);
        match &o.outcome {
            Ok(Committed::Unchanged) => ctx.say(format!("{}: unchanged", o.key)),
            Ok(Committed::Changed(c)) => {
                ctx.say(format!(
                    "{}: committed ({} added, {} modified, {} deleted)",
                    o.key,
                    c.added.len(),
                    c.modified.len(),
                    c.deleted.len()
                ));
                if ctx.verbose {
                    c.lines().for_each(|l| ctx.say(l));
                }
            }
            Ok(Committed::New) => ctx.say(format!("{}: committed (new content)", o.key)),
            Err(e) => report(e),
        }
    }
    if let Some(e) = done.unsaved {
        return Err(e.into());
    }
    let failed = done.failed();
    if failed > 0 {
        return Err(Error::Incomplete {
            count: failed,
            total: outs.len(),
        }
        .into());
    }
    Ok(())
}

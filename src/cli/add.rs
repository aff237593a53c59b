//! `bale add PATH...`: hash and store, link the workspace per `cache.type`,
//! write `PATH.bale`, and keep the data out of git.

use std::path::PathBuf;

use crate::ops::{display_path, track};
use crate::paths;
use crate::workspace::{self, RecordOptions};

use super::{Ctx, human_size, plural, warn};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or folders to track
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Leave out symlinks inside a folder (naming them) instead of refusing
    #[arg(long)]
    pub skip_symlinks: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let mut state = repo.state()?;
    let linker = crate::ops::linker(&repo);
    let mut snapshots = Vec::new();
    let mut failure = None;
    for p in &args.paths {
        let abs = paths::normalize(&ctx.cwd.join(p));
        let added = track::check_new_out(&repo, &abs, p).and_then(|key| {
            let old = state.load(&key)?;
            // Symlinks once left out stay left out when the out is added
            // again.
            let recorded = track::existing_record(&abs, &key)?;
            let opts = RecordOptions {
                skip_symlinks: args.skip_symlinks || recorded.is_some_and(|(_, r)| r.skip_symlinks),
            };
            let r = workspace::record(&abs, old, &repo.cache, &linker, opts, ctx.quiet)?;
            track::write_pointer(&abs, &key, &r)?;
            Ok((key, r))
        });
        let (key, r) = match added {
            Ok(x) => x,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for (h, f) in &r.corrupt {
            warn(crate::ops::commit::edited_in_place(
                &display_path(&key, f),
                *h,
            ));
        }
        if !r.skipped.is_empty() {
            warn(format!(
                "left out {}: {}",
                plural(r.skipped.len(), "symlink"),
                r.skipped
                    .iter()
                    .map(|s| display_path(&key, s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        ctx.say(format!(
            "{key}: added {}, {} ({} new, linked as {})",
            plural(r.nfiles as usize, "file"),
            human_size(r.size),
            plural(r.new_objects, "object"),
            r.link_type
        ));
        if track::tracked_by_git(&repo, &key) {
            super::hint(format!(
                "git already tracks files in {key}: run `git rm -r --cached {key}` and commit, so that git keeps only {key}.bale"
            ));
        }
        if ctx.verbose {
            for &i in &r.stored {
                let f = r.manifest.get(i as usize).path;
                ctx.say(format!("  stored:   {}", display_path(&key, f)));
            }
        }
        snapshots.push((key, r.snapshot(0)));
    }
    repo.save_snapshots(&mut state, snapshots)?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

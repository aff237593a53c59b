//! `bale get --rev REV OUT [-o DIR] [--force]`: make an out as REV records
//! it in another folder (default `OUT@REV` beside the out), linked from the
//! cache per `cache.type`; git, the workspace's out and its snapshot are
//! left alone.

use std::path::PathBuf;

use crate::error::Error;
use crate::history::History;
use crate::ops::get;
use crate::paths;
use crate::pointer;

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
    let mut history = History::open(&repo.root)?.ok_or_else(|| Error::NotAGitRepository {
        path: repo.root.clone(),
        what: "bale get",
    })?;
    let rev = history.resolve(&args.rev)?;
    let mut key = repo.relative(&paths::normalize(&ctx.cwd.join(&args.out)))?;
    if let Some(stem) = key.strip_suffix(pointer::SUFFIX) {
        key = stem.to_owned();
    }
    let record = get::find_out(&mut history, &rev, &key)?;
    let out_root = repo.root.join(&key);
    let dest = match &args.dest {
        Some(d) => paths::normalize(&ctx.cwd.join(d)),
        None => get::default_dest(&out_root, &args.rev),
    };
    let linker = crate::ops::linker(&repo);
    let work_tree = history.work_tree();
    match get::materialize(
        &repo,
        &linker,
        &key,
        &record,
        &dest,
        work_tree.as_deref(),
        args.force,
        ctx.quiet,
    )? {
        Ok(got) => {
            ctx.say(format!(
                "{key}@{}: {} ({}) in {}",
                args.rev,
                plural(got.files, "file"),
                human_size(got.bytes),
                paths::quoted(&dest)
            ));
            Ok(())
        }
        Err(errors) => {
            // `bale fetch` gets what the workspace's pointers name, not
            // REV's: the hint says how to fetch REV's objects.
            let missing: Vec<String> = errors
                .iter()
                .filter_map(|e| match e {
                    Error::MissingObject { hash, path, .. } => {
                        Some(format!("{hash} {}", path.display()))
                    }
                    _ => None,
                })
                .collect();
            if missing.len() == errors.len() {
                return Err(Error::MissingForRevision {
                    rev: args.rev.clone(),
                    out: key,
                    list: super::capped_lines(&missing),
                }
                .into());
            }
            let count = errors.len();
            report_all(&errors);
            Err(Error::Errors { count }.into())
        }
    }
}

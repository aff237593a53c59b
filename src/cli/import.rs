//! `bale import ARCHIVE [DEST]`: track an archive's content as the folder
//! out DEST, as if it had been unpacked and added, without unpacking it
//! first; then check DEST out (unless `--no-checkout`).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fsutil::LinkType;
use crate::ops::import::{self, Checkout};
use crate::paths;

use super::{Ctx, human_size, plural, report, report_all};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A zip, tar, tar.gz or tar.zst file (recognised by its content), or
    /// `-` for a tar stream on stdin
    pub archive: PathBuf,
    /// The folder to track it as (default: the archive's name without its
    /// extensions; required with `-`)
    pub dest: Option<PathBuf>,
    /// Store small entries in packs
    #[arg(long, conflicts_with = "loose")]
    pub packed: bool,
    /// Store every entry as a loose object
    #[arg(long)]
    pub loose: bool,
    /// Only store and track the content; leave the workspace as it is
    #[arg(long)]
    pub no_checkout: bool,
    /// Replace DEST even though it is not this archive's out, or holds
    /// changes that are not in the cache
    #[arg(short, long)]
    pub force: bool,
}

/// The archive's name without its extensions: `data.tar.gz` -> `data`.
fn default_dest(archive: &Path) -> Option<PathBuf> {
    let mut name = archive.file_name()?.to_str()?.to_owned();
    loop {
        let lower = name.to_ascii_lowercase();
        let Some(ext) = [".zip", ".tar", ".tgz", ".tzst", ".gz", ".zst", ".zstd"]
            .into_iter()
            .find(|e| lower.ends_with(e) && lower.len() > e.len())
        else {
            break;
        };
        name.truncate(name.len() - ext.len());
    }
    Some(PathBuf::from(name))
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    let stdin = args.archive == Path::new("-");
    let dest = match (&args.dest, stdin) {
        (Some(d), _) => d.clone(),
        (None, true) => {
            return Err(Error::Unsupported {
                path: args.archive.clone(),
                reason: "a stream has no name: give DEST, e.g. `bale import - data`".into(),
            }
            .into());
        }
        (None, false) => default_dest(&args.archive).ok_or_else(|| Error::Unsupported {
            path: args.archive.clone(),
            reason: "cannot name the folder after this archive: give DEST".into(),
        })?,
    };
    let abs = paths::normalize(&ctx.cwd.join(&dest));
    let opts = import::Options {
        packed: args.packed,
        loose: args.loose,
        no_checkout: args.no_checkout,
        force: args.force,
        wait: ctx.wait,
        quiet: ctx.quiet,
        list_changes: ctx.verbose,
    };
    let archive_abs = ctx.cwd.join(&args.archive);
    let archive = (!stdin).then_some(archive_abs.as_path());
    let done = import::run(&repo, archive, &abs, &dest, &opts)?;
    let what = format!(
        "{}: imported {} ({}) from {} ({}); {} new in the cache, {}",
        done.key,
        plural(done.nfiles, "file"),
        human_size(done.size),
        paths::quoted(&args.archive),
        done.format,
        plural(done.stored, "object"),
        if done.packed {
            "small files in packs"
        } else {
            "as loose objects"
        }
    );
    done.corrupt.iter().for_each(|e| report(e));
    match &done.checkout {
        Checkout::NotAsked => ctx.say(what),
        Checkout::HadIt => ctx.say(format!("{what}; the workspace had it already")),
        Checkout::Done(types) => ctx.say(format!(
            "{what}; {}",
            checked_out_as(types.clone(), done.nfiles)
        )),
        Checkout::Incomplete => {
            ctx.say(format!("{what}; its checkout is incomplete"));
            report_all(&done.apply_errors);
        }
    }
    if ctx.verbose {
        done.changes.lines().for_each(|l| ctx.say(l));
    }
    if done.failed() {
        return Err(Error::Errors { count: 1 }.into());
    }
    Ok(())
}

/// How the files were checked out, by the link types they were made with
/// (none when no file was written).
fn checked_out_as(mut types: Vec<LinkType>, nfiles: usize) -> String {
    const ORDER: [LinkType; 4] = [
        LinkType::Reflink,
        LinkType::Hardlink,
        LinkType::Symlink,
        LinkType::Copy,
    ];
    types.sort_by_key(|t| ORDER.iter().position(|o| o == t));
    if types.is_empty() {
        return if nfiles == 0 {
            "nothing to check out".into()
        } else {
            "the workspace had its files already".into()
        };
    }
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    format!("checked out as {}", names.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_is_the_archive_name_without_extensions() {
        for (archive, dest) in [
            ("data.zip", "data"),
            ("dir/data.tar.gz", "data"),
            ("x.TGZ", "x"),
            ("shards.tar.zst", "shards"),
            ("v1.2.tar", "v1.2"),
            (".zip", ".zip"),
        ] {
            assert_eq!(
                default_dest(Path::new(archive)),
                Some(PathBuf::from(dest)),
                "{archive}"
            );
        }
    }
}

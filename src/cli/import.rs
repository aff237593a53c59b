//! `bale import ARCHIVE [DEST]`: track an archive's content as the folder
//! out DEST, as if it had been unpacked and added, without unpacking it
//! first; then check DEST out (unless `--no-checkout`).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fsutil::{self, LinkType};
use crate::import::{self, Input, Mode};
use crate::ops::checkout::{self as co, Planned};
use crate::ops::track;
use crate::out::{self, Out};
use crate::paths;
use crate::pointer::{self, OutKind, OutRecord};

use super::{Ctx, human_size, plural, report_all};

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
    let key = track::check_out_path(&repo, &abs, &dest).map_err(|e| match e {
        Error::InsideOut { path, out } => Error::ImportOverlapsOut {
            path,
            out,
            inside: true,
        },
        e => e,
    })?;
    let existing = track::existing_record(&abs, &key)?;
    if abs.symlink_metadata().is_ok() {
        if existing.is_none() && !args.force {
            return Err(Error::DestinationExists(dest).into());
        }
        if abs.is_dir()
            && let Some(p) = out::find_pointers(&abs)?.first()
        {
            return Err(Error::ImportOverlapsOut {
                path: dest,
                out: p.with_extension(""),
                inside: false,
            }
            .into());
        }
    }
    let links_share = repo
        .settings
        .cache_types
        .first()
        .is_some_and(|t| t.shares_object());
    let mode = if args.packed {
        Mode::Packed
    } else if args.loose {
        Mode::Loose
    } else {
        Mode::Auto {
            links_share: links_share && !args.no_checkout,
        }
    };
    let opts = import::Options {
        mode,
        threshold: repo.settings.pack_threshold,
        compress: repo.settings.pack_compression,
        batch_entries: usize::try_from(repo.settings.batch_entries).unwrap_or(usize::MAX),
        batch_bytes: repo.settings.batch_bytes,
        name_max: fsutil::name_max(abs.parent().unwrap_or(&abs)),
        wait: ctx.wait,
        quiet: ctx.quiet,
    };
    let archive_abs = ctx.cwd.join(&args.archive);
    let input = if stdin {
        Input::Stdin
    } else {
        Input::File(&archive_abs)
    };
    let imp = import::import(&repo.cache, input, &opts)?;
    // The batches are gone: their memory is not the checkout's to carry.
    crate::memory::release_freed();
    let nfiles = imp.nfiles as u64;
    let name = key.rsplit('/').next().unwrap_or(&key).to_owned();
    let (index, mut record) = existing.unwrap_or_else(|| {
        (
            0,
            OutRecord {
                path: name,
                hash: imp.hash,
                kind: OutKind::Dir,
                size: 0,
                nfiles: None,
                executable: false,
                skip_symlinks: false,
                extra: Default::default(),
            },
        )
    });
    record.hash = imp.hash;
    record.kind = OutKind::Dir;
    record.size = imp.size;
    record.nfiles = Some(nfiles);
    record.executable = false;
    let fill = |o: &mut OutRecord| {
        o.hash = imp.hash;
        o.kind = OutKind::Dir;
        o.size = imp.size;
        o.nfiles = Some(nfiles);
        o.executable = false;
    };
    let what = format!(
        "{key}: imported {} ({}) from {} ({}); {} new in the cache, {}",
        plural(nfiles as usize, "file"),
        human_size(imp.size),
        paths::quoted(&args.archive),
        imp.format.name(),
        plural(imp.stored, "object"),
        if imp.packed {
            "small files in packs"
        } else {
            "as loose objects"
        }
    );
    if args.no_checkout {
        track::write_pointer_with(&abs, &key, fill)?;
        ctx.say(what);
        return Ok(());
    }

    let mut state = repo.state()?;
    let linker = crate::ops::linker(&repo);
    let o = Out {
        pointer: pointer::pointer_path(&abs),
        index,
        record,
        root: abs.clone(),
        key: key.clone(),
        subpath: None,
    };
    let opts = co::Options {
        plan: co::PlanOptions {
            relink: false,
            force: args.force,
        },
        quiet: ctx.quiet,
        list_changes: ctx.verbose,
        fetched_from: None,
    };
    let planned = co::plan_out(&repo, &state, &linker, o, opts.plan, ctx.quiet)?;
    if let Planned::Changes(w) = &planned
        && !w.plan.conflicts.is_empty()
    {
        let paths = w
            .plan
            .conflicts
            .iter()
            .map(|c| paths::join(Path::new(&key), c))
            .collect();
        return Err(Error::ImportWouldLoseData(paths).into());
    }
    track::write_pointer_with(&abs, &key, fill)?;
    let mut done = co::CheckoutReport::default();
    co::apply_all(&repo, &mut state, &linker, vec![planned], &opts, &mut done)?;
    let failed = !done.errors.is_empty();
    let Some(out) = done.outs.pop() else {
        unreachable!("apply_all reports every out it is given")
    };
    if out.unchanged {
        ctx.say(format!("{what}; the workspace had it already"));
        return Ok(());
    }
    // The corrupt objects found while planning, then the apply's errors.
    let (apply_errors, corrupt) = match out.summary {
        Some(_) => (None, &done.errors[..]),
        None => done
            .errors
            .split_last()
            .map_or((None, &[][..]), |(l, r)| (Some(l), r)),
    };
    corrupt.iter().for_each(|e| report_all(e));
    match apply_errors {
        None => ctx.say(format!(
            "{what}; {}",
            checked_out_as(out.link_types, imp.nfiles)
        )),
        Some(errors) => {
            ctx.say(format!("{what}; its checkout is incomplete"));
            report_all(errors);
        }
    }
    if ctx.verbose {
        out.changes.lines().for_each(|l| ctx.say(l));
    }
    if failed {
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

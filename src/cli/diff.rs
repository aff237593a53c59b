//! `bale diff [REV [REV]] [TARGET...] [--json]`: files added, modified,
//! deleted and renamed per out and in total, between two revisions, or a
//! revision (default HEAD) and the workspace. Leading arguments that git
//! resolves are revisions, as in git; one that is also a path is ambiguous
//! unless `--` separates revisions from targets.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::history::History;
use crate::ops::diff::{self, OutDiff, Total, Version};
use crate::paths;
use crate::pointer;

use super::{Ctx, plural, report_all};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Up to two revisions, then outs, pointer files or folders holding
    /// them (default: HEAD against the workspace, every out under this
    /// folder)
    pub args: Vec<String>,
    /// Targets after `--` (everything before it is a revision)
    #[arg(last = true, value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
    /// Print one JSON object: from, to, outs (each with its paths), total
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Json<'a> {
    from: &'a str,
    to: &'a str,
    outs: &'a [OutDiff],
    total: &'a Total,
}

fn counts(d: &diff::FileChanges) -> String {
    format!(
        "{} added, {} modified, {} deleted, {} renamed",
        d.added.len(),
        d.modified.len(),
        d.deleted.len(),
        d.renamed.len()
    )
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(false)?;
    let mut history = History::open(&repo.root)?;
    let not_git = || Error::NotAGitRepository {
        path: repo.root.clone(),
        what: "bale diff",
    };
    // Revisions first: with `--`, every argument before it; without, the
    // leading ones that resolve (at most two).
    let mut revs = Vec::new();
    let mut targets: Vec<PathBuf> = Vec::new();
    // Leading arguments that did not resolve, with why: one that is no
    // path either is reported as git does.
    let mut unresolved: Vec<(PathBuf, Error)> = Vec::new();
    if !args.targets.is_empty() {
        if args.args.len() > 2 {
            return Err(Error::BadRevision {
                rev: args.args[2].clone(),
                message: "at most two revisions come before `--`".into(),
            }
            .into());
        }
        let h = history.as_ref().ok_or_else(not_git)?;
        for a in &args.args {
            revs.push(h.resolve(a)?);
        }
        targets.extend(args.targets.iter().cloned());
    } else {
        for a in &args.args {
            let rev = match (&history, revs.len() < 2 && targets.is_empty()) {
                (Some(h), true) => match h.resolve(a) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        unresolved.push((PathBuf::from(a), e));
                        None
                    }
                },
                _ => None,
            };
            match rev {
                Some(r) => {
                    if is_path(&ctx.cwd, Path::new(a)) {
                        return Err(Error::AmbiguousArgument(a.clone()).into());
                    }
                    revs.push(r);
                }
                None => targets.push(PathBuf::from(a)),
            }
        }
    }
    let h = history.as_ref().ok_or_else(not_git)?;
    let (old, new) = match revs.len() {
        0 => (
            Version::Rev(h.resolve("HEAD").map_err(|_| Error::BadRevision {
                rev: "HEAD".into(),
                message: "HEAD has no commit yet".into(),
            })?),
            Version::Workspace,
        ),
        1 => (Version::Rev(revs.remove(0)), Version::Workspace),
        _ => {
            let b = revs.remove(1);
            (Version::Rev(revs.remove(0)), Version::Rev(b))
        }
    };
    let done = diff::run(&repo, history.as_mut(), &old, &new, &ctx.cwd, &targets)?;
    // A target that names no out on either side is a typo, not "no changes".
    if let Some(t) = done.unmatched.and_then(|i| targets.get(i)) {
        if is_path(&ctx.cwd, t) {
            return Err(Error::NotTracked(t.clone()).into());
        }
        return Err(match unresolved.into_iter().find(|(u, _)| u == t) {
            Some((_, e @ Error::ShallowHistory { .. })) => e,
            Some(_) => Error::UnknownRevisionOrPath(t.to_string_lossy().into_owned()),
            None => Error::NotFound(t.clone()),
        }
        .into());
    }
    let (outs, total, errors) = (&done.outs, &done.total, &done.errors);
    let q = |p: &String| paths::quoted_str(p);
    if args.json {
        ctx.print(serde_json::to_string_pretty(&Json {
            from: old.name(),
            to: new.name(),
            outs,
            total,
        })?);
    } else if outs.is_empty() {
        ctx.print(format!("no changes from {} to {}", old.name(), new.name()));
    } else {
        for o in outs {
            ctx.print(format!("{}: {}", o.path, counts(&o.changes)));
            let c = &o.changes;
            c.added
                .iter()
                .for_each(|p| ctx.print(format!("  added:    {}", q(p))));
            c.modified
                .iter()
                .for_each(|p| ctx.print(format!("  modified: {}", q(p))));
            c.deleted
                .iter()
                .for_each(|p| ctx.print(format!("  deleted:  {}", q(p))));
            c.renamed
                .iter()
                .for_each(|(f, t)| ctx.print(format!("  renamed:  {} -> {}", q(f), q(t))));
        }
        ctx.print(format!(
            "total: {} added, {} modified, {} deleted, {} renamed in {}",
            total.added,
            total.modified,
            total.deleted,
            total.renamed,
            plural(outs.len(), "out")
        ));
    }
    report_all(errors);
    if !errors.is_empty() {
        return Err(Error::Errors {
            count: errors.len(),
        }
        .into());
    }
    Ok(())
}

/// Whether `arg` names something in the workspace: a path, or an out by
/// its pointer file.
fn is_path(cwd: &Path, arg: &Path) -> bool {
    let p = cwd.join(arg);
    p.symlink_metadata().is_ok() || pointer::pointer_path(&p).is_file()
}

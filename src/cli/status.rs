//! `bale status [TARGET...] [--json]`: per out, `unchanged`, `modified`
//! (with counts), `missing` or `not-in-cache`. Read-only.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestEntry};
use crate::out::{self, Out};
use crate::repo::{Access, Repo};
use crate::state::Snapshot;
use crate::workspace::{self, link::Linker, link::relink_advised, plan::Root, walk};

use super::{Ctx, hint, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Outs or pointer files (default: every pointer file under this folder)
    pub targets: Vec<PathBuf>,
    /// Print one JSON array, one object per out
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug)]
struct OutStatus {
    path: String,
    pointer: String,
    state: &'static str,
    added: usize,
    modified: usize,
    deleted: usize,
    #[serde(skip)]
    changed: Vec<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let state = repo.state()?;
    let outs = out::resolve(&repo, &ctx.cwd, &args.targets)?;
    let mut results = Vec::new();
    let mut failed = 0;
    let linker = Linker::new(repo.settings.cache_types.clone());
    let mut advise = Vec::new();
    for o in &outs {
        let snapshot = state.load(&o.key)?;
        if snapshot
            .as_ref()
            .is_some_and(|s| relink_advised(s.link_type, &s.cache_type, &linker))
        {
            advise.push(o.key.clone());
        }
        match status_of(ctx, &repo, snapshot, o) {
            Ok(s) => results.push(s),
            Err(e) => {
                report(&e);
                failed += 1;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for s in &results {
            match s.state {
                "modified" => println!(
                    "{}: modified ({} added, {} modified, {} deleted)",
                    s.path, s.added, s.modified, s.deleted
                ),
                other => println!("{}: {other}", s.path),
            }
            if ctx.verbose {
                for c in &s.changed {
                    println!("  {c}");
                }
            }
        }
    }
    if !advise.is_empty() {
        hint(super::checkout::relink_hint(&advise, &linker));
    }
    if failed > 0 {
        return Err(Error::Incomplete { count: failed }.into());
    }
    Ok(())
}

/// The manifest an out's pointer names (for a file out, its one entry).
pub fn expected_of(repo: &Repo, o: &Out) -> Result<Manifest> {
    if o.is_dir() {
        repo.cache.read_manifest(o.record.hash, &o.root)
    } else {
        Ok(Manifest::new(vec![ManifestEntry {
            path: String::new(),
            hash: o.record.hash,
            size: o.record.size,
            executable: o.record.executable,
        }]))
    }
}

fn status_of(ctx: &Ctx, repo: &Repo, snapshot: Option<Snapshot>, o: &Out) -> Result<OutStatus> {
    let pointer = repo.relative(&o.pointer)?;
    let mut s = OutStatus {
        path: o.key.clone(),
        pointer,
        state: "unchanged",
        added: 0,
        modified: 0,
        deleted: 0,
        changed: Vec::new(),
    };
    let walked = walk::walk(&o.root, snapshot.as_ref().map_or(0, Snapshot::len))?;
    if let (Some(snap), Some(w)) = (&snapshot, &walked)
        && snap.hash == o.record.hash
        && workspace::matches_snapshot(w, snap)
        && repo.cache.contains(o.record.hash)
    {
        return Ok(s);
    }
    let obs = workspace::observe(&o.root, walked, snapshot.as_ref(), &repo.cache, ctx.quiet)?;
    if obs.root == Root::Missing {
        s.state = "missing";
        return Ok(s);
    }
    let expected = match expected_of(repo, o) {
        Ok(m) => m,
        Err(Error::MissingObject { .. }) => {
            s.state = "not-in-cache";
            return Ok(s);
        }
        Err(e) => return Err(e),
    };
    let d = workspace::plan::diff(expected.entries(), &obs.files);
    if d.is_clean() && (o.is_dir() || obs.root == Root::NotDir) {
        return Ok(s);
    }
    s.state = if !o.is_dir() && !repo.cache.contains(o.record.hash) {
        "not-in-cache"
    } else {
        "modified"
    };
    s.added = d.added.len();
    s.modified = d.modified.len();
    s.deleted = d.deleted.len();
    let name = |p: &str| {
        if p.is_empty() {
            o.key.clone()
        } else {
            format!("{}/{p}", o.key)
        }
    };
    s.changed.extend(
        d.added
            .iter()
            .map(|&i| format!("added:    {}", name(&obs.files[i].path))),
    );
    s.changed.extend(
        d.modified
            .iter()
            .map(|&(i, _)| format!("modified: {}", name(&obs.files[i].path))),
    );
    s.changed.extend(
        d.deleted
            .iter()
            .map(|&j| format!("deleted:  {}", name(&expected.entries()[j].path))),
    );
    Ok(s)
}

//! `bale add PATH...`: hash and store, link the workspace per `cache.type`,
//! write `PATH.bale`, and keep the data out of git.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::paths;
use crate::pointer::{self, OutKind, OutRecord, PointerFile, write_atomic};
use crate::repo::{Access, Repo};
use crate::workspace::{self, Recorded, link::Linker};

use super::{Ctx, human_size};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or folders to track
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write)?;
    let mut state = repo.state()?;
    let linker = Linker::new(repo.settings.cache_types.clone());
    let mut recorded = Vec::new();
    let mut failure = None;
    for p in &args.paths {
        match add_one(ctx, &repo, &state, &linker, p) {
            Ok(r) => recorded.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let snapshots = recorded
        .into_iter()
        .map(|(key, r)| (key, r.snapshot(0)))
        .collect();
    super::save_snapshots(&repo, &mut state, snapshots)?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn add_one(
    ctx: &Ctx,
    repo: &Repo,
    state: &crate::state::StateDb,
    linker: &Linker,
    path: &Path,
) -> Result<(String, Recorded)> {
    let abs = paths::normalize(&ctx.cwd.join(path));
    if abs.symlink_metadata().is_err() {
        return Err(Error::NotFound(path.to_path_buf()));
    }
    let key = repo.relative(&abs)?;
    if key.is_empty() {
        return Err(Error::Unsupported {
            path: abs,
            reason: "the repository root itself cannot be an out; add the folders in it".into(),
        });
    }
    paths::check_relative(&key).map_err(|reason| Error::Unsupported {
        path: abs.clone(),
        reason: reason.into(),
    })?;
    let mut ancestor = abs.parent();
    while let Some(a) = ancestor {
        if a == repo.root {
            break;
        }
        if pointer::pointer_path(a).is_file() {
            return Err(Error::InsideOut {
                path: path.to_path_buf(),
                out: a.to_path_buf(),
            });
        }
        ancestor = a.parent();
    }
    let pointer_path = pointer::pointer_path(&abs);
    let existing = if pointer_path.is_file() {
        Some(PointerFile::read(&pointer_path)?)
    } else {
        None
    };
    let old = state.load(&key)?;
    let r = workspace::record(&abs, old.as_ref(), &repo.cache, linker, ctx.quiet)?;
    let name = abs
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Unsupported {
            path: abs.clone(),
            reason: "the name is not valid UTF-8".into(),
        })?
        .to_owned();
    let mut file = existing.unwrap_or_else(|| PointerFile {
        outs: Vec::new(),
        extra: Default::default(),
    });
    match file.outs.iter_mut().find(|o| o.path == name) {
        Some(o) => r.update(o),
        None => {
            let mut o = OutRecord {
                path: name.clone(),
                hash: r.hash,
                kind: OutKind::File,
                size: 0,
                nfiles: None,
                executable: false,
                extra: Default::default(),
            };
            r.update(&mut o);
            file.outs.push(o);
        }
    }
    file.write(&pointer_path)?;
    ignore_in_git(&abs, &name)?;
    ctx.say(format!(
        "{key}: added {} file{}, {} ({} stored, linked as {})",
        r.nfiles,
        if r.nfiles == 1 { "" } else { "s" },
        human_size(r.size),
        r.stored,
        r.link_type
    ));
    Ok((key, r))
}

/// Appends `/name` to the `.gitignore` beside the out, once.
fn ignore_in_git(out: &Path, name: &str) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("/"));
    let gitignore = dir.join(".gitignore");
    let line = format!("/{name}");
    let text = match fs::read_to_string(&gitignore) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).at("read", &gitignore),
    };
    if text.lines().any(|l| l.trim_end() == line) {
        return Ok(());
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&line);
    new.push('\n');
    write_atomic(&gitignore, new.as_bytes())
}

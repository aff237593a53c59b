//! get: an out as a git revision records it, made in another folder from
//! the cache (linked per `cache.type`, like a checkout), without touching
//! git, the workspace's out or its snapshot. The folder is built under a
//! temp name beside its destination and renamed into place once complete.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::temp;
use crate::hash::Hash;
use crate::history::{History, Rev};
use crate::manifest::Manifest;
use crate::ops::track;
use crate::out;
use crate::pointer::{self, OutKind, OutRecord};
use crate::progress::Bar;
use crate::repo::{BALE_DIR, Repo};
use crate::workspace::{apply, link::Linker, plan};

/// The record of the out `key` in `rev`.
pub fn find_out(history: &mut History, rev: &Rev, key: &str) -> Result<OutRecord> {
    let mut found = Vec::new();
    history.pointers(rev, &mut HashSet::new(), &mut |p| found.push(p))?;
    // The usual place first: the pointer beside the out.
    let beside = format!("{key}{}", pointer::SUFFIX);
    found.sort_by_key(|p| p.path != beside);
    for p in &found {
        let Some(file) = history.pointer(&rev.name, p, &mut |_| {})? else {
            continue;
        };
        for o in &file.outs {
            if p.out_key(&o.path) == key {
                return Ok(o.clone());
            }
        }
    }
    Err(Error::NotInRevision {
        out: key.to_owned(),
        rev: rev.name.clone(),
    })
}

/// `OUT@REV` beside the out, REV made a file name (anything but letters,
/// digits, `.`, `-` and `_` becomes `_`).
pub fn default_dest(out_root: &Path, rev: &str) -> PathBuf {
    let safe: String = rev
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = out_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out_root.with_file_name(format!("{name}@{safe}"))
}

/// Refuses a destination that is, holds or lies inside an out or the
/// repository's own folders; an existing one unless `force`.
fn check_dest(repo: &Repo, dest: &Path, force: bool) -> Result<()> {
    let refuse = |reason: &'static str| Error::BadDestination {
        path: dest.to_path_buf(),
        reason,
    };
    if repo.root.starts_with(dest) {
        return Err(refuse("it holds the repository"));
    }
    if dest.starts_with(repo.root.join(BALE_DIR)) || dest.iter().any(|c| c == ".git") {
        return Err(refuse("it is inside .bale or .git"));
    }
    if dest.starts_with(&repo.root) {
        if out::enclosing_out(repo, dest).is_some() {
            return Err(refuse("it is inside a tracked out"));
        }
        if pointer::pointer_path(dest).is_file() {
            return Err(refuse("it is a tracked out"));
        }
        out::check_no_symlink_on_the_way(&repo.root, dest)?;
    }
    match fs::symlink_metadata(dest) {
        Ok(m) => {
            if !force {
                return Err(Error::GetDestinationExists(dest.to_path_buf()));
            }
            if m.is_dir() && !out::find_pointers(dest)?.is_empty() {
                return Err(refuse("it holds pointer files"));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("read", dest, e)),
    }
}

/// Appends `/NAME` for `dest` to the `.gitignore` beside it (once) when
/// it lies inside the git work tree `work_tree`.
fn ignore_in_work_tree(dest: &Path, work_tree: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name().and_then(|n| n.to_str()))
    else {
        return Ok(());
    };
    let real = fs::canonicalize(parent).at("read", parent)?;
    if !real.starts_with(work_tree) {
        return Ok(());
    }
    track::ignore_in_git(dest, name)
}

/// What `materialize` made.
pub struct Got {
    pub files: usize,
    pub bytes: u64,
}

/// Makes `dest` hold the out `record` (its files linked from the cache).
/// Missing objects: nothing is made, and each is returned as an error that
/// names it. `dest` replaces what stands there only with `force`, and only
/// once the new content is complete. Inside the git work tree `work_tree`,
/// git is told to ignore it (as `add` does an out), so that a `git add -A`
/// does not commit the data.
#[allow(clippy::too_many_arguments)]
pub fn materialize(
    repo: &Repo,
    linker: &Linker,
    key: &str,
    record: &OutRecord,
    dest: &Path,
    work_tree: Option<&Path>,
    force: bool,
    quiet: bool,
) -> Result<std::result::Result<Got, Vec<Error>>> {
    check_dest(repo, dest, force)?;
    let is_dir = record.kind == OutKind::Dir;
    let manifest = if is_dir {
        repo.cache.read_manifest(record.hash, Path::new(key))?
    } else {
        Manifest::single_file(record.hash, record.size, record.executable)
    };
    let mut wanted: Vec<Hash> = manifest.entries().map(|e| e.hash).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let gone = repo.cache.missing_of(&wanted);
    drop(wanted);
    let missing: Vec<Error> = manifest
        .entries()
        .filter(|e| gone.binary_search(&e.hash).is_ok())
        .map(|e| {
            repo.cache
                .missing(e.hash, crate::ops::display_path(key, e.path))
        })
        .collect();
    if !missing.is_empty() {
        return Ok(Err(missing));
    }
    let parent = dest.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).at("create the folder", parent)?;
    let tmp = temp::name_in(parent);
    let p = plan::plan(
        &manifest,
        is_dir,
        &[],
        &[],
        plan::Root::Missing,
        |_| true,
        false,
    );
    let bytes = p.write_bytes(&manifest);
    let bar = Bar::files(p.writes.len() as u64, bytes, "get", quiet);
    let outcome = apply::apply(&p, &manifest, &tmp, &[], &repo.cache, linker, &bar, None);
    bar.finish();
    let remove_tmp = || {
        let _ = if tmp.is_dir() {
            fs::remove_dir_all(&tmp)
        } else {
            fs::remove_file(&tmp)
        };
    };
    if !outcome.errors.is_empty() {
        remove_tmp();
        return Ok(Err(outcome.errors));
    }
    if let Ok(m) = fs::symlink_metadata(dest) {
        let r = if m.is_dir() {
            fs::remove_dir_all(dest)
        } else {
            fs::remove_file(dest)
        };
        if let Err(e) = r {
            remove_tmp();
            return Err(Error::io("replace", dest, e));
        }
    }
    if let Err(e) = fs::rename(&tmp, dest) {
        remove_tmp();
        return Err(Error::io("create", dest, e));
    }
    if let Some(w) = work_tree {
        ignore_in_work_tree(dest, w)?;
    }
    Ok(Ok(Got {
        files: p.writes.len(),
        bytes: manifest.entries().map(|e| e.size).sum(),
    }))
}

/// What `bale get` is asked for.
pub struct Options<'a> {
    /// The revision, as the user wrote it.
    pub rev: &'a str,
    /// The out (or its pointer file), absolute.
    pub out: &'a Path,
    /// Where to make it, absolute (default: `OUT@REV` beside the out).
    pub dest: Option<PathBuf>,
    /// Replace the destination if it exists.
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// What `get` made, and where.
pub struct GetReport {
    /// The out's key.
    pub key: String,
    pub dest: PathBuf,
    /// What was made, or why it is incomplete.
    pub got: std::result::Result<Got, Vec<Error>>,
}

/// Makes the out `opts.out` as `opts.rev` records it, in another folder.
/// When every error is an object missing from the cache, that is one error
/// saying how to fetch the revision's objects.
pub fn run(repo: &Repo, opts: &Options<'_>) -> Result<GetReport> {
    let mut history = History::open(&repo.root)?.ok_or_else(|| Error::NotAGitRepository {
        path: repo.root.clone(),
        what: "bale get",
    })?;
    let rev = history.resolve(opts.rev)?;
    let mut key = repo.relative(opts.out)?;
    if let Some(stem) = key.strip_suffix(crate::pointer::SUFFIX) {
        key = stem.to_owned();
    }
    let record = find_out(&mut history, &rev, &key)?;
    let out_root = repo.root.join(&key);
    let dest = match &opts.dest {
        Some(d) => d.clone(),
        None => default_dest(&out_root, opts.rev),
    };
    let linker = super::linker(repo);
    let work_tree = history.work_tree();
    let got = materialize(
        repo,
        &linker,
        &key,
        &record,
        &dest,
        work_tree.as_deref(),
        opts.force,
        opts.quiet,
    )?;
    if let Err(errors) = &got {
        // `bale fetch` gets what the workspace's pointers name, not REV's:
        // the error says how to fetch REV's objects.
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
                rev: opts.rev.to_owned(),
                out: key,
                list: super::capped_lines(&missing),
            });
        }
    }
    Ok(GetReport { key, dest, got })
}

//! fetch: download what the cache lacks of the targets (their manifests
//! first), every object re-hashed before it is stored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::out::{self, Inside};
use crate::remote::fetch::{self, Fetched};
use crate::remote::{self, Purpose, Remote};
use crate::repo::Repo;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Concurrent transfers.
    pub threads: usize,
    /// How long to wait for the cache's lock.
    pub wait: Duration,
    /// No progress bar.
    pub quiet: bool,
}

/// What a fetch did.
pub struct FetchReport {
    /// The remote's name.
    pub remote: String,
    /// Its request and byte counts (`-v`).
    pub stats: String,
    /// Outs whose manifest could not be had: not fetched.
    pub out_errors: Vec<Error>,
    /// The fetch itself: what came, and the per-object errors.
    pub fetched: Result<Fetched>,
}

/// Fetches the outs under `targets` (from `cwd`) from the remote `name`
/// (`None`: `core.remote`).
pub fn run(
    repo: &Repo,
    cwd: &Path,
    targets: &[PathBuf],
    name: Option<&str>,
    opts: Options,
) -> Result<FetchReport> {
    let spec = remote::spec(&repo.config, name)?;
    let outs = out::resolve(repo, cwd, targets, Inside::Refuse)?;
    let remote = Remote::open(&spec, &repo.root, Purpose::Read)?;
    let mut out_errors = Vec::new();
    let manifests = fetch::manifests(repo, &remote, &outs, &mut out_errors)?;
    let links_share = repo
        .settings
        .cache_types
        .first()
        .is_some_and(|t| t.shares_object());
    let fetch_opts = fetch::Options {
        threads: opts.threads,
        threshold: repo.settings.pack_threshold,
        packed: links_share.then_some(false),
        wait: opts.wait,
        quiet: opts.quiet,
    };
    let fetched = fetch::fetch(repo, &remote, &manifests, &fetch_opts);
    Ok(FetchReport {
        stats: remote.stats.line(),
        remote: remote.name,
        out_errors,
        fetched,
    })
}

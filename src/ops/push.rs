//! push: upload every object the targets reference (manifests and file
//! objects) that the remote lacks; manifests last.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::out::{self, Inside};
use crate::remote::push::{self, OutObjects, Pushed};
use crate::remote::{self, Purpose, Remote};
use crate::repo::Repo;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Concurrent transfers.
    pub threads: usize,
    /// No progress bar.
    pub quiet: bool,
}

/// What a push did.
pub struct PushReport {
    /// The remote's name.
    pub remote: String,
    /// Its request and byte counts (`-v`).
    pub stats: String,
    /// Outs whose manifest could not be read: not pushed.
    pub out_errors: Vec<Error>,
    /// The push itself: what went, and the per-object errors.
    pub pushed: Result<Pushed>,
}

impl PushReport {
    /// The outs and objects that failed.
    pub fn failed(&self) -> usize {
        let remote_errors = self.pushed.as_ref().map_or(0, |p| {
            p.errors
                .iter()
                .filter(|e| matches!(e, Error::Remote { .. }))
                .count()
        });
        self.out_errors.len() + remote_errors
    }
}

/// Pushes the outs under `targets` (from `cwd`) to the remote `name`
/// (`None`: `core.remote`).
pub fn run(
    repo: &Repo,
    cwd: &Path,
    targets: &[PathBuf],
    name: Option<&str>,
    opts: Options,
) -> Result<PushReport> {
    let spec = remote::spec(&repo.config, name)?;
    let outs = out::resolve(repo, cwd, targets, Inside::Refuse)?;
    let mut out_errors = Vec::new();
    let mut objects = Vec::new();
    for o in &outs {
        match super::expected_of(repo, o) {
            Ok(manifest) => objects.push(OutObjects {
                key: o.key.clone(),
                top: o.is_dir().then_some(o.record.hash),
                manifest,
            }),
            Err(e) => out_errors.push(e),
        }
    }
    let remote = Remote::open(&spec, &repo.root, Purpose::Write)?;
    let push_opts = push::Options {
        threads: opts.threads,
        threshold: repo.settings.pack_threshold,
        compress: repo.settings.pack_compression,
        quiet: opts.quiet,
    };
    let pushed = push::push(repo, &remote, &objects, &push_opts);
    Ok(PushReport {
        stats: remote.stats.line(),
        remote: remote.name,
        out_errors,
        pushed,
    })
}

//! Remotes: where a cache's objects are pushed to and fetched from. A
//! remote is a folder (another disk, an NFS mount) or an S3-compatible
//! bucket, both reached through `object_store`, so the transfer code is the
//! same for both. `layout.rs` says where objects are on a remote,
//! `index.rs` remembers which objects a remote's packs hold, `push.rs` and
//! `fetch.rs` move them.
//! `spec.rs` reads a remote's configuration; this module is the `Remote`
//! that stores and reads objects there.
//!
//! The calls here are blocking: each runs its request on a small tokio
//! runtime (`Handle::block_on`), so that worker threads can each drive one
//! transfer while the runtime's threads do the network I/O.

pub mod creds;
pub mod fetch;
pub mod index;
pub mod layout;
pub mod push;
mod spec;

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};

use crate::error::{Error, RemoteProblem, Result};
use crate::paths;
pub use crate::url::{DEFAULT_RETRIES, RemoteUrl, check_endpoint, is_name, redacted};

pub use spec::{Spec, configured, spec};
/// Objects at least this large are uploaded in parts...
pub const MULTIPART_MIN: u64 = 16 << 20;
/// ...of this size, at most this many in flight per object.
const PART_SIZE: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;

/// Requests made and bytes moved, for `-v`.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

impl Stats {
    pub fn line(&self) -> String {
        format!(
            "{} requests, {} sent, {} received",
            self.requests.load(Ordering::Relaxed),
            crate::human::human_size(self.sent.load(Ordering::Relaxed)),
            crate::human::human_size(self.received.load(Ordering::Relaxed)),
        )
    }

    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// An open remote.
pub struct Remote {
    pub name: String,
    /// What the user wrote, for messages (never holds credentials).
    pub url: String,
    /// Identifies the remote's content for the local copy of its indexes.
    pub identity: String,
    /// The folder of a folder remote (`None`: S3), for messages.
    folder: Option<PathBuf>,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    pub stats: Stats,
}

/// What opening a remote is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Read,
    /// A folder remote that is not there yet is made.
    Write,
}

impl Remote {
    pub fn open(spec: &Spec, root: &Path, purpose: Purpose) -> Result<Remote> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the network runtime", "bale", e))?;
        let fail = |problem, message: String| Error::Remote {
            remote: spec.name.clone(),
            problem,
            message,
        };
        let (store, identity, folder): (Arc<dyn ObjectStore>, String, Option<PathBuf>) =
            match &spec.location {
                RemoteUrl::Folder(p) => {
                    let dir = paths::normalize(&root.join(p));
                    folder_ready(&spec.name, &dir, purpose)?;
                    let fs = LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| fail(RemoteProblem::FolderMissing, e.to_string()))?
                        .with_fsync(true);
                    (Arc::new(fs), format!("file://{}", dir.display()), Some(dir))
                }
                RemoteUrl::S3 { bucket, prefix } => {
                    let store = s3_store(spec, bucket).map_err(|(p, m)| fail(p, m))?;
                    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                        Arc::new(store)
                    } else {
                        Arc::new(PrefixStore::new(store, prefix.as_str()))
                    };
                    let endpoint = spec.endpoint.as_deref().unwrap_or("aws");
                    (store, format!("s3://{bucket}/{prefix} at {endpoint}"), None)
                }
            };
        Ok(Remote {
            name: spec.name.clone(),
            url: redacted(&spec.url),
            identity,
            folder,
            store,
            rt,
            stats: Stats::default(),
        })
    }

    /// The error for a failed request: what it was, on which key, and what
    /// kind of trouble it is (for the hint).
    fn error(&self, action: &str, key: &str, e: object_store::Error) -> Error {
        if let Some(dir) = &self.folder {
            return self.folder_error(action, key, dir, e);
        }
        let text = e.to_string();
        let problem = match &e {
            object_store::Error::NotFound { .. } => RemoteProblem::BucketMissing,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => RemoteProblem::AccessDenied,
            _ if text.contains("error sending request") || text.contains("onnection refused") => {
                RemoteProblem::Unreachable
            }
            _ if text.contains("NoSuchBucket") => RemoteProblem::BucketMissing,
            _ if text.contains("InvalidAccessKeyId")
                || text.contains("SignatureDoesNotMatch")
                || text.contains("AccessDenied") =>
            {
                RemoteProblem::AccessDenied
            }
            _ => RemoteProblem::Failed,
        };
        let message = match problem {
            RemoteProblem::BucketMissing => {
                format!("cannot {action} {key}: the bucket does not exist ({text})")
            }
            RemoteProblem::AccessDenied => format!("cannot {action} {key}: access denied ({text})"),
            RemoteProblem::Unreachable => {
                format!("cannot {action} {key}: the server cannot be reached ({text})")
            }
            _ => format!("cannot {action} {key}: {text}"),
        };
        Error::Remote {
            remote: self.name.clone(),
            problem,
            message,
        }
    }

    /// The error for a failed request to a folder remote: the condition
    /// named (read-only, permission denied, disk full) with the folder,
    /// never the wording of `object_store`'s local store.
    fn folder_error(&self, action: &str, key: &str, dir: &Path, e: object_store::Error) -> Error {
        let to = match action {
            "upload" => "to",
            "download" | "delete" => "from",
            _ => "in",
        };
        let what = format!(
            "{action} {key} {to} the remote folder {}",
            paths::quoted(dir)
        );
        let (problem, message) = match (&e, io_cause(&e)) {
            (object_store::Error::NotFound { .. }, _) => (
                RemoteProblem::FolderMissing,
                format!("cannot {what}: it is not there"),
            ),
            (_, Some(io)) => folder_problem(io, &what)
                .unwrap_or_else(|| (RemoteProblem::Failed, format!("cannot {what}: {io}"))),
            (object_store::Error::Generic { source, .. }, None) => {
                (RemoteProblem::Failed, format!("cannot {what}: {source}"))
            }
            (_, None) => (RemoteProblem::Failed, format!("cannot {what}: {e}")),
        };
        Error::Remote {
            remote: self.name.clone(),
            problem,
            message,
        }
    }

    /// Every key under `prefix` with its size (one request per 1000 keys).
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let key = Key::from(prefix);
        self.rt.block_on(async {
            let mut stream = self.store.list(Some(&key));
            let mut out = Vec::new();
            self.stats.request();
            while let Some(item) = stream.next().await {
                let meta = item.map_err(|e| self.error("list", prefix, e))?;
                // ListObjectsV2 returns up to 1000 keys a page.
                if !out.is_empty() && out.len() % 1000 == 0 {
                    self.stats.request();
                }
                out.push((meta.location.to_string(), meta.size));
            }
            Ok(out)
        })
    }

    /// The object at `key`, or `None` when there is none.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let k = Key::from(key);
        self.stats.request();
        let got = self.rt.block_on(async {
            match self.store.get(&k).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let got = got.map_err(|e| self.error("download", key, e))?;
        if let Some(b) = &got {
            self.stats
                .received
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Streams the object at `key` into `sink`, chunk by chunk; `false` when
    /// there is no such object.
    pub fn get_into(&self, key: &str, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        let k = Key::from(key);
        self.stats.request();
        self.rt.block_on(async {
            let r = match self.store.get(&k).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(self.error("download", key, e)),
            };
            let mut stream = r.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.error("download", key, e))?;
                self.stats
                    .received
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                sink(&chunk)?;
            }
            Ok(true)
        })
    }

    /// The byte ranges of `key`, one request each.
    pub fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let k = Key::from(key);
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            self.stats.request();
            let b = self
                .rt
                .block_on(self.store.get_range(&k, r.clone()))
                .map_err(|e| self.error("download", key, e))?;
            if b.len() as u64 != r.end - r.start {
                return Err(Error::Remote {
                    remote: self.name.clone(),
                    problem: RemoteProblem::ObjectCorrupt,
                    message: format!("{key} is shorter than its index says"),
                });
            }
            self.stats
                .received
                .fetch_add(b.len() as u64, Ordering::Relaxed);
            out.push(b);
        }
        Ok(out)
    }

    /// Stores `bytes` at `key` in one request: the object appears whole or
    /// not at all.
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let k = Key::from(key);
        let len = bytes.len() as u64;
        self.stats.request();
        self.rt
            .block_on(self.store.put(&k, PutPayload::from_bytes(bytes)))
            .map_err(|e| self.error("upload", key, e))?;
        self.stats.sent.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes `key` (gone already is fine).
    pub fn delete(&self, key: &str) -> Result<()> {
        let k = Key::from(key);
        self.stats.request();
        match self.rt.block_on(self.store.delete(&k)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    /// Uploads what `r` yields (`size` bytes) to `key` in parts; the object
    /// appears only once the upload completes. `check` sees every chunk, and
    /// the upload is abandoned, not completed, if it then says no.
    pub fn put_parts(
        &self,
        key: &str,
        r: &mut dyn Read,
        on_chunk: &mut dyn FnMut(&[u8]),
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let k = Key::from(key);
        let fail = |e| self.error("upload", key, e);
        // The writer starts each part's upload as a task of the runtime.
        let _runtime = self.rt.enter();
        self.stats.request();
        let upload = self
            .rt
            .block_on(self.store.put_multipart(&k))
            .map_err(fail)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        let mut pending = 0usize;
        let result = (|| -> Result<()> {
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read", key, e)),
                };
                on_chunk(&buf[..n]);
                w.write(&buf[..n]);
                pending += n;
                while pending >= PART_SIZE {
                    pending -= PART_SIZE;
                    self.stats.request();
                }
                self.rt
                    .block_on(w.wait_for_capacity(PARTS_IN_FLIGHT))
                    .map_err(fail)?;
                self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            check()
        })();
        match result {
            Ok(()) => {
                if pending > 0 {
                    self.stats.request();
                }
                self.stats.request();
                self.rt.block_on(w.finish()).map_err(fail)?;
                Ok(())
            }
            Err(e) => {
                let _ = self.rt.block_on(w.abort());
                Err(e)
            }
        }
    }
}

/// Checks that the folder of a folder remote is there (making it for a
/// write): a file in its place, a missing folder, a read-only file system
/// or a denied permission are named as such.
fn folder_ready(remote: &str, dir: &Path, purpose: Purpose) -> Result<()> {
    let fail = |problem, message| Error::Remote {
        remote: remote.to_owned(),
        problem,
        message,
    };
    let (what, e) = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(fail(
                RemoteProblem::NotAFolder,
                format!("{} is a file, not a folder", paths::quoted(dir)),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && purpose == Purpose::Read => {
            return Err(fail(
                RemoteProblem::FolderMissing,
                format!("the folder {} does not exist", paths::quoted(dir)),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) => ("create the remote folder", e),
        },
        Err(e) => ("read the remote folder", e),
    };
    Err(
        match folder_problem(&e, &format!("{what} {}", paths::quoted(dir))) {
            Some((problem, message)) => fail(problem, message),
            None => Error::io(what, dir, e),
        },
    )
}

/// The I/O error at the root of `e`, if any.
fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut at: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = at {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        at = err.source();
    }
    None
}

/// The conditions of a folder remote that have a fix of their own: the
/// problem (for the hint) and the message.
fn folder_problem(e: &std::io::Error, what: &str) -> Option<(RemoteProblem, String)> {
    let (problem, condition) = match e.raw_os_error()? {
        libc::EROFS => (RemoteProblem::ReadOnly, "the file system is read-only"),
        libc::EACCES | libc::EPERM => (RemoteProblem::PermissionDenied, "permission denied"),
        libc::ENOSPC | libc::EDQUOT => (RemoteProblem::Full, "the disk is full"),
        libc::ENOTDIR => (
            RemoteProblem::NotAFolder,
            "a file stands where a folder is needed",
        ),
        _ => return None,
    };
    Some((problem, format!("cannot {what}: {condition}")))
}

/// Runs `work` on each job, on `threads` threads at once (each thread
/// drives one transfer at a time); the results come back in job order.
pub fn in_parallel<J: Send, R: Send>(
    jobs: Vec<J>,
    threads: usize,
    work: impl Fn(J) -> R + Sync,
) -> Vec<R> {
    let n = jobs.len();
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate());
    let results = std::sync::Mutex::new((0..n).map(|_| None).collect::<Vec<Option<R>>>());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                    let Some((i, job)) = next else { break };
                    let r = work(job);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

fn s3_store(
    spec: &Spec,
    bucket: &str,
) -> Result<object_store::aws::AmazonS3, (RemoteProblem, String)> {
    // TLS through rustls with ring; the first remote of the process
    // installs it (a second install is refused, harmlessly).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let found = creds::find(spec.profile.as_deref())
        .map_err(|m| (RemoteProblem::NoCredentials, m))?
        .ok_or((
            RemoteProblem::NoCredentials,
            "no credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and ~/.aws/credentials has no profile to use".to_owned(),
        ))?;
    let mut b = match found {
        creds::Found::Keys(c) => {
            let b = AmazonS3Builder::new()
                .with_access_key_id(c.key_id)
                .with_secret_access_key(c.secret);
            match c.token {
                Some(t) => b.with_token(t),
                None => b,
            }
        }
        creds::Found::Provider => AmazonS3Builder::from_env(),
    };
    let endpoint = spec.endpoint.clone().or_else(|| {
        ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty()))
    });
    if let Some(e) = &endpoint {
        b = b.with_endpoint(e.trim_end_matches('/'));
    }
    let region = spec
        .region
        .clone()
        .or_else(|| creds::region(spec.profile.as_deref()))
        .unwrap_or_else(|| "us-east-1".into());
    b.with_bucket_name(bucket)
        .with_region(region)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: spec.retries as usize,
            retry_timeout: Duration::from_secs(120),
        })
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(
                    endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                )
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(120)),
        )
        .build()
        .map_err(|e| (RemoteProblem::Failed, e.to_string()))
}

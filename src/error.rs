//! The library's error type. Every variant a user can cause names the path
//! involved; `hint()` says what to run about it.

use std::io;
use std::path::{Path, PathBuf};

use crate::hash::Hash;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the disk is full: cannot {action} {}", path.display())]
    NoSpace {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a bale repository (or any parent folder): {}", .0.display())]
    NotARepository(PathBuf),
    #[error("{} is already a bale repository", .0.display())]
    AlreadyInitialized(PathBuf),
    #[error("malformed pointer file {}: {message}", path.display())]
    MalformedPointer { path: PathBuf, message: String },
    #[error("the pointer file {} has merge conflict markers", crate::paths::quoted(.0))]
    PointerConflict(PathBuf),
    #[error("malformed manifest {hash} in the cache: {message}")]
    MalformedManifest { hash: Hash, message: String },
    #[error("malformed configuration file {}: {message}", path.display())]
    MalformedConfig { path: PathBuf, message: String },
    #[error("unsafe path {path:?} in {}: {reason}", source_file.display())]
    UnsafePath {
        path: String,
        source_file: PathBuf,
        reason: &'static str,
    },
    #[error("{} is not tracked by bale", .0.display())]
    NotTracked(PathBuf),
    #[error("{} is outside the repository {}", path.display(), root.display())]
    OutsideRepository { path: PathBuf, root: PathBuf },
    #[error("{} is inside the tracked out {}", path.display(), out.display())]
    InsideOut { path: PathBuf, out: PathBuf },
    #[error("{} is inside the out {}: this command works on whole outs", path.display(), out.display())]
    WholeOutsOnly { path: PathBuf, out: PathBuf },
    #[error("{} holds the tracked out {}: outs cannot overlap", path.display(), out.display())]
    HoldsOut { path: PathBuf, out: PathBuf },
    #[error(
        "{}: its out {out} overlaps the out {other_out} of {}: outs cannot overlap",
        crate::paths::quoted(pointer),
        crate::paths::quoted(other_pointer)
    )]
    OutsOverlap {
        pointer: PathBuf,
        out: String,
        other_pointer: PathBuf,
        other_out: String,
    },
    #[error("the out {out} is claimed by more than one pointer file: {}", pointers.iter().map(|p| crate::paths::quoted(p)).collect::<Vec<_>>().join(" and "))]
    ClaimedTwice { out: String, pointers: Vec<PathBuf> },
    #[error("{} goes through the symlink {}: bale does not follow symlinked folders to an out", path.display(), symlink.display())]
    SymlinkOnPath { path: PathBuf, symlink: PathBuf },
    #[error("{} cannot be tracked: {reason}", path.display())]
    Reserved { path: PathBuf, reason: &'static str },
    #[error("cannot track {} {what}:\n{}", if paths.len() == 1 { "this entry: it is one of the" } else { "these entries: they are" }, list_paths(paths))]
    Untrackable {
        what: &'static str,
        paths: Vec<PathBuf>,
        fix: &'static str,
    },
    #[error("file names that are not valid UTF-8 (bale records paths as UTF-8):\n{}", list_paths(.0))]
    BadNames(Vec<PathBuf>),
    #[error("{out} was left as it is: objects its new content needs are missing from the cache:\n{}", missing.iter().take(20).map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    ObjectsMissing {
        out: String,
        missing: Vec<String>,
        remote: Option<String>,
    },
    /// An object still missing after `pull` fetched from `remote`.
    #[error("{inner}")]
    MissingOnRemote { remote: String, inner: Box<Error> },
    #[error(
        "{out} as {rev} records it needs objects that are not in the cache; nothing was made:\n{list}"
    )]
    MissingForRevision {
        rev: String,
        out: String,
        list: String,
    },
    #[error("the cache folder {} is missing", .0.display())]
    CacheMissing(PathBuf),
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    #[error("cannot track {}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("unknown configuration key {key:?}; known keys: {known}")]
    UnknownConfigKey { key: String, known: String },
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidConfigValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("the repository is locked by another bale process ({})", .0.display())]
    Locked(PathBuf),
    #[error("the cache object {hash} for {} is missing from the cache {}", path.display(), cache.display())]
    MissingObject {
        hash: Hash,
        path: PathBuf,
        cache: PathBuf,
        /// The default remote (`core.remote`), for the hint.
        remote: Option<String>,
    },
    #[error("the cache object {hash} for {} is corrupt: its content no longer matches its name (it is no longer served from the cache {})", path.display(), cache.display())]
    CorruptObject {
        hash: Hash,
        path: PathBuf,
        cache: PathBuf,
    },
    #[error("{} was edited in place through its link to the cache object {hash}, which changed with it: that object is set aside, no longer served from the cache {}", crate::paths::quoted(path), cache.display())]
    EditedInPlace {
        hash: Hash,
        path: PathBuf,
        cache: PathBuf,
    },
    #[error("checkout would overwrite or delete content that is not in the cache:\n{}", list_paths(.0))]
    WouldLoseData(Vec<PathBuf>),
    #[error("the import would overwrite or delete content that is not in the cache:\n{}", list_paths(.0))]
    ImportWouldLoseData(Vec<PathBuf>),
    #[error("no link type in cache.type {tried:?} works for {}", path.display())]
    NoLinkType {
        tried: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot use the state database {}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cache.dir is set ({}): other repositories may share this cache, and gc sees only this one's pointer files", .0.display())]
    SharedCache(PathBuf),
    #[error("{count} of {} could not be completed (see the errors above)", if *total == 1 { "1 out".to_owned() } else { format!("{total} outs") })]
    Incomplete { count: usize, total: usize },
    #[error("the command did not complete: {} (see above)", if *count == 1 { "1 error".to_owned() } else { format!("{count} errors") })]
    Errors { count: usize },
    #[error("{} of the cache {} {} corrupt; set aside, no longer served:\n{list}", if *count == 1 { "1 object".to_owned() } else { format!("{count} objects") }, cache.display(), if *count == 1 { "is" } else { "are" })]
    CorruptFound {
        count: usize,
        cache: PathBuf,
        list: String,
    },
    #[error("{} in the packs {}; not served:\n{list}", if *count == 1 { "1 record is damaged".to_owned() } else { format!("{count} records are damaged") }, if *count == 1 { "and was dropped" } else { "and were dropped" })]
    DamagedPacks { count: usize, list: String },
    #[error("{}: {}", crate::paths::quoted(archive), match entry {
        Some(e) => format!("entry {}: {reason}", entry_shown(e)),
        None => reason.clone(),
    })]
    BadArchive {
        archive: PathBuf,
        entry: Option<String>,
        reason: String,
    },
    #[error("{count} more files of the out were not made: {reason}")]
    NotMade { count: usize, reason: &'static str },
    #[error("{} exists and is not the out of this archive", crate::paths::quoted(.0))]
    DestinationExists(PathBuf),
    #[error("cannot import into {}: it {} the tracked out {}", crate::paths::quoted(path), if *inside { "is inside" } else { "holds" }, crate::paths::quoted(out))]
    ImportOverlapsOut {
        path: PathBuf,
        out: PathBuf,
        /// Whether DEST is inside the out (else it holds it).
        inside: bool,
    },
    #[error("{0} is not set")]
    ConfigUnset(String),
    #[error("there is no remote named {name:?}{}", if known.is_empty() { "; none is configured".to_owned() } else { format!(" (configured: {})", known.join(", ")) })]
    UnknownRemote { name: String, known: Vec<String> },
    #[error("no remote given: pass -r NAME or set core.remote{}", if known.is_empty() { String::new() } else { format!(" (configured: {})", known.join(", ")) })]
    NoDefaultRemote { known: Vec<String> },
    #[error("a remote named {0:?} exists already")]
    RemoteExists(String),
    #[error("bad remote URL {url:?}: {reason}")]
    BadRemoteUrl { url: String, reason: String },
    #[error("cannot {what}: {message}")]
    Git { what: String, message: String },
    #[error("unknown revision {rev:?}: {message}")]
    BadRevision { rev: String, message: String },
    #[error("{} is not in a git repository: {what} needs git history", .path.display())]
    NotAGitRepository { path: PathBuf, what: &'static str },
    #[error("{out} is not an out in {rev}")]
    NotInRevision { out: String, rev: String },
    #[error("{} exists", crate::paths::quoted(.0))]
    GetDestinationExists(PathBuf),
    #[error("cannot make {}: {reason}", crate::paths::quoted(path))]
    BadDestination { path: PathBuf, reason: &'static str },
    #[error("ambiguous argument {0:?}: both a revision and a path")]
    AmbiguousArgument(String),
    #[error("ambiguous argument {0:?}: unknown revision or path not in the working tree")]
    UnknownRevisionOrPath(String),
    #[error(
        "{rev:?} is beyond the history of this shallow clone: the commits it names were not fetched"
    )]
    ShallowHistory { rev: String },
    #[error("remote {remote}: {message}")]
    Remote {
        remote: String,
        problem: RemoteProblem,
        message: String,
    },
}

/// The `what` of `NotAGitRepository` for gc told to keep git revisions.
pub const GC_OF_HISTORY: &str = "keeping what git revisions reference";

/// What went wrong with a remote, for the hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteProblem {
    NoCredentials,
    AccessDenied,
    BucketMissing,
    FolderMissing,
    /// A folder remote's path is a file.
    NotAFolder,
    /// A folder remote on a read-only file system.
    ReadOnly,
    /// A folder remote this user may not write (or read).
    PermissionDenied,
    /// A folder remote whose disk is full.
    Full,
    Unreachable,
    Failed,
    ObjectMissing,
    ObjectCorrupt,
}

fn remote_hint(remote: &str, problem: RemoteProblem) -> Option<String> {
    Some(match problem {
        RemoteProblem::NoCredentials => format!(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials with `bale config remote.{remote}.profile PROFILE`"
        ),
        RemoteProblem::AccessDenied => "check the credentials (the AWS_* variables or the profile) and that they may list, read and write the bucket".into(),
        RemoteProblem::BucketMissing => format!(
            "create the bucket, or fix the URL with `bale config remote.{remote}.url s3://BUCKET/PREFIX`"
        ),
        RemoteProblem::FolderMissing => format!(
            "mount or create the folder, or fix the URL with `bale config remote.{remote}.url PATH`"
        ),
        RemoteProblem::NotAFolder => format!(
            "move the file away, or point the remote at a folder with `bale config remote.{remote}.url PATH`"
        ),
        RemoteProblem::ReadOnly => format!(
            "remount that file system read-write, or point the remote at a writable folder with `bale config remote.{remote}.url PATH`"
        ),
        RemoteProblem::PermissionDenied => format!(
            "give this user access to the folder (`ls -ld` shows its owner and mode), or point the remote at another folder with `bale config remote.{remote}.url PATH`"
        ),
        RemoteProblem::Full => "free some space on that disk, then run the command again (what arrived is not moved again)".into(),
        RemoteProblem::Unreachable => format!(
            "check the network and remote.{remote}.endpoint, then run the command again (a push or fetch resumes: what arrived is not moved again)"
        ),
        RemoteProblem::Failed => "run the command again (a push or fetch resumes: what arrived is not moved again)".into(),
        RemoteProblem::ObjectMissing => "push it from a repository whose cache holds it (`bale push`)".into(),
        RemoteProblem::ObjectCorrupt => "the remote's copy is damaged and was not stored; push the object again from a sound cache".into(),
    })
}

/// An archive entry's name for a message: quoted when it would not be
/// seen as a name otherwise (empty, or only `.` and `/`).
fn entry_shown(name: &str) -> String {
    if name.chars().all(|c| c == '.' || c == '/') {
        format!("{name:?}")
    } else {
        crate::paths::quoted_str(name)
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 20;
    let mut s: String = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("  {}", crate::paths::quoted(p)))
        .collect::<Vec<_>>()
        .join("\n");
    if paths.len() > SHOWN {
        s.push_str(&format!("\n  ... and {} more", paths.len() - SHOWN));
    }
    s
}

impl Error {
    /// An I/O error while doing `action` to `path`; a full disk is told
    /// apart, so that it is never reported as something else.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        // ENOSPC, EDQUOT: as `fsutil::is_no_space`, which builds on this.
        if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            Error::NoSpace {
                action,
                path,
                source,
            }
        } else {
            Error::Io {
                action,
                path,
                source,
            }
        }
    }

    /// What the user can run about this error, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Io { path, source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                Some(format!(
                    "bale may not use {0}: give it back its permissions (`chmod u+rwX {0}`), or run bale as its owner",
                    crate::paths::quoted(path)
                ))
            }
            Error::NotARepository(_) => Some("run `bale init` at the top of your project".into()),
            Error::AlreadyInitialized(_) => {
                Some("use `bale init --force` to reset the configuration".into())
            }
            Error::NotTracked(p) => Some(format!("track it with `bale add {}`", p.display())),
            Error::WouldLoseData(_) => Some(
                "record the changes with `bale commit`, or discard them with `bale checkout --force`"
                    .into(),
            ),
            Error::ImportWouldLoseData(_) => Some(
                "record the changes with `bale commit` first, or discard them with `bale import --force`"
                    .into(),
            ),
            Error::Locked(_) => {
                Some("wait for the other bale command to finish, then run this one again".into())
            }
            Error::MissingObject { remote, .. } | Error::ObjectsMissing { remote, .. } => {
                Some(match remote {
                    Some(r) => format!(
                        "run `bale fetch` to get it from the remote {r} (`bale pull` fetches, then checks out)"
                    ),
                    None => "run `bale fetch -r NAME` if a remote holds it (`bale remote list`); otherwise restore it from a copy of the cache, or `bale add` the data again".into(),
                })
            }
            Error::MissingOnRemote { remote, .. } => Some(format!(
                "the remote {remote} lacks it too, or holds a damaged copy (see the errors of the fetch above): push it there from a repository whose cache holds it (`bale push -r {remote}`)"
            )),
            Error::UnknownRemote { known, .. } if known.is_empty() => Some(
                "add one with `bale remote add NAME URL` (`--default` makes it core.remote)".into(),
            ),
            Error::UnknownRemote { .. } => {
                Some("name one of the configured remotes (`bale remote list` shows them)".into())
            }
            Error::NoDefaultRemote { known } if known.is_empty() => Some(
                "add one with `bale remote add NAME URL --default` (the default is core.remote)".into(),
            ),
            Error::NoDefaultRemote { known } => Some(format!(
                "name one with -r NAME, or make one the default with `bale config core.remote {}`",
                known.first().map_or("NAME", String::as_str)
            )),
            Error::RemoteExists(name) => Some(format!(
                "remove it first with `bale remote remove {name}`, or choose another name"
            )),
            Error::Remote { remote, problem, .. } => remote_hint(remote, *problem),
            Error::DamagedPacks { .. } => Some(
                "get those objects back (`bale fetch`, or add the data again), or let `bale gc` rewrite the packs without them; `bale fsck` names them until then".into(),
            ),
            Error::CorruptFound { .. } => Some(
                "they are set aside and no longer served: get them back with `bale fetch` (from a remote) or by adding the data again; `bale gc` forgets those nothing references".into(),
            ),
            Error::EditedInPlace { .. } => Some(
                "record the edit with `bale commit`; the previous version is lost unless a remote holds it (`bale fetch`, then `bale checkout --force`)".into(),
            ),
            Error::CorruptObject { .. } => Some(
                "the object is set aside: get it back with `bale fetch` (from a remote) or by adding its data again, then run the command again; `bale fsck` checks the whole cache".into(),
            ),
            Error::BadArchive { .. } => Some(
                "nothing was added to the workspace; what was read before the error stays in the cache, so a run on a fixed archive reuses it (`bale gc` drops it otherwise)".into(),
            ),
            Error::DestinationExists(p) => Some(format!(
                "import with --force to replace {} with the archive's content, or name another destination",
                crate::paths::quoted(p)
            )),
            Error::NoLinkType { tried, .. } => Some(if tried.split(',').any(|t| t == "copy") {
                "check that the cache's file system can be written".into()
            } else {
                format!(
                    "end the chain with a type that works everywhere: `bale config cache.type {tried},copy`"
                )
            }),
            Error::ImportOverlapsOut { out, inside, .. } => Some(if *inside {
                format!(
                    "name a destination outside {} (`bale import ARCHIVE DEST`)",
                    crate::paths::quoted(out)
                )
            } else {
                format!(
                    "name another destination (`bale import ARCHIVE DEST`), or stop tracking {} first (delete its .bale file)",
                    crate::paths::quoted(out)
                )
            }),
            Error::NoSpace { .. } => {
                Some("free some space on that disk (`bale gc` drops unreferenced objects), then run the command again".into())
            }
            Error::HoldsOut { out, .. } => Some(format!(
                "add the folders beside {} separately, or stop tracking it first (delete {}.bale)",
                out.display(),
                out.display()
            )),
            Error::OutsOverlap { pointer, .. } => Some(format!(
                "fix or remove {} (each out has one pointer file, and no out holds another); `git log -p` shows how it changed",
                crate::paths::quoted(pointer)
            )),
            Error::ClaimedTwice { .. } => Some(
                "keep one of them: remove the other pointer file, or fix its `path`".into(),
            ),
            Error::SymlinkOnPath { symlink, .. } => Some(format!(
                "use the real path instead of {}",
                symlink.display()
            )),
            Error::Untrackable { fix, .. } => Some((*fix).to_owned()),
            Error::BadNames(_) => Some("rename them, or move them out of the folder".into()),
            Error::MissingForRevision { rev, out, .. } => Some(format!(
                "`bale fetch` gets what the workspace's pointer files name: fetch {rev}'s with `git checkout {rev} -- {out}.bale && bale fetch {out}; git checkout HEAD -- {out}.bale`"
            )),
            Error::CacheMissing(_) => Some(
                "mount or restore it, or point `cache.dir` at the right folder (`bale config cache.dir PATH`)".into(),
            ),
            Error::WholeOutsOnly { out, .. } => Some(format!(
                "name the whole out, {}; `bale status` and `bale diff` take a path inside an out",
                out.display()
            )),
            Error::InsideOut { out, .. } => Some(format!(
                "re-add the whole out with `bale add {}`",
                out.display()
            )),
            Error::SharedCache(_) => Some(
                "run `bale gc --dry-run` to see what would go; `bale gc --force` if no other repository uses this cache".into(),
            ),
            Error::NotInRevision { rev, .. } => Some(format!(
                "name the out by its path in the workspace (as `git ls-tree -r {rev}` lists its pointer file, without .bale)"
            )),
            Error::GetDestinationExists(_) => {
                Some("pass --force to replace it, or name another folder with -o DIR".into())
            }
            Error::BadDestination { .. } => {
                Some("name a folder outside every out with -o DIR".into())
            }
            Error::AmbiguousArgument(a) => Some(format!(
                "`bale diff -- {a}` names the target; `refs/heads/{a}` or `refs/tags/{a}` names the revision"
            )),
            Error::UnknownRevisionOrPath(_) => Some(
                "name a revision (`git log --oneline` lists commits) or a path in the workspace; `bale diff REV -- PATH` tells them apart".into(),
            ),
            Error::ShallowHistory { .. } => Some(
                "fetch the rest of the history with `git fetch --unshallow`, then run the command again".into(),
            ),
            Error::BadRevision { .. } => Some(
                "name a branch, a tag or a commit (anything `git rev-parse` accepts), e.g. `main`, `v1.0`, `HEAD~2`".into(),
            ),
            Error::NotAGitRepository { what, .. } if *what == GC_OF_HISTORY => Some(
                "commit the pointer files to git first (`git init`); `bale gc --workspace` (or `bale gc` with no option) keeps what the workspace references without git".into(),
            ),
            Error::PointerConflict(p) => Some(format!(
                "resolve the conflict: keep one side (`git checkout --ours {0}` or `--theirs {0}`), `git add {0}`, then `bale checkout`",
                crate::paths::quoted(p)
            )),
            Error::NotAGitRepository { .. } => Some(
                "commit the pointer files to git first (`git init`, `git add`, `git commit`), then name one of its revisions".into(),
            ),
            Error::MalformedPointer { .. } => {
                Some("fix the file by hand or restore it from git".into())
            }
            _ => None,
        }
    }
}

/// Attaches the action and path to an `io::Error`.
pub trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

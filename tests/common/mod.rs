//! Shared fixtures for the end-to-end tests: a repository in a temporary
//! folder, a runner for the real `bale` binary, and `tree()`, which lists a
//! whole file tree (kind, mode, content, link target) so that two trees can be
//! compared as text, like dud's `expected_fs.txt`.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_bale");

/// The prefix of bale's temporary files in the workspace.
pub const TEMP_PREFIX: &str = ".bale-tmp.";

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    /// `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(args: Vec<String>, out: Output) -> Run {
        let run = Run {
            args,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // A panic is a bug whatever the command and its exit code.
        assert!(!run.stderr.contains("panicked"), "bale panicked:\n{run}");
        run
    }

    /// Asserts exit 0 and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success:\n{self}");
        self
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "expected exit code {code}:\n{self}");
        self
    }

    /// Asserts exit 1 with an `error:` line on stderr and returns self.
    #[track_caller]
    pub fn fails(self) -> Run {
        let run = self.code(1);
        assert!(
            run.stderr.lines().any(|l| l.starts_with("error: ")),
            "expected an `error:` line on stderr:\n{run}"
        );
        run
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ bale {}\n[exit {:?}]\n--- stdout\n{}--- stderr\n{}---",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `bale args...` in `dir`.
pub fn bale_in(dir: &Path, args: &[&str]) -> Run {
    let out = command_in(dir, args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    Run::from_output(args.iter().map(|s| s.to_string()).collect(), out)
}

/// A `bale args...` command in `dir`, for tests that spawn it themselves.
pub fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for a spawned bale and collects what it printed.
pub fn wait(child: Child, args: &[&str]) -> Run {
    let out = child.wait_with_output().expect("wait for bale");
    Run::from_output(args.iter().map(|s| s.to_string()).collect(), out)
}

/// A bale repository in a fresh temporary folder (removed on drop).
pub struct Repo {
    _tmp: tempfile::TempDir,
    /// The repository root (holds `.bale/`).
    pub root: PathBuf,
}

impl Repo {
    /// `bale init` in a new temporary folder.
    pub fn new() -> Repo {
        Repo::new_in(&std::env::temp_dir())
    }

    /// `bale init` in a new folder under `base`. The root is a subfolder of
    /// the temporary folder, so tests can check that nothing is written
    /// beside the repository.
    pub fn new_in(base: &Path) -> Repo {
        let tmp = tempfile::Builder::new()
            .prefix("bale-test.")
            .tempdir_in(base)
            .expect("create a temporary folder");
        let root = tmp.path().join("repo");
        fs::create_dir(&root).unwrap();
        bale_in(&root, &["init", "-q"]).ok();
        Repo { _tmp: tmp, root }
    }

    /// The folder holding the repository root (for "outside" fixtures).
    pub fn outside(&self) -> PathBuf {
        self.root.parent().unwrap().to_path_buf()
    }

    /// `tree()` of the folder holding the repository, the repository left
    /// out: what a test must find unchanged when nothing may leave the root.
    pub fn outside_tree(&self) -> String {
        tree(&self.outside())
            .lines()
            .filter(|l| {
                let path = l.get(6..).unwrap_or("");
                !(path.starts_with("\"repo\"") || path.starts_with("\"repo/"))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `bale args...` at the repository root.
    pub fn bale(&self, args: &[&str]) -> Run {
        bale_in(&self.root, args)
    }

    /// Sets `cache.type`.
    pub fn cache_type(&self, t: &str) {
        self.bale(&["config", "-q", "cache.type", t]).ok();
    }

    /// Writes a file (creating its folders) with mode 0644.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        write_file(&p, content.as_ref(), 0o644);
        p
    }

    /// Writes an executable file (mode 0755).
    pub fn write_exec(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        write_file(&p, content.as_ref(), 0o755);
        p
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn read_string(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).unwrap()
    }

    /// The cache object that holds `content` (the spec's naming, computed
    /// here independently of bale: xxh3-128 as 32 lowercase hex digits).
    pub fn object_for(&self, content: &[u8]) -> PathBuf {
        self.object_path(&hash_hex(content))
    }

    pub fn object_path(&self, hex: &str) -> PathBuf {
        assert_eq!(hex.len(), 32, "{hex}");
        self.path(".bale/cache").join(&hex[..2]).join(&hex[2..])
    }

    /// Every cache object, as paths relative to the cache, sorted.
    pub fn objects(&self) -> Vec<String> {
        let cache = self.path(".bale/cache");
        let mut out = Vec::new();
        for prefix in fs::read_dir(&cache).unwrap() {
            let prefix = prefix.unwrap();
            let name = prefix.file_name().into_string().unwrap();
            if name.len() != 2 || !prefix.file_type().unwrap().is_dir() {
                continue;
            }
            for obj in fs::read_dir(prefix.path()).unwrap() {
                let obj = obj.unwrap().file_name().into_string().unwrap();
                out.push(format!("{name}/{obj}"));
            }
        }
        out.sort();
        out
    }

    /// The pointer file `rel` parsed as YAML.
    pub fn pointer(&self, rel: &str) -> serde_yaml::Value {
        serde_yaml::from_str(&self.read_string(rel))
            .unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
    }

    /// The `hash` of the first out of the pointer file `rel`.
    pub fn pointer_hash(&self, rel: &str) -> String {
        self.pointer(rel)["outs"][0]["hash"]
            .as_str()
            .unwrap_or_else(|| panic!("no outs[0].hash in {rel}"))
            .to_owned()
    }

    /// `tree()` of a path under the root.
    pub fn tree(&self, rel: &str) -> String {
        tree(&self.path(rel))
    }
}

pub fn write_file(p: &Path, content: &[u8], mode: u32) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The name bale gives a temp file of process `pid` in `repo`, with
/// `random` (12 letters and digits) for its random part: the spec's
/// scheme, computed here independently of bale (the tag is xxh3-64 of the
/// repository's key, then `<pid>.<random>`, as 8 base-62 digits).
pub fn temp_name(repo: &Repo, pid: u32, random: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let hex = repo.read_string(".bale/temp-key");
    let key = u128::from_str_radix(hex.trim(), 16).unwrap().to_be_bytes();
    let stem = format!("{pid}.{random}");
    let mut keyed = key.to_vec();
    keyed.extend_from_slice(stem.as_bytes());
    let mut h = xxhash_rust::xxh3::xxh3_64(&keyed);
    let tag: String = (0..8)
        .map(|_| {
            let c = ALPHABET[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect();
    format!("{TEMP_PREFIX}{stem}.{tag}")
}

/// xxh3-128 of `content` as 32 lowercase hex digits.
pub fn hash_hex(content: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(content))
}

pub fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

pub fn ino(p: &Path) -> u64 {
    meta(p).ino()
}

/// Permission bits (`mode & 0o7777`), without following a symlink.
pub fn mode(p: &Path) -> u32 {
    meta(p).mode() & 0o7777
}

/// Lists every entry under `dir` (the root itself excluded, `.bale` folders
/// skipped), sorted by path, one line each:
///
/// ```text
/// d 755 sub
/// f 644 sub/a.txt "content"
/// f 755 sub/run.sh "#!/bin/sh\n"
/// l     sub/link -> /target
/// ```
///
/// Short UTF-8 content is shown escaped; longer content as its size and hash.
/// When `dir` is not a folder, the one line describes it (with path `.`).
pub fn tree(dir: &Path) -> String {
    let mut out = String::new();
    let m = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(_) => return "<missing>\n".into(),
    };
    if m.is_dir() {
        tree_into(dir, "", &mut out);
    } else {
        entry_line(dir, ".", &m, &mut out);
    }
    out
}

fn tree_into(dir: &Path, rel: &str, out: &mut String) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        if name == OsStr::new(".bale") {
            continue;
        }
        let name = name.to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let p = dir.join(&name);
        let m = meta(&p);
        entry_line(&p, &rel, &m, out);
        if m.is_dir() {
            tree_into(&p, &rel, out);
        }
    }
}

fn entry_line(p: &Path, rel: &str, m: &fs::Metadata, out: &mut String) {
    let ft = m.file_type();
    let perm = m.mode() & 0o7777;
    if ft.is_dir() {
        let _ = writeln!(out, "d {perm:03o} {rel:?}");
    } else if ft.is_symlink() {
        let target = fs::read_link(p).unwrap();
        let _ = writeln!(out, "l     {rel:?} -> {}", target.display());
    } else if ft.is_file() {
        let content = fs::read(p).unwrap();
        let _ = writeln!(out, "f {perm:03o} {rel:?} {}", show(&content));
    } else {
        let _ = writeln!(out, "? {perm:03o} {rel:?}");
    }
}

fn show(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(s) if s.len() <= 80 => format!("{s:?}"),
        _ => format!("<{} bytes, xxh3 {}>", content.len(), hash_hex(content)),
    }
}

/// Every path under `dir` whose name starts with bale's temp prefix (the
/// `.bale` folder skipped).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name();
            if name == OsStr::new(".bale") {
                continue;
            }
            if name.to_string_lossy().starts_with(TEMP_PREFIX) {
                found.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    found
}

/// `touch -d` equivalent: sets a file's mtime (and atime) to `secs` since the
/// epoch, without following symlinks.
pub fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// A tree with the kinds of names that break naive tools: spaces, non-ASCII,
/// an empty file, an executable, a hidden file, nested folders, a name that
/// looks like a pointer file, a backslash and a leading dash.
pub fn odd_tree(repo: &Repo, out: &str) {
    let p = |rel: &str| format!("{out}/{rel}");
    repo.write(&p("plain.txt"), "plain\n");
    repo.write(&p("with space/file name.txt"), "spaces\n");
    repo.write(&p("non-ascii/été/日本語.txt"), "ünïcödé ✓\n");
    repo.write(&p("non-ascii/été/Ωmega"), "omega");
    repo.write(&p("empty"), "");
    repo.write_exec(&p("bin/run.sh"), "#!/bin/sh\necho hello\n");
    repo.write(&p(".hidden"), "hidden\n");
    repo.write(&p("deep/a/b/c/d/e/leaf"), "leaf\n");
    repo.write(&p("looks-like.bale"), "not a pointer\n");
    repo.write(&p("back\\slash"), "backslash\n");
    repo.write(&p("-dash"), "dash\n");
    repo.write(&p("new\nline"), "newline in the name\n");
    repo.write(&p("same-1"), "duplicate content\n");
    repo.write(&p("same-2"), "duplicate content\n");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    repo.write(&p("deep/big.bin"), big);
}

impl Run {
    /// The `hint:` lines of stderr.
    pub fn hints(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("hint:"))
            .collect()
    }

    /// Asserts a `hint:` line on stderr that names `bale checkout --relink`.
    #[track_caller]
    pub fn assert_relink_hint(&self) -> &Run {
        assert!(
            self.hints()
                .iter()
                .any(|h| h.contains("bale checkout --relink")),
            "expected a `hint:` naming `bale checkout --relink` on stderr:\n{self}"
        );
        self
    }

    /// Asserts that stderr holds no `hint:` line.
    #[track_caller]
    pub fn assert_no_hint(&self) -> &Run {
        assert!(self.hints().is_empty(), "expected no hint:\n{self}");
        self
    }
}

impl Repo {
    /// Lets the file system clock move past every file written so far, then
    /// runs `bale checkout`, so that the snapshot in the state DB is not racy
    /// (an mtime equal to the snapshot's clock is never trusted) and the next
    /// command on an unchanged tree can take the unchanged-skip.
    pub fn settle(&self) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.bale(&["checkout", "-q"]).ok();
    }

    /// The cache object named by the first out of the pointer file `rel`
    /// (for a folder out, its manifest).
    pub fn pointer_object(&self, rel: &str) -> PathBuf {
        self.object_path(&self.pointer_hash(rel))
    }
}

/// The stat fields that a write, a rename into place, a chmod or a new link
/// changes: what a command that must not touch a file must leave alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub is_dir: bool,
}

/// `Stamp` of a path (lstat: a symlink's own).
pub fn stamp(p: &Path) -> Stamp {
    let m = meta(p);
    Stamp {
        ino: m.ino(),
        mode: m.mode() & 0o7777,
        nlink: m.nlink(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        is_dir: m.is_dir(),
    }
}

/// `stamp()` of `dir` itself (as ".") and of every entry under it, `.bale`
/// folders skipped, by relative path.
pub fn stamps(dir: &Path) -> std::collections::BTreeMap<String, Stamp> {
    let mut out = std::collections::BTreeMap::new();
    out.insert(".".to_owned(), stamp(dir));
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        if !meta(&d).is_dir() {
            continue;
        }
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if name == OsStr::new(".bale") {
                continue;
            }
            let name = name.to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let st = stamp(&e.path());
            if st.is_dir {
                stack.push((e.path(), rel.clone()));
            }
            out.insert(rel, st);
        }
    }
    out
}

/// The entries whose stamp differs between two `stamps()`, with both sides
/// (`None`: absent), for assertion messages.
pub fn stamp_changes(
    before: &std::collections::BTreeMap<String, Stamp>,
    after: &std::collections::BTreeMap<String, Stamp>,
) -> Vec<(String, Option<Stamp>, Option<Stamp>)> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| (k.clone(), before.get(k).cloned(), after.get(k).cloned()))
        .collect()
}

/// The reason given by every test that needs a real XFS mount.
pub const NEEDS_XFS: &str =
    "needs BALE_TEST_XFS (a folder on an XFS mount with reflink=1), set by .ci/run";

/// The folder named by `BALE_TEST_XFS` (on an XFS mount with reflink=1).
/// The tests that need it are `#[ignore]`d: run without the variable (by
/// `--include-ignored`), they fail rather than pass without testing.
pub fn xfs_base() -> PathBuf {
    match std::env::var_os("BALE_TEST_XFS") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{NEEDS_XFS}: set it to a folder on such a mount to run this test"),
    }
}

/// The extents of a file as `filefrag -v` lists them: (logical, physical)
/// ranges and flags, after syncing the file.
pub fn extents(p: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("filefrag")
        .args(["-s", "-v"])
        .arg(p)
        .output()
        .expect("run filefrag (e2fsprogs)");
    assert!(out.status.success(), "filefrag {}: {out:?}", p.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            t.split(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (
                squash(f[1]),
                squash(f[2]),
                f.last().map(|s| s.trim().to_owned()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Whether `p` shares all its (non-empty list of) extents with `object`:
/// the same physical ranges, each flagged `shared`.
pub fn shares_extents(p: &Path, object: &Path) -> bool {
    let (ours, theirs) = (extents(p), extents(object));
    let physical = |e: &[(String, String, String)]| -> Vec<(String, String)> {
        e.iter().map(|(l, p, _)| (l.clone(), p.clone())).collect()
    };
    !ours.is_empty()
        && physical(&ours) == physical(&theirs)
        && ours.iter().all(|(_, _, flags)| flags.contains("shared"))
}

/// Asserts what the link type `t` ("reflink", "hardlink", "symlink" or
/// "copy") makes of the workspace file `rel` holding `content`:
/// - hardlink: the cache object itself (same inode, 2+ links, mode 0444);
/// - symlink: an absolute link to the object's path inside the cache;
/// - copy: a file of its own (own inode, one link, mode 0644, writable);
/// - reflink: like copy, sharing every extent with the object.
///
/// An executable file is always a private 0755 file (a reflink when `t` is
/// reflink, a copy otherwise), whatever `t` is.
#[track_caller]
pub fn assert_linked_as(repo: &Repo, rel: &str, content: &[u8], t: &str, executable: bool) {
    let p = repo.path(rel);
    let obj = repo.object_for(content);
    let m = meta(&p);
    let t = if executable && t != "reflink" {
        "copy"
    } else {
        t
    };
    let what = format!(
        "{rel} (expected {t}{})",
        if executable { ", executable" } else { "" }
    );
    match t {
        "hardlink" => {
            assert!(m.file_type().is_file(), "{what}: not a regular file");
            assert_eq!(m.ino(), ino(&obj), "{what}: not the cache object");
            assert!(m.nlink() >= 2, "{what}: nlink {}", m.nlink());
            assert_eq!(m.mode() & 0o7777, 0o444, "{what}: mode");
        }
        "symlink" => {
            assert!(m.file_type().is_symlink(), "{what}: not a symlink");
            let target = fs::read_link(&p).unwrap();
            assert!(
                target.starts_with(repo.path(".bale/cache")),
                "{what}: -> {target:?} is not inside the cache"
            );
            assert_eq!(target, obj, "{what}: -> {target:?}");
        }
        "copy" | "reflink" => {
            assert!(m.file_type().is_file(), "{what}: not a regular file");
            assert_ne!(m.ino(), ino(&obj), "{what}: shares the object's inode");
            assert_eq!(m.nlink(), 1, "{what}: nlink");
            let want = if executable { 0o755 } else { 0o644 };
            assert_eq!(m.mode() & 0o7777, want, "{what}: mode");
            assert_ne!(m.mode() & 0o200, 0, "{what}: not writable");
            if t == "reflink" {
                assert!(
                    shares_extents(&p, &obj),
                    "{what}: does not share its extents with the cache object:\n{:?}\n{:?}",
                    extents(&p),
                    extents(&obj)
                );
            }
        }
        other => panic!("unknown link type {other}"),
    }
    assert_eq!(fs::read(&p).unwrap(), content, "{what}: content");
    assert_eq!(mode(&obj), 0o444, "{}: object mode", obj.display());
    assert_eq!(
        fs::read(&obj).unwrap(),
        content,
        "{}: object",
        obj.display()
    );
}

// ------------------------------------------------- packs, archives, imports

/// A file expected in a tracked folder: its path relative to the out, its
/// content, and whether it is executable.
#[derive(Clone, Debug)]
pub struct Expect {
    pub rel: String,
    pub content: Vec<u8>,
    pub exec: bool,
}

impl Expect {
    pub fn new(rel: &str, content: impl AsRef<[u8]>, exec: bool) -> Expect {
        Expect {
            rel: rel.to_owned(),
            content: content.as_ref().to_vec(),
            exec,
        }
    }
}

/// Content that does not repeat and does not compress, different for every
/// `seed`.
pub fn noise_seeded(seed: u64, len: usize) -> Vec<u8> {
    let mut x: u64 = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    if x == 0 {
        x = 1;
    }
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `n` small files of distinct, incompressible content (64 to ~2 KiB) in 20
/// folders, one in 97 executable; `seed` makes the content differ between
/// sets.
pub fn many_small(n: usize, seed: u64) -> Vec<Expect> {
    (0..n)
        .map(|i| {
            let len = 64 + (i * 37) % 2000;
            Expect {
                rel: format!("d{:02}/f{i:05}", i % 20),
                content: noise_seeded(seed.wrapping_mul(1_000_003).wrapping_add(i as u64), len),
                exec: i % 97 == 3,
            }
        })
        .collect()
}

/// Writes `files` under `dir` (0644, or 0755 when executable).
pub fn write_expected(dir: &Path, files: &[Expect]) {
    for f in files {
        write_file(
            &dir.join(&f.rel),
            &f.content,
            if f.exec { 0o755 } else { 0o644 },
        );
    }
}

/// `tree()` of `files` as a copy checkout of them must look.
pub fn expected_tree(files: &[Expect]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("expected");
    fs::create_dir(&dir).unwrap();
    write_expected(&dir, files);
    tree(&dir)
}

/// Asserts that the folder `out` (relative to the root) holds exactly
/// `files`, whatever the link type: the same set of paths (files and
/// symlinks; folders implied), each with its content (read through a
/// symlink) and executable bit.
#[track_caller]
pub fn assert_out_files(repo: &Repo, out: &str, files: &[Expect], when: &str) {
    let root = repo.path(out);
    let mut found = std::collections::BTreeSet::new();
    let mut stack = vec![(root.clone(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let rd = fs::read_dir(&d).unwrap_or_else(|e| panic!("{when}: read {}: {e}", d.display()));
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().unwrap().is_dir() {
                stack.push((e.path(), rel));
            } else {
                found.insert(rel);
            }
        }
    }
    let want: std::collections::BTreeSet<String> = files.iter().map(|f| f.rel.clone()).collect();
    let missing: Vec<&String> = want.difference(&found).collect();
    let extra: Vec<&String> = found.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{when}: {out} does not hold the expected files: missing {missing:?}, unexpected {extra:?}"
    );
    for f in files {
        let p = root.join(&f.rel);
        let content = fs::read(&p).unwrap_or_else(|e| panic!("{when}: read {out}/{}: {e}", f.rel));
        assert!(
            content == f.content,
            "{when}: {out}/{} has the wrong content ({} bytes, xxh3 {}; expected {} bytes, xxh3 {})",
            f.rel,
            content.len(),
            hash_hex(&content),
            f.content.len(),
            hash_hex(&f.content)
        );
        let m = fs::metadata(&p).unwrap();
        assert_eq!(
            m.mode() & 0o111 != 0,
            f.exec,
            "{when}: {out}/{}: executable bit (mode {:o})",
            f.rel,
            m.mode() & 0o7777
        );
    }
}

/// The `<cache>/packs` folder.
pub fn packs_dir(repo: &Repo) -> PathBuf {
    repo.path(".bale/cache/packs")
}

/// The `*.pack` files of the cache, sorted (none when there is no packs
/// folder).
pub fn pack_files(repo: &Repo) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(packs_dir(repo)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("pack")))
        .collect();
    out.sort();
    out
}

/// The total size of the pack files.
pub fn pack_bytes(repo: &Repo) -> u64 {
    pack_files(repo).iter().map(|p| meta(p).len()).sum()
}

/// Whether some pack file holds the bytes `needle`.
pub fn packs_contain(repo: &Repo, needle: &[u8]) -> bool {
    assert!(needle.len() >= 16, "too short a needle to be meaningful");
    pack_files(repo).iter().any(|p| {
        let bytes = fs::read(p).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

/// The loose cache objects (as `Repo::objects` names them) whose content
/// is a manifest.
pub fn manifest_objects(repo: &Repo) -> Vec<String> {
    repo.objects()
        .into_iter()
        .filter(|o| {
            let f = fs::File::open(repo.path(".bale/cache").join(o)).unwrap();
            let mut head = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, 16), &mut head).unwrap();
            head == b"bale-manifest 1\n"
        })
        .collect()
}

/// Whether `content` is stored as a loose object.
pub fn is_loose(repo: &Repo, content: &[u8]) -> bool {
    repo.object_for(content).is_file()
}

/// The `hash` of the snapshot that `.bale/state.db` holds for the out `out`
/// (its path relative to the root), as 32 hex digits.
pub fn snapshot_hash(repo: &Repo, out: &str) -> Option<String> {
    let conn = rusqlite::Connection::open_with_flags(
        repo.path(".bale/state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    let hash: Vec<u8> = conn
        .query_row("SELECT hash FROM snapshots WHERE out = ?1", [out], |r| {
            r.get(0)
        })
        .ok()?;
    Some(hash.iter().map(|b| format!("{b:02x}")).collect())
}

/// Rewrites bytes of a file in place (same inode), even a read-only one,
/// and puts its mode back.
pub fn patch_in_place(p: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let before = mode(p);
    fs::set_permissions(p, fs::Permissions::from_mode(before | 0o200)).unwrap();
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(before)).unwrap();
}

/// Appends bytes to a file, even a read-only one, and puts its mode back.
pub fn append_to(p: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    let before = mode(p);
    fs::set_permissions(p, fs::Permissions::from_mode(before | 0o200)).unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(before)).unwrap();
}

/// Whether `text` holds `word` as a whole word.
pub fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
        .any(|w| w == word)
}

/// Runs `git args...` in `dir`, with a fixed identity and no user or system
/// configuration; asserts success and returns stdout.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git_in` at the repository root.
pub fn git(repo: &Repo, args: &[&str]) -> String {
    git_in(&repo.root, args)
}

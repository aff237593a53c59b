//! Remotes end to end: push, fetch, pull and `status --remote` against a
//! folder and against a real S3 server (`s3s-fs`, a separate process on
//! 127.0.0.1), with a TCP proxy in front of the server to make it fail the
//! way networks do (503s for a while, a connection cut mid-transfer).
//!
//! The S3 tests need the `s3s-fs` binary, named by `BALE_TEST_S3S` (set by
//! .ci/run); they are `#[ignore]`d in a plain `cargo test`, and fail, not
//! pass, when run without it.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::{fs, thread};

use common::{Repo, Run, command_in, wait};

const NEEDS_S3S: &str = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run";
const KEY_ID: &str = "bale-test-key";
const SECRET: &str = "s3cr3t-that-must-never-be-printed";
const BUCKET: &str = "bale-bucket";

fn s3s_bin() -> PathBuf {
    match std::env::var_os("BALE_TEST_S3S") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{NEEDS_S3S}: set it to run this test"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on {port}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A real S3 server: s3s-fs serving a folder, on a port of its own.
struct S3Server {
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl S3Server {
    fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut s = S3Server {
            root,
            port: free_port(),
            child: None,
        };
        s.restart();
        s
    }

    fn restart(&mut self) {
        let child = Command::new(s3s_bin())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", KEY_ID, "--secret-key", SECRET])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The file holding `key` of the bucket.
    fn file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a server. It can answer the first requests of
/// new connections with 503, and stop passing bytes once a budget in
/// either direction is spent (a transfer hangs mid-way), then cut every
/// connection (the server is gone).
struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: u16,
    fail_next: AtomicUsize,
    failed: AtomicUsize,
    up_budget: AtomicI64,
    down_budget: AtomicI64,
    up: AtomicU64,
    down: AtomicU64,
    cut: AtomicBool,
    generation: AtomicU64,
}

impl Proxy {
    fn new(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState {
            upstream,
            fail_next: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            up_budget: AtomicI64::new(i64::MAX),
            down_budget: AtomicI64::new(i64::MAX),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        });
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(client, &st));
            }
        });
        Proxy { port, state }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection, and refuses new ones until `heal`.
    fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.state.up_budget.store(i64::MAX, Ordering::SeqCst);
        self.state.down_budget.store(i64::MAX, Ordering::SeqCst);
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

fn serve(mut client: TcpStream, st: &Arc<ProxyState>) {
    if st.cut.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if st
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        answer_503(&mut client);
        st.failed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", st.upstream)) else {
        return;
    };
    let generation = st.generation.load(Ordering::SeqCst);
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let st2 = st.clone();
    let up = thread::spawn(move || pipe(client, server, &st2, true, generation));
    pipe(s2, c2, st, false, generation);
    let _ = up.join();
}

/// Reads one request (head and body, by Content-Length) and answers 503.
fn answer_503(client: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut client.take(len), &mut std::io::sink());
    let _ = client.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let _ = client.shutdown(Shutdown::Both);
}

fn pipe(mut from: TcpStream, mut to: TcpStream, st: &ProxyState, upward: bool, generation: u64) {
    let (budget, count) = if upward {
        (&st.up_budget, &st.up)
    } else {
        (&st.down_budget, &st.down)
    };
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 << 10];
    let gone =
        || st.cut.load(Ordering::SeqCst) || st.generation.load(Ordering::SeqCst) != generation;
    loop {
        if gone() {
            break;
        }
        if budget.load(Ordering::SeqCst) <= 0 {
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        budget.fetch_sub(n as i64, Ordering::SeqCst);
        count.fetch_add(n as u64, Ordering::SeqCst);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Where a test's remote is.
enum Backend {
    Folder(tempfile::TempDir),
    S3(S3Server, Proxy),
}

impl Backend {
    fn folder() -> Backend {
        Backend::Folder(tempfile::tempdir().unwrap())
    }

    fn s3() -> Backend {
        let server = S3Server::start();
        let proxy = Proxy::new(server.port);
        Backend::S3(server, proxy)
    }

    /// Makes `origin`, the default remote of `repo`, point here.
    fn attach(&self, repo: &Repo) {
        match self {
            Backend::Folder(d) => {
                let url = d.path().join("store");
                fs::create_dir_all(&url).unwrap();
                repo.bale(&[
                    "remote",
                    "add",
                    "-q",
                    "origin",
                    url.to_str().unwrap(),
                    "--default",
                ])
                .ok();
            }
            Backend::S3(_, proxy) => {
                repo.bale(&[
                    "remote",
                    "add",
                    "-q",
                    "origin",
                    "s3://bale-bucket/team/data",
                    "--default",
                    "--endpoint",
                    &proxy.endpoint(),
                ])
                .ok();
                repo.bale(&["config", "-q", "remote.origin.retries", "2"])
                    .ok();
            }
        }
    }

    /// The file that holds `key` (relative to the remote's root).
    fn file(&self, key: &str) -> PathBuf {
        match self {
            Backend::Folder(d) => d.path().join("store").join(key),
            Backend::S3(s, _) => s.file(&format!("team/data/{key}")),
        }
    }

    /// Every key under `prefix`, sorted.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let root = self.file("");
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(root.join(prefix))
            .into_iter()
            .flatten()
        {
            if e.file_type().is_file() {
                let rel = e
                    .path()
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !rel.contains('#') {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }
}

/// `bale args...` in `repo`, with the test server's credentials in the
/// environment and a HOME of its own (no ~/.aws of the machine's user).
fn bale(repo: &Repo, args: &[&str]) -> Run {
    bale_env(repo, args, &[("AWS_SECRET_ACCESS_KEY", SECRET)])
}

fn with_env(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = command_in(&repo.root, args);
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", repo.outside())
        .env("AWS_ACCESS_KEY_ID", KEY_ID);
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    cmd
}

fn bale_env(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> Run {
    let child = with_env(repo, args, env).spawn().expect("run bale");
    let run = wait(child, args);
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "a secret was printed:\n{run}"
    );
    run
}

/// A small deterministic pseudo-random generator, for file contents.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// `n` files of 1-8 KiB in folders of 100 under `out`.
fn small_files(repo: &Repo, out: &str, n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        let len = 1024 + (i * 7919 % 7168) as usize;
        total += len as u64;
        repo.write(&format!("{out}/d{:03}/f{i:05}", i / 100), bytes(i, len));
    }
    total
}

/// The number after `what` in a `-v` line "N requests, X sent, Y received".
fn stat_of(run: &Run, what: &str) -> f64 {
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(" requests, "))
        .unwrap_or_else(|| panic!("no request line:\n{run}"));
    let part = line
        .split(": ")
        .nth(1)
        .unwrap()
        .split(", ")
        .find(|p| p.ends_with(what))
        .unwrap_or_else(|| panic!("no {what} in {line}"));
    let mut words = part.split(' ');
    let n: f64 = words.next().unwrap().parse().unwrap();
    let unit = words.next().unwrap();
    n * match unit {
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        _ => 1.0,
    }
}

/// A fresh repository with the same pointer files as `from` and the same
/// remote, and an empty cache.
fn clone_of(from: &Repo, backend: &Backend, pointers: &[&str]) -> Repo {
    let to = Repo::new();
    for p in pointers {
        fs::copy(from.path(p), to.path(p)).unwrap();
    }
    backend.attach(&to);
    to
}

// ---- the cases, each run on both backends ----

fn round_trip_of_many_small_files(b: &Backend) {
    let a = Repo::new();
    b.attach(&a);
    small_files(&a, "data", 1500);
    a.write("data/exec.sh", b"#!/bin/sh\n");
    fs::set_permissions(
        a.path("data/exec.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    a.bale(&["add", "-q", "data"]).ok();
    let st = bale(&a, &["status", "--remote"]).ok();
    assert!(
        st.stdout
            .contains("data: 1502 of 1502 objects are not on the remote origin"),
        "{st}"
    );

    let push = bale(&a, &["push", "-v"]).ok();
    assert!(push.stdout.contains("pushed 1502 objects"), "{push}");
    // 1501 files and a manifest: a few packs, not 1501 uploads.
    assert!(stat_of(&push, "requests") <= 12.0, "{push}");
    let packs = b.keys("packs");
    assert!(!packs.is_empty() && packs.len() <= 8, "{packs:?}");

    let again = bale(&a, &["push", "-v"]).ok();
    assert!(
        again
            .stdout
            .contains("everything is on the remote origin already"),
        "{again}"
    );
    assert!(stat_of(&again, "requests") <= 5.0, "{again}");
    assert_eq!(stat_of(&again, "sent"), 0.0, "{again}");
    let st = bale(&a, &["status", "--remote", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(json[0]["state"], "on-remote", "{st}");
    assert_eq!(json[0]["missing"], 0, "{st}");

    // An empty cache elsewhere: checkout says where the data is, then
    // fetch brings it, and the tree is the same, modes included.
    let c = clone_of(&a, b, &["data.bale"]);
    let co = c.bale(&["checkout"]).fails();
    assert!(
        co.stderr
            .contains("hint: run `bale fetch` to get it from the remote origin"),
        "{co}"
    );
    let f = bale(&c, &["fetch", "-v"]).ok();
    assert!(f.stdout.contains("fetched 1501 objects"), "{f}");
    assert!(stat_of(&f, "requests") <= 12.0, "{f}");
    c.bale(&["checkout", "-q"]).ok();
    assert_eq!(c.tree("data"), a.tree("data"));
    let f = bale(&c, &["fetch", "-v"]).ok();
    assert!(
        f.stdout.contains("everything is in the cache already"),
        "{f}"
    );
    assert!(stat_of(&f, "requests") == 0.0, "{f}");
    c.bale(&["fsck", "-q"]).ok();
}

fn large_file_in_parts(b: &Backend) {
    let a = Repo::new();
    b.attach(&a);
    let big = bytes(7, 40 << 20);
    a.write("big.bin", &big);
    a.bale(&["add", "-q", "big.bin"]).ok();
    let push = bale(&a, &["push", "-v"]).ok();
    assert!(push.stdout.contains("pushed 1 object (40.0 MiB"), "{push}");
    // Parts of 8 MiB: five, plus starting and completing the upload.
    assert!(stat_of(&push, "requests") >= 7.0, "{push}");
    let hash = a.pointer_hash("big.bin.bale");
    let key = format!("objects/{}/{}", &hash[..2], &hash[2..]);
    assert_eq!(fs::read(b.file(&key)).unwrap(), big);

    let c = clone_of(&a, b, &["big.bin.bale"]);
    bale(&c, &["pull", "-q"]).ok();
    assert!(c.read("big.bin") == big);
}

fn corrupt_remote_object_is_named_and_not_stored(b: &Backend) {
    let a = Repo::new();
    b.attach(&a);
    a.write("data/one", bytes(1, 5000));
    a.write("data/two", bytes(2, 6000));
    a.write("big", bytes(3, 2 << 20));
    a.bale(&["add", "-q", "data", "big"]).ok();
    bale(&a, &["push", "-q"]).ok();
    // Flip one byte of each object's content on the remote: the single
    // object, and the payload of the last record of the pack.
    let hash = a.pointer_hash("big.bale");
    let single = b.file(&format!("objects/{}/{}", &hash[..2], &hash[2..]));
    flip(&single, 1000);
    let pack = b
        .keys("packs")
        .into_iter()
        .find(|k| k.ends_with(".pack"))
        .unwrap();
    let pack = b.file(&pack);
    let len = fs::metadata(&pack).unwrap().len();
    flip(&pack, len - 100);

    let c = clone_of(&a, b, &["data.bale", "big.bale"]);
    let f = bale(&c, &["fetch"]).fails();
    assert!(
        f.stderr.contains(&format!(
            "the remote's copy of the object {hash} for big does not match its hash"
        )),
        "{f}"
    );
    assert!(
        f.stderr
            .contains("does not match its hash; it was not stored"),
        "{f}"
    );
    assert!(!c.object_path(&hash).exists());
    // The sound object arrived; checkout makes what it can and names the rest.
    let co = c.bale(&["checkout"]);
    assert_eq!(co.code, Some(1), "{co}");
    c.bale(&["fsck", "-q"]).ok();
    // The fetch left a note on the remote: a push from a sound cache sends
    // the two damaged objects again, and then the fetch completes.
    let repush = bale(&a, &["push"]).ok();
    assert!(repush.stdout.contains("pushed 2 objects"), "{repush}");
    bale(&c, &["fetch", "-q"]).ok();
    c.bale(&["checkout", "-q"]).ok();
    assert_eq!(c.tree("data"), a.tree("data"));
    assert_eq!(c.read("big"), a.read("big"));
    assert!(
        bale(&a, &["push"])
            .ok()
            .stdout
            .contains("everything is on the remote")
    );
}

fn flip(p: &Path, at: u64) {
    let mut b = fs::read(p).unwrap();
    b[at as usize] ^= 0x55;
    let mut perm = fs::metadata(p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    fs::set_permissions(p, perm).unwrap();
    fs::write(p, b).unwrap();
}

fn a_manifest_waits_for_its_content(b: &Backend) {
    let a = Repo::new();
    b.attach(&a);
    small_files(&a, "data", 20);
    a.bale(&["add", "-q", "data"]).ok();
    // One object gone from the cache: the push sends the rest, but not the
    // manifest, so the remote never holds an incomplete folder.
    let gone = a.read("data/d000/f00003");
    fs::remove_file(a.object_for(&gone)).unwrap();
    let p = bale(&a, &["push"]).fails();
    assert!(
        p.stderr.contains("data is not complete on the remote"),
        "{p}"
    );
    let manifest = a.pointer_hash("data.bale");
    assert!(
        !b.file(&format!("objects/{}/{}", &manifest[..2], &manifest[2..]))
            .exists()
    );
    let st = bale(&a, &["status", "--remote"]).ok();
    assert!(
        st.stdout
            .contains("data: 2 of 21 objects are not on the remote origin"),
        "{st}"
    );
    // With the object restored, a second push completes the folder.
    fs::write(a.object_for(&gone), &gone).unwrap();
    bale(&a, &["push", "-q"]).ok();
    let st = bale(&a, &["status", "--remote"]).ok();
    assert!(st.stdout.contains("data: on the remote origin"), "{st}");
}

// ---- the folder backend ----

#[test]
fn folder_round_trip_of_many_small_files() {
    round_trip_of_many_small_files(&Backend::folder());
}

#[test]
fn folder_large_file_round_trip() {
    large_file_in_parts(&Backend::folder());
}

#[test]
fn folder_corrupt_object_is_named_and_not_stored() {
    corrupt_remote_object_is_named_and_not_stored(&Backend::folder());
}

#[test]
fn folder_manifest_is_pushed_only_after_its_content() {
    a_manifest_waits_for_its_content(&Backend::folder());
}

#[test]
fn a_push_killed_at_random_moments_leaves_only_whole_objects_and_resumes() {
    let b = Backend::folder();
    let a = Repo::new();
    b.attach(&a);
    small_files(&a, "data", 3000);
    a.write("big", bytes(9, 30 << 20));
    a.bale(&["add", "-q", "data", "big"]).ok();
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..6 {
        let child = with_env(&a, &["push", "-q", "-j", "2"], &[])
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(rng.u64(20..400)));
        let pid = child.id() as i32;
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = wait(child, &["push"]);
        // Whatever is under a final name is whole: each single object
        // hashes to its name, each index matches its name and its pack.
        for key in b.keys("objects") {
            let hex: String = key.trim_start_matches("objects/").replace('/', "");
            assert_eq!(
                common::hash_hex(&fs::read(b.file(&key)).unwrap()),
                hex,
                "{key}"
            );
        }
        for key in b.keys("packs").iter().filter(|k| k.ends_with(".idx")) {
            let idx = fs::read(b.file(key)).unwrap();
            let name = key.trim_start_matches("packs/").trim_end_matches(".idx");
            assert_eq!(common::hash_hex(&idx), name, "{key}");
            assert!(
                b.file(&key.replace(".idx", ".pack")).exists(),
                "{key} without its pack"
            );
        }
    }
    let push = bale(&a, &["push", "-v"]).ok();
    let c = clone_of(&a, &b, &["data.bale", "big.bale"]);
    bale(&c, &["pull", "-q"]).ok();
    assert_eq!(c.tree("data"), a.tree("data"));
    assert_eq!(c.read("big"), a.read("big"));
    assert!(push.code == Some(0));
}

#[test]
fn remotes_are_added_listed_and_removed() {
    let r = Repo::new();
    let store = r.outside().join("store");
    r.bale(&["remote", "add", "-q", "backup", store.to_str().unwrap()])
        .ok();
    r.bale(&[
        "remote",
        "add",
        "-q",
        "s3",
        "s3://bucket/prefix",
        "--default",
        "--endpoint",
        "http://127.0.0.1:9",
    ])
    .ok();
    let list = r.bale(&["remote", "list"]).ok();
    assert_eq!(
        list.stdout,
        format!(
            "backup\t{}\ns3\ts3://bucket/prefix (default)\n",
            store.display()
        )
    );
    assert_eq!(r.bale(&["config", "core.remote"]).ok().stdout, "s3\n");
    let again = r.bale(&["remote", "add", "backup", "/elsewhere"]).fails();
    assert!(
        again
            .stderr
            .contains("a remote named \"backup\" exists already"),
        "{again}"
    );
    r.bale(&["remote", "remove", "-q", "s3"]).ok();
    assert_eq!(
        r.bale(&["remote", "list"]).ok().stdout,
        format!("backup\t{}\n", store.display())
    );
    r.bale(&["config", "core.remote"]).fails();
    let gone = r.bale(&["remote", "remove", "s3"]).fails();
    assert!(
        gone.stderr
            .contains("there is no remote named \"s3\" (configured: backup)"),
        "{gone}"
    );
}

#[test]
fn bad_remote_urls_and_names_are_refused() {
    let r = Repo::new();
    let before = fs::read_to_string(r.path(".bale/config.yaml")).unwrap();
    for (url, says) in [
        (
            "s3://AKIAXXX:secret@bucket/p",
            "credentials do not belong in a URL",
        ),
        ("gs://bucket/p", "bale cannot reach gs:// remotes"),
        ("s3://", "expected s3://BUCKET/PREFIX"),
        ("file://relative/path", "expected file:///ABSOLUTE/PATH"),
    ] {
        let run = r.bale(&["remote", "add", "x", url]).fails();
        assert!(run.stderr.contains(says), "{run}");
        assert!(!run.stderr.contains("secret@"), "{run}");
    }
    let run = r
        .bale(&[
            "remote",
            "add",
            "x",
            "s3://b/p",
            "--endpoint",
            "http://key:pw@host:9000",
        ])
        .fails();
    assert!(
        run.stderr.contains("credentials do not belong in a URL"),
        "{run}"
    );
    let run = r
        .bale(&["config", "remote.x.url", "s3://AKIAXXX:secret@bucket/p"])
        .fails();
    assert!(
        run.stderr.contains("credentials do not belong in a URL"),
        "{run}"
    );
    assert!(!run.stderr.contains("secret@"), "{run}");
    let run = r.bale(&["remote", "add", "a.b", "/x"]).fails();
    assert!(run.stderr.contains("a remote's name is letters"), "{run}");
    assert_eq!(
        fs::read_to_string(r.path(".bale/config.yaml")).unwrap(),
        before
    );

    let run = r.bale(&["push"]).fails();
    assert!(
        run.stderr
            .contains("no remote given: pass -r NAME or set core.remote"),
        "{run}"
    );
    let run = r.bale(&["fetch", "-r", "nope"]).fails();
    assert!(
        run.stderr
            .contains("there is no remote named \"nope\"; none is configured"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("hint: add one with `bale remote add NAME URL`"),
        "{run}"
    );
}

#[test]
fn a_missing_folder_remote_is_an_error_for_fetch_and_made_by_push() {
    let a = Repo::new();
    let store = a.outside().join("new-store");
    a.bale(&[
        "remote",
        "add",
        "-q",
        "origin",
        store.to_str().unwrap(),
        "--default",
    ])
    .ok();
    a.write("f", b"content");
    a.bale(&["add", "-q", "f"]).ok();
    let run = a.bale(&["fetch"]).fails();
    assert!(run.stderr.contains("does not exist"), "{run}");
    assert!(
        run.stderr.contains("hint: mount or create the folder"),
        "{run}"
    );
    a.write("f2", b"other");
    a.bale(&["add", "-q", "f2"]).ok();
    a.bale(&["push", "-q", "f2"]).ok();
    assert!(store.is_dir());
}

// ---- the S3 backend ----

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_round_trip_of_many_small_files() {
    round_trip_of_many_small_files(&Backend::s3());
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_large_file_round_trip_in_parts() {
    large_file_in_parts(&Backend::s3());
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_corrupt_object_is_named_and_not_stored() {
    corrupt_remote_object_is_named_and_not_stored(&Backend::s3());
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_manifest_is_pushed_only_after_its_content() {
    a_manifest_waits_for_its_content(&Backend::s3());
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_server_answering_503_for_a_while_is_retried() {
    let b = Backend::s3();
    let Backend::S3(_, proxy) = &b else {
        unreachable!()
    };
    let a = Repo::new();
    b.attach(&a);
    a.bale(&["config", "-q", "remote.origin.retries", "5"]).ok();
    small_files(&a, "data", 300);
    a.bale(&["add", "-q", "data"]).ok();
    proxy.state.fail_next.store(3, Ordering::SeqCst);
    bale(&a, &["push", "-q"]).ok();
    assert_eq!(proxy.state.failed.load(Ordering::SeqCst), 3);
    proxy.state.fail_next.store(2, Ordering::SeqCst);
    let c = clone_of(&a, &b, &["data.bale"]);
    c.bale(&["config", "-q", "remote.origin.retries", "5"]).ok();
    bale(&c, &["pull", "-q"]).ok();
    assert_eq!(proxy.state.failed.load(Ordering::SeqCst), 5);
    assert_eq!(c.tree("data"), a.tree("data"));
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_server_killed_mid_push_then_restarted_resumes_without_resending() {
    let mut b = Backend::s3();
    let a = Repo::new();
    b.attach(&a);
    let total = small_files(&a, "data", 2500);
    a.bale(&["add", "-q", "data"]).ok();
    let Backend::S3(server, proxy) = &mut b else {
        unreachable!()
    };
    // The first pack (4 MiB) gets through; the push hangs in the second,
    // and the server dies under it.
    proxy.state.up_budget.store(6 << 20, Ordering::SeqCst);
    let child = with_env(
        &a,
        &["push", "-j", "1"],
        &[("AWS_SECRET_ACCESS_KEY", SECRET)],
    )
    .spawn()
    .unwrap();
    let start = Instant::now();
    while proxy.state.up_budget.load(Ordering::SeqCst) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the push never got going"
        );
        thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    proxy.cut();
    let run = wait(child, &["push"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("remote origin:"), "{run}");
    server.restart();
    proxy.heal();
    let push = bale(&a, &["push", "-v"]).ok();
    let sent = stat_of(&push, "sent");
    assert!(
        sent > 0.0 && sent < total as f64 - (3 << 20) as f64,
        "the first pack was sent again:\n{push}"
    );
    let c = clone_of(&a, &b, &["data.bale"]);
    bale(&c, &["pull", "-q"]).ok();
    assert_eq!(c.tree("data"), a.tree("data"));
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_fetch_cut_mid_transfer_resumes_without_refetching() {
    let b = Backend::s3();
    let a = Repo::new();
    b.attach(&a);
    let total = small_files(&a, "data", 2500);
    a.bale(&["add", "-q", "data"]).ok();
    bale(&a, &["push", "-q"]).ok();
    let Backend::S3(_, proxy) = &b else {
        unreachable!()
    };
    let c = clone_of(&a, &b, &["data.bale"]);
    c.bale(&["config", "-q", "cache.type", "copy"]).ok();
    proxy.state.down_budget.store(6 << 20, Ordering::SeqCst);
    let child = with_env(
        &c,
        &["fetch", "-j", "1"],
        &[("AWS_SECRET_ACCESS_KEY", SECRET)],
    )
    .spawn()
    .unwrap();
    let start = Instant::now();
    while proxy.state.down_budget.load(Ordering::SeqCst) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the fetch never got going"
        );
        thread::sleep(Duration::from_millis(20));
    }
    proxy.cut();
    let run = wait(child, &["fetch"]);
    assert_eq!(run.code, Some(1), "{run}");
    proxy.heal();
    let f = bale(&c, &["fetch", "-v"]).ok();
    let received = stat_of(&f, "received");
    assert!(
        received < total as f64 - (3 << 20) as f64,
        "what arrived was fetched again:\n{f}"
    );
    c.bale(&["checkout", "-q"]).ok();
    assert_eq!(c.tree("data"), a.tree("data"));
    c.bale(&["fsck", "-q"]).ok();
}

#[test]
#[ignore = "needs BALE_TEST_S3S (the path of an s3s-fs binary), set by .ci/run"]
fn s3_errors_name_the_remote_and_say_what_to_do() {
    let b = Backend::s3();
    let a = Repo::new();
    b.attach(&a);
    a.write("f", b"x");
    a.bale(&["add", "-q", "f"]).ok();

    let run = bale_env(&a, &["push"], &[("AWS_SECRET_ACCESS_KEY", "wrong-secret")]).fails();
    assert!(
        run.stderr
            .contains("remote origin: cannot list packs: access denied"),
        "{run}"
    );
    assert!(run.stderr.contains("hint: check the credentials"), "{run}");
    assert!(!run.stderr.contains("wrong-secret"), "{run}");

    let run = bale_env(
        &a,
        &["push"],
        &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
    )
    .fails();
    assert!(
        run.stderr.contains("remote origin: no credentials"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{run}"
    );

    // A profile of the shared credentials file.
    let creds = a.outside().join("aws-credentials");
    fs::write(
        &creds,
        format!("[team]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    a.bale(&["config", "-q", "remote.origin.profile", "team"])
        .ok();
    bale_env(
        &a,
        &["push", "-q"],
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ],
    )
    .ok();
    a.bale(&["config", "-q", "--unset", "remote.origin.profile"])
        .ok();

    a.bale(&["config", "-q", "remote.origin.url", "s3://no-such-bucket/x"])
        .ok();
    let run = bale(&a, &["push"]).fails();
    assert!(
        run.stderr
            .contains("remote origin: cannot list packs: the bucket does not exist"),
        "{run}"
    );
    assert!(run.stderr.contains("hint: create the bucket"), "{run}");

    a.bale(&["config", "-q", "remote.origin.url", "s3://bale-bucket/x"])
        .ok();
    a.bale(&[
        "config",
        "-q",
        "remote.origin.endpoint",
        &format!("http://127.0.0.1:{}", free_port()),
    ])
    .ok();
    a.bale(&["config", "-q", "remote.origin.retries", "1"]).ok();
    let run = bale(&a, &["push"]).fails();
    assert!(run.stderr.contains("the server cannot be reached"), "{run}");
    assert!(
        run.stderr
            .contains("hint: check the network and remote.origin.endpoint"),
        "{run}"
    );
}

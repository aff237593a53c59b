//! Defects of gc, remotes and diff found on the built binary: what the
//! default gc keeps (every ref, the stash's entries, each worktree's HEAD
//! and index), secrets in remote URLs, the messages of folder remotes that
//! are files, read-only or full, diff's unknown revisions, and the hints of
//! push, fetch and pull.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A bale repository in a git repository, `data/a = first` tracked and
/// committed on `main`.
fn git_repo(first: &str) -> Repo {
    let repo = Repo::new();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "t"]);
    git(&repo, &["config", "user.email", "t@example.com"]);
    repo.write("data/a", first);
    repo.bale(&["add", "-q", "data"]).ok();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", first]);
    repo
}

/// Records `data/a = content` with `bale commit`; returns the objects of
/// that version (the file's content and the manifest).
fn record(repo: &Repo, content: &str) -> [String; 2] {
    repo.write("data/a", content);
    repo.bale(&["commit", "-q"]).ok();
    [hash_hex(content.as_bytes()), repo.pointer_hash("data.bale")]
}

/// Whether the loose cache object `hex` is there.
fn has_object(repo: &Repo, hex: &str) -> bool {
    repo.object_path(hex).is_file()
}

#[track_caller]
fn assert_kept(repo: &Repo, objects: &[String; 2], what: &str, run: &Run) {
    for o in objects {
        assert!(has_object(repo, o), "{what}: gc deleted {o}:\n{run}");
    }
}

// ------------------------------------------------------------ gc: stashes

#[test]
fn gc_keeps_what_only_a_stash_references() {
    let repo = git_repo("v1");
    let v2 = record(&repo, "v2");
    git(&repo, &["stash", "-q"]);
    repo.bale(&["checkout", "-q"]).ok();
    assert_eq!(repo.read_string("data/a"), "v1");
    let gc = repo.bale(&["gc", "--force"]).ok();
    assert_kept(&repo, &v2, "stash@{0}", &gc);
    git(&repo, &["stash", "pop", "-q"]);
    repo.bale(&["checkout", "-q"]).ok();
    assert_eq!(repo.read_string("data/a"), "v2");
}

#[test]
fn gc_keeps_every_stash_entry_and_the_index_of_each() {
    let repo = git_repo("v1");
    let older = record(&repo, "older");
    git(&repo, &["stash", "-q"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    // A staged-only change: the index holds `staged`, the work tree `wt`.
    let staged = record(&repo, "staged");
    git(&repo, &["add", "data.bale"]);
    let wt = record(&repo, "wt");
    git(&repo, &["stash", "-q"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    let newest = record(&repo, "newest");
    git(&repo, &["stash", "-q"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    assert_eq!(repo.read_string("data/a"), "v1");
    let gc = repo.bale(&["gc", "--force"]).ok();
    assert_kept(&repo, &newest, "stash@{0}", &gc);
    assert_kept(&repo, &wt, "stash@{1}, its work tree", &gc);
    assert_kept(&repo, &staged, "stash@{1}, its index", &gc);
    assert_kept(&repo, &older, "stash@{2}", &gc);
    // What nothing references still goes.
    let junk = record(&repo, "junk");
    git(&repo, &["checkout", "-q", "--", "data.bale"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    let gc = repo.bale(&["gc", "--force"]).ok();
    assert!(!has_object(&repo, &junk[0]), "junk was kept:\n{gc}");
    // `--workspace` still narrows to the workspace alone.
    let gc = repo.bale(&["gc", "--force", "--workspace"]).ok();
    assert!(
        !has_object(&repo, &newest[0]),
        "--workspace kept a stash:\n{gc}"
    );
}

// ------------------------------------------------- gc: refs and worktrees

#[test]
fn gc_keeps_what_any_ref_and_each_worktree_head_reference() {
    let repo = git_repo("v1");
    let mut versions = Vec::new();
    for (name, place) in [
        ("remote", Some("refs/remotes/origin/main")),
        ("custom", Some("refs/keep/x")),
        ("worktree", None),
    ] {
        let v = record(&repo, name);
        git(&repo, &["commit", "-q", "-am", name]);
        match place {
            Some(r) => git(&repo, &["update-ref", r, "HEAD"]),
            None => {
                let wt = repo.outside().join("linked");
                git(
                    &repo,
                    &["worktree", "add", "-q", "--detach", wt.to_str().unwrap()],
                )
            }
        };
        // main goes back: only that ref (or worktree) holds the version.
        git(&repo, &["reset", "-q", "--hard", "HEAD~1"]);
        versions.push((name, v));
    }
    repo.bale(&["checkout", "-q", "--force"]).ok();
    assert_eq!(repo.read_string("data/a"), "v1");
    let gc = repo.bale(&["gc", "--force"]).ok();
    for (name, v) in &versions {
        assert_kept(&repo, v, name, &gc);
    }
}

// ------------------------------------------------------------ gc: index

#[test]
fn gc_keeps_what_only_the_git_index_references() {
    let repo = git_repo("v1");
    let v2 = record(&repo, "v2");
    git(&repo, &["add", "data.bale"]);
    let v3 = record(&repo, "v3");
    let gc = repo.bale(&["gc", "--force"]).ok();
    assert_kept(&repo, &v2, "the index", &gc);
    assert_kept(&repo, &v3, "the workspace", &gc);
    git(&repo, &["commit", "-q", "-m", "v2"]);
    git(&repo, &["checkout", "-q", "--", "data.bale"]);
    repo.bale(&["checkout", "-q"]).ok();
    assert_eq!(repo.read_string("data/a"), "v2");
}

#[test]
fn gc_keeps_what_a_linked_worktree_index_references() {
    let repo = git_repo("v1");
    let wt = repo.outside().join("linked");
    git(
        &repo,
        &["worktree", "add", "-q", "--detach", wt.to_str().unwrap()],
    );
    // The linked worktree stages a pointer of an object this cache holds.
    let staged = record(&repo, "staged");
    fs::copy(repo.path("data.bale"), wt.join("data.bale")).unwrap();
    git_in(&wt, &["add", "data.bale"]);
    git(&repo, &["checkout", "-q", "--", "data.bale"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    let gc = repo.bale(&["gc", "--force"]).ok();
    assert_kept(&repo, &staged, "the linked worktree's index", &gc);
}

// ------------------------------------------------------ secrets in URLs

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let bytes = fs::read(e.path()).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

#[test]
fn secrets_in_remote_urls_are_never_printed_or_stored() {
    let repo = Repo::new();
    let attempts: &[(&[&str], &str)] = &[
        (
            &["remote", "add", "x", "azure://c/p?sv=1&sig=xyzzy-s3cr3t"],
            "azure://c/p",
        ),
        (
            &[
                "remote",
                "add",
                "x",
                "s3://b/p?X-Amz-Signature=xyzzy-s3cr3t",
            ],
            "s3://b/p",
        ),
        (
            &["remote", "add", "x", "https://user:xyzzy-s3cr3t@host/"],
            "https://",
        ),
        (
            &["remote", "add", "x", "file:///p?token=xyzzy-s3cr3t"],
            "file:///p",
        ),
        (&["remote", "add", "x", "s3://b/p#xyzzy-s3cr3t"], "s3://b/p"),
        (
            &[
                "config",
                "remote.x.url",
                "s3://b/p?X-Amz-Signature=xyzzy-s3cr3t",
            ],
            "s3://b/p",
        ),
        (
            &[
                "config",
                "remote.x.url",
                "azure://c/p?sv=1&sig=xyzzy-s3cr3t",
            ],
            "azure://c/p",
        ),
        (
            &["config", "remote.x.url", "file:///p?token=xyzzy-s3cr3t"],
            "file:///p",
        ),
        (
            &[
                "remote",
                "add",
                "x",
                "s3://b/p",
                "--endpoint",
                "http://host:9000/?sig=xyzzy-s3cr3t",
            ],
            "http://host:9000/",
        ),
        (
            &[
                "config",
                "remote.x.endpoint",
                "https://u:xyzzy-s3cr3t@host:9000",
            ],
            "https://",
        ),
    ];
    for (args, shown) in attempts {
        for verbose in [false, true] {
            let mut args = args.to_vec();
            if verbose {
                args.insert(0, "-v");
            }
            let run = repo.bale(&args).fails();
            assert!(!run.stdout.contains("xyzzy-s3cr3t"), "{run}");
            assert!(!run.stderr.contains("xyzzy-s3cr3t"), "{run}");
            assert!(
                run.stderr.contains(shown),
                "the error should show the redacted URL {shown}:\n{run}"
            );
            let leaked = files_holding(&repo.outside(), b"xyzzy-s3cr3t");
            assert!(leaked.is_empty(), "{leaked:?} hold the secret after\n{run}");
        }
    }
    for args in [&["remote", "list"][..], &["config", "--list"][..]] {
        let run = repo.bale(args).ok();
        assert!(!run.stdout.contains("xyzzy-s3cr3t"), "{run}");
    }
}

#[test]
fn a_hand_written_secret_in_config_is_refused_without_being_shown() {
    let repo = Repo::new();
    let config = repo.path(".bale/config.local.yaml");
    fs::write(
        &config,
        "core:\n  remote: x\nremote:\n  x:\n    url: s3://b/p?X-Amz-Signature=xyzzy-s3cr3t\n",
    )
    .unwrap();
    repo.write("f", "content");
    repo.bale(&["add", "-q", "f"]).ok();
    for args in [
        &["push"][..],
        &["-v", "fetch"][..],
        &["pull"][..],
        &["status", "--remote"][..],
        &["remote", "list"][..],
        &["config", "remote.x.url"][..],
        &["config", "--list"][..],
    ] {
        let run = repo.bale(args);
        assert!(!run.stdout.contains("xyzzy-s3cr3t"), "{run}");
        assert!(!run.stderr.contains("xyzzy-s3cr3t"), "{run}");
    }
}

// --------------------------------------------------------- folder remotes

/// A repository whose default remote is the folder `store` (beside the
/// repository unless absolute), with the file out `f` added.
fn with_folder_remote(store: &Path) -> Repo {
    let repo = Repo::new();
    let store = repo.outside().join(store);
    repo.bale(&[
        "remote",
        "add",
        "-q",
        "origin",
        store.to_str().unwrap(),
        "--default",
    ])
    .ok();
    repo.write("f", "content of f");
    repo.bale(&["add", "-q", "f"]).ok();
    repo
}

/// The `error:` and `hint:` lines of a run.
fn said(run: &Run) -> String {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("hint: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_folder_remote_that_is_a_file_is_named_so_by_push_fetch_and_status() {
    let repo = with_folder_remote(Path::new("store"));
    let store = repo.outside().join("store");
    fs::write(&store, "a file").unwrap();
    for args in [&["push"][..], &["fetch"][..], &["status", "--remote"][..]] {
        let run = repo.bale(args).fails();
        assert!(
            run.stderr
                .contains(&format!("{} is a file, not a folder", store.display())),
            "{run}"
        );
        assert!(!run.stderr.contains("File exists"), "{run}");
        assert!(!run.stderr.contains("does not exist"), "{run}");
        assert!(run.stderr.contains("hint: "), "{run}");
    }
}

/// A read-only tmpfs mounted for the life of the value (the tests run as
/// root: a chmod would not stop root, a read-only mount does).
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(at: &Path) -> ReadOnlyMount {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount a read-only tmpfs (needs root): {out:?}"
        );
        ReadOnlyMount(at.to_path_buf())
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_folder_remote_is_named_so_with_a_fix() {
    let repo = with_folder_remote(Path::new("ro-store"));
    let store = repo.outside().join("ro-store");
    let _mount = ReadOnlyMount::new(&store);
    let run = repo.bale(&["push"]).fails();
    let text = said(&run);
    assert!(text.contains("read-only"), "{run}");
    assert!(text.contains(&store.display().to_string()), "{run}");
    assert!(!text.contains("Generic"), "{run}");
    assert!(!text.contains("LocalFileSystem"), "{run}");
    assert!(!text.contains("run the command again"), "{run}");
    assert!(text.contains("hint: "), "{run}");
}

/// Runs `bale args...` in `dir` as the user nobody: the tests run as root,
/// whom a chmod does not stop.
fn bale_as_nobody(dir: &Path, args: &[&str]) -> Run {
    let child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
        ])
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run setpriv");
    wait(child, args)
}

#[test]
fn a_folder_remote_this_user_may_not_write_is_named_so_with_a_fix() {
    let repo = with_folder_remote(Path::new("locked"));
    let store = repo.outside().join("locked");
    fs::create_dir(&store).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(repo.outside())
        .status()
        .expect("run chown");
    assert!(
        chown.success(),
        "chown the test's folder to nobody (needs root)"
    );
    fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let run = bale_as_nobody(&repo.root, &["push"]);
    assert_eq!(run.code, Some(1), "{run}");
    let text = said(&run);
    assert!(text.contains("permission denied"), "{run}");
    assert!(text.contains(&store.display().to_string()), "{run}");
    assert!(!text.contains("Generic"), "{run}");
    assert!(!text.contains("LocalFileSystem"), "{run}");
    assert!(!text.contains("run the command again"), "{run}");
    assert!(text.contains("hint: give this user access"), "{run}");
}

/// The small file system of the disk-full tests (`BALE_TEST_SMALLFS`).
fn smallfs() -> PathBuf {
    match std::env::var_os("BALE_TEST_SMALLFS") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!(
            "BALE_TEST_SMALLFS is not set: it must name a folder on a small file system \
             (e.g. `mount -t tmpfs -o size=16m tmpfs /tmp/smallfs`); .ci/run sets it"
        ),
    }
}

#[test]
#[ignore = "needs BALE_TEST_SMALLFS (a small file system), set by .ci/run"]
fn a_full_folder_remote_is_named_so_with_a_fix() {
    let small = smallfs();
    let store = tempfile::tempdir_in(&small).unwrap();
    // Fill the small file system but for a little.
    let filler = store.path().join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![7u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let repo = with_folder_remote(&store.path().join("remote"));
    repo.write("big", noise_seeded(1, 4 << 20));
    repo.bale(&["add", "-q", "big"]).ok();
    let run = repo.bale(&["push"]).fails();
    let text = said(&run);
    assert!(text.contains("full"), "{run}");
    assert!(!text.contains("Generic"), "{run}");
    assert!(!text.contains("LocalFileSystem"), "{run}");
    assert!(text.contains("hint: free"), "{run}");
    fs::remove_file(filler).unwrap();
}

// ------------------------------------------------------------------ diff

#[test]
fn diff_of_an_unknown_revision_says_it_is_neither_a_revision_nor_a_path() {
    let repo = git_repo("v1");
    let run = repo.bale(&["diff", "HEAD~99"]).fails();
    assert!(
        run.stderr.contains("HEAD~99")
            && run
                .stderr
                .contains("unknown revision or path not in the working tree"),
        "{run}"
    );
    assert!(!run.stderr.contains("not tracked by bale"), "{run}");
    assert!(!run.stderr.contains("bale add"), "{run}");
    // A path that exists but holds no out is still "not tracked".
    repo.write("plain", "x");
    let run = repo.bale(&["diff", "plain"]).fails();
    assert!(run.stderr.contains("not tracked by bale"), "{run}");
}

#[test]
fn diff_past_the_boundary_of_a_shallow_clone_says_the_history_is_not_there() {
    let repo = git_repo("v1");
    record(&repo, "v2");
    git(&repo, &["commit", "-q", "-am", "v2"]);
    let url = format!("file://{}", repo.root.display());
    let clone = repo.outside().join("shallow");
    git_in(
        &repo.outside(),
        &["clone", "-q", "--depth", "1", &url, clone.to_str().unwrap()],
    );
    for args in [
        &["diff", "HEAD~1"][..],
        &["diff", "HEAD~1", "--", "data"][..],
        &["diff", "HEAD^", "data.bale"][..],
    ] {
        let run = bale_in(&clone, args).fails();
        assert!(run.stderr.contains("shallow"), "{run}");
        assert!(run.stderr.contains("git fetch --unshallow"), "{run}");
        assert!(!run.stderr.contains("not tracked by bale"), "{run}");
    }
}

// ----------------------------------------------------------------- hints

#[test]
fn pull_from_a_remote_that_lacks_objects_says_so_and_not_fetch() {
    let a = with_folder_remote(Path::new("store"));
    a.bale(&["push", "-q"]).ok();
    let store = a.outside().join("store");
    // The remote loses every object but keeps its folder.
    for e in fs::read_dir(&store).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    let obj = a.object_for(b"content of f");
    fs::remove_file(&obj).unwrap();
    fs::remove_file(a.path("f")).unwrap();
    let run = a.bale(&["pull"]).fails();
    let hints: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("hint: "))
        .collect();
    assert!(!hints.is_empty(), "{run}");
    for h in &hints {
        assert!(!h.contains("bale fetch"), "pull just fetched:\n{run}");
    }
    assert!(
        hints.iter().any(|h| h.contains("bale push")),
        "the hint should say to push from a repository that has them:\n{run}"
    );
}

#[test]
fn no_remote_given_reads_plainly() {
    let repo = Repo::new();
    repo.write("f", "x");
    repo.bale(&["add", "-q", "f"]).ok();
    for args in [
        &["push"][..],
        &["fetch"][..],
        &["pull"][..],
        &["status", "--remote"][..],
    ] {
        let run = repo.bale(args).fails();
        assert!(
            run.stderr
                .contains("no remote given: pass -r NAME or set core.remote"),
            "{run}"
        );
        assert!(!run.stderr.contains("no remote named:"), "{run}");
    }
}

#[test]
fn diff_outside_git_does_not_hint_at_gc() {
    let repo = Repo::new();
    let run = repo.bale(&["diff"]).fails();
    assert!(!run.stderr.contains("bale gc"), "{run}");
}

#[test]
fn remove_of_an_unknown_remote_does_not_hint_at_dash_r() {
    let repo = Repo::new();
    repo.bale(&["remote", "add", "-q", "a", "/tmp/somewhere"])
        .ok();
    let run = repo.bale(&["remote", "remove", "b"]).fails();
    assert!(!run.stderr.contains("-r NAME"), "{run}");
    assert!(run.stderr.contains("hint: "), "{run}");
}

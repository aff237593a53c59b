//! History: `bale gc` keeps what git revisions reference, by option, read
//! from real git repositories built with the git CLI; objects are checked
//! loose and packed.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use common::*;

/// Runs `git args...` at the repository root, with a fixed identity.
fn git(repo: &Repo, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(&repo.root)
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

/// One version of the tracked folder `data`: its file's content and the
/// hash of its manifest.
#[derive(Clone, Debug)]
struct Version {
    content: Vec<u8>,
    manifest: String,
}

impl Version {
    fn objects(&self) -> BTreeSet<String> {
        [hash_hex(&self.content), self.manifest.clone()].into()
    }
}

/// Records `data/a = content` (and a `data/same` file common to all
/// versions) and commits `data.bale` with git.
fn commit_version(repo: &Repo, content: &str) -> Version {
    repo.write("data/a", content);
    repo.bale(&["commit", "-q"]).ok();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", content]);
    Version {
        content: content.as_bytes().to_vec(),
        manifest: repo.pointer_hash("data.bale"),
    }
}

/// The history of the tests:
///
/// ```text
/// one (tag t1) -- two -- four (main, workspace)
///                    \-- side (branch side)
/// ```
/// plus "junk", recorded in the cache but never committed.
struct Fixture {
    repo: Repo,
    one: Version,
    two: Version,
    side: Version,
    four: Version,
    junk: Version,
}

fn fixture() -> Fixture {
    let repo = Repo::new();
    git(&repo, &["init", "-q", "-b", "main"]);
    repo.write("data/same", "in every version\n");
    repo.write("data/a", "one");
    repo.bale(&["add", "-q", "data"]).ok();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let one = Version {
        content: b"one".to_vec(),
        manifest: repo.pointer_hash("data.bale"),
    };
    git(&repo, &["tag", "t1"]);
    let two = commit_version(&repo, "two");
    git(&repo, &["switch", "-q", "-c", "side"]);
    let side = commit_version(&repo, "side");
    git(&repo, &["switch", "-q", "main"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    let four = commit_version(&repo, "four");
    // Recorded, never committed: the pointer goes back to four.
    repo.write("data/a", "junk");
    repo.bale(&["commit", "-q"]).ok();
    let junk = Version {
        content: b"junk".to_vec(),
        manifest: repo.pointer_hash("data.bale"),
    };
    git(&repo, &["checkout", "-q", "--", "data.bale"]);
    repo.bale(&["checkout", "-q", "--force"]).ok();
    assert_eq!(repo.read_string("data/a"), "four");
    Fixture {
        repo,
        one,
        two,
        side,
        four,
        junk,
    }
}

impl Fixture {
    fn all(&self) -> [&Version; 5] {
        [&self.one, &self.two, &self.side, &self.four, &self.junk]
    }
}

/// Every object in the cache, loose or packed, as hex.
fn cache_objects(repo: &Repo) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = repo.objects().iter().map(|o| o.replace('/', "")).collect();
    let index = packs_dir(repo).join("index.db");
    if index.exists() {
        let conn = rusqlite::Connection::open(&index).unwrap();
        let mut q = conn.prepare("SELECT hash FROM objects").unwrap();
        let rows = q.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        for h in rows {
            out.insert(h.unwrap().iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    out
}

/// Asserts that of the fixture's versions exactly `kept` are in the cache.
#[track_caller]
fn assert_kept(f: &Fixture, kept: &[&Version], run: &Run) {
    let have = cache_objects(&f.repo);
    let same = hash_hex(b"in every version\n");
    assert!(have.contains(&same), "the shared file is gone:\n{run}");
    for v in f.all() {
        let name = String::from_utf8_lossy(&v.content).into_owned();
        let want = kept.iter().any(|k| k.manifest == v.manifest);
        for o in v.objects() {
            assert_eq!(
                have.contains(&o),
                want,
                "version {name:?}: object {o} should be {}:\n{run}",
                if want { "kept" } else { "deleted" }
            );
        }
    }
}

/// Which versions a gc option must keep.
type Kept = fn(&Fixture) -> Vec<&Version>;

#[test]
fn each_option_keeps_exactly_what_it_promises() {
    for packed in [false, true] {
        let cases: [(&[&str], Kept); 7] = [
            (&["--workspace"], |f| vec![&f.four]),
            (&[], |f| vec![&f.one, &f.side, &f.four]),
            (&["--all-branches"], |f| vec![&f.side, &f.four]),
            (&["--all-tags"], |f| vec![&f.one, &f.four]),
            (&["--rev", "main~1"], |f| vec![&f.two, &f.four]),
            (&["--rev", "t1", "--rev", "side"], |f| {
                vec![&f.one, &f.side, &f.four]
            }),
            (&["--all-commits"], |f| {
                vec![&f.one, &f.two, &f.side, &f.four]
            }),
        ];
        for (opts, kept) in cases {
            let f = fixture();
            if packed {
                f.repo.bale(&["pack", "-q"]).ok();
                assert!(!pack_files(&f.repo).is_empty(), "bale pack packed nothing");
            }
            assert_kept(&f, &f.all(), &f.repo.bale(&["status"]));
            let mut args = vec!["gc", "--force"];
            args.extend_from_slice(opts);
            let run = f.repo.bale(&args).ok();
            assert_kept(&f, &kept(&f), &run);
            // What is kept still checks out.
            fs::remove_dir_all(f.repo.path("data")).unwrap();
            f.repo.bale(&["checkout", "-q"]).ok();
            assert_eq!(f.repo.read_string("data/a"), "four", "{opts:?}");
        }
    }
}

#[test]
fn without_force_on_a_pipe_nothing_is_deleted() {
    let f = fixture();
    let before = cache_objects(&f.repo);
    let run = f.repo.bale(&["gc"]).ok();
    assert!(run.stdout.contains("would remove 4 objects"), "{run}");
    assert!(
        run.hints().iter().any(|h| h.contains("--force")),
        "a hint names --force:\n{run}"
    );
    assert_eq!(cache_objects(&f.repo), before, "gc deleted without --force");
    let dry = f
        .repo
        .bale(&["gc", "--dry-run", "--force", "--workspace"])
        .ok();
    assert!(dry.stdout.contains("would remove 8 objects"), "{dry}");
    assert_eq!(cache_objects(&f.repo), before, "--dry-run deleted");
}

#[test]
fn a_manifest_missing_from_history_is_a_warning_a_workspace_one_an_error() {
    let f = fixture();
    fs::remove_file(f.repo.object_path(&f.side.manifest)).unwrap();
    let run = f.repo.bale(&["gc", "--force", "--all-branches"]).ok();
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains(&f.side.manifest),
        "the missing manifest is named:\n{run}"
    );
    assert!(cache_objects(&f.repo).contains(&f.four.manifest));
    fs::remove_file(f.repo.object_path(&f.four.manifest)).unwrap();
    let before = cache_objects(&f.repo);
    let run = f.repo.bale(&["gc", "--force"]).fails();
    assert!(run.stderr.contains(&f.four.manifest), "{run}");
    assert_eq!(
        cache_objects(&f.repo),
        before,
        "gc deleted on partial knowledge"
    );
}

#[test]
fn revision_options_outside_git_are_a_clear_error() {
    let repo = Repo::new();
    repo.write("data/a", "x");
    repo.bale(&["add", "-q", "data"]).ok();
    for opt in [
        &["--all-commits"][..],
        &["--all-branches"],
        &["--all-tags"],
        &["--rev", "HEAD"],
    ] {
        let mut args = vec!["gc", "--force"];
        args.extend_from_slice(opt);
        let run = repo.bale(&args).fails();
        assert!(run.stderr.contains("git"), "{run}");
        assert!(!run.hints().is_empty(), "{run}");
    }
    // With no option, gc outside git keeps the workspace.
    repo.bale(&["gc", "--force"]).ok();
    assert!(repo.object_for(b"x").exists());
}

#[test]
fn an_unknown_revision_is_an_error_that_names_it() {
    let f = fixture();
    let before = cache_objects(&f.repo);
    let run = f
        .repo
        .bale(&["gc", "--force", "--rev", "no-such-branch"])
        .fails();
    assert!(run.stderr.contains("no-such-branch"), "{run}");
    assert!(!run.hints().is_empty(), "{run}");
    assert_eq!(cache_objects(&f.repo), before);
}

#[test]
fn a_malformed_pointer_in_history_is_a_warning() {
    let f = fixture();
    git(&f.repo, &["switch", "-q", "side"]);
    fs::write(f.repo.path("data.bale"), "outs: [\n").unwrap();
    git(&f.repo, &["commit", "-q", "-am", "broken"]);
    git(&f.repo, &["switch", "-q", "main"]);
    let run = f.repo.bale(&["gc", "--force", "--all-commits"]).ok();
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("data.bale"),
        "{run}"
    );
    assert_kept(&f, &[&f.one, &f.two, &f.side, &f.four], &run);
}

#[test]
fn a_bale_repository_below_the_git_root_reads_its_own_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    fs::create_dir_all(top.join("proj")).unwrap();
    let run_git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&top)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    run_git(&["init", "-q", "-b", "main"]);
    let proj = top.join("proj");
    bale_in(&proj, &["init", "-q"]).ok();
    write_file(&proj.join("data/a"), b"old", 0o644);
    bale_in(&proj, &["add", "-q", "data"]).ok();
    run_git(&["add", "-A"]);
    run_git(&["commit", "-q", "-m", "old"]);
    run_git(&["tag", "old"]);
    write_file(&proj.join("data/a"), b"new", 0o644);
    bale_in(&proj, &["commit", "-q"]).ok();
    let old = proj.join(".bale/cache").join(&hash_hex(b"old")[..2]);
    let run = bale_in(&proj, &["gc", "--force", "--all-tags"]).ok();
    assert!(old.exists(), "the tag's object went:\n{run}");
    bale_in(&proj, &["gc", "--force", "--workspace"]).ok();
    assert!(!old.join(&hash_hex(b"old")[2..]).exists());
}

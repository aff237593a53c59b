//! History: `bale gc` keeps what git revisions reference, by option, read
//! from real git repositories built with the git CLI; objects are checked
//! loose and packed.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use common::*;

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

// ------------------------------------------------------------------ diff

/// Two versions of a folder out `data` and an out `m` that goes from a file
/// to a folder: `v1` (tagged) and `main`.
fn diff_fixture() -> Repo {
    let repo = Repo::new();
    git(&repo, &["init", "-q", "-b", "main"]);
    for (p, c) in [
        ("data/a", "1"),
        ("data/b", "2"),
        ("data/c", "3"),
        ("data/d/x", "4"),
    ] {
        repo.write(p, c);
    }
    repo.write("m", "m1");
    repo.bale(&["add", "-q", "data", "m"]).ok();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    git(&repo, &["tag", "v1"]);
    repo.write("data/b", "20");
    fs::remove_file(repo.path("data/c")).unwrap();
    fs::remove_dir_all(repo.path("data/d")).unwrap();
    repo.write("data/d/y", "4");
    repo.write("data/e", "5");
    fs::remove_file(repo.path("m")).unwrap();
    repo.write("m/w", "m1");
    repo.write("m/v", "v");
    repo.bale(&["commit", "-q", "data"]).ok();
    repo.bale(&["add", "-q", "m"]).ok();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v2"]);
    repo.settle();
    repo
}

#[test]
fn diff_between_two_revisions_lists_adds_edits_deletes_renames_and_switches() {
    let repo = diff_fixture();
    let run = repo.bale(&["diff", "v1", "main"]).ok();
    let want = "\
data: 1 added, 1 modified, 1 deleted, 1 renamed
  added:    data/e
  modified: data/b
  deleted:  data/c
  renamed:  data/d/x -> data/d/y
m: 1 added, 0 modified, 0 deleted, 1 renamed
  added:    m/v
  renamed:  m -> m/w
total: 2 added, 1 modified, 1 deleted, 2 renamed in 2 outs
";
    assert_eq!(run.stdout, want, "{run}");
    let back = repo.bale(&["diff", "main", "v1", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&back.stdout).unwrap();
    assert_eq!(j["from"], "main");
    assert_eq!(j["to"], "v1");
    let data = &j["outs"][0];
    assert_eq!(data["path"], "data");
    assert_eq!(data["added"], serde_json::json!(["data/c"]));
    assert_eq!(data["deleted"], serde_json::json!(["data/e"]));
    assert_eq!(data["modified"], serde_json::json!(["data/b"]));
    assert_eq!(
        data["renamed"],
        serde_json::json!([["data/d/y", "data/d/x"]])
    );
    let m = &j["outs"][1];
    assert_eq!(m["deleted"], serde_json::json!(["m/v"]));
    assert_eq!(m["renamed"], serde_json::json!([["m/w", "m"]]));
    assert_eq!(j["total"]["renamed"], 2);
    // A target limits the diff to that out.
    let only = repo.bale(&["diff", "v1", "main", "m"]).ok();
    assert!(
        only.stdout.starts_with("m: ") && !only.stdout.contains("data"),
        "{only}"
    );
}

#[test]
fn diff_against_the_workspace_sees_uncommitted_edits() {
    let repo = diff_fixture();
    let clean = repo.bale(&["diff"]).ok();
    assert_eq!(
        clean.stdout, "no changes from HEAD to workspace\n",
        "{clean}"
    );
    repo.write("data/a", "1, edited");
    repo.write("data/new", "new");
    let run = repo.bale(&["diff"]).ok();
    assert!(
        run.stdout
            .starts_with("data: 1 added, 1 modified, 0 deleted, 0 renamed\n"),
        "{run}"
    );
    assert!(
        run.stdout.contains("  modified: data/a\n")
            && run.stdout.contains("  added:    data/new\n"),
        "{run}"
    );
    assert!(!run.stdout.contains("\nm:"), "m is unchanged:\n{run}");
    let from_v1 = repo.bale(&["diff", "v1", "--json"]).ok();
    let j: serde_json::Value = serde_json::from_str(&from_v1.stdout).unwrap();
    assert_eq!(j["to"], "workspace");
    assert_eq!(
        j["outs"][0]["modified"],
        serde_json::json!(["data/a", "data/b"])
    );
    assert_eq!(j["total"]["added"], 3, "{from_v1}");
}

#[test]
fn diff_tells_revisions_from_targets_as_git_does() {
    let repo = diff_fixture();
    git(&repo, &["branch", "data"]);
    let run = repo.bale(&["diff", "data"]).fails();
    assert!(run.stderr.contains("ambiguous"), "{run}");
    assert!(run.hints().iter().any(|h| h.contains("--")), "{run}");
    // `--` says it is a target; a full ref name says it is a revision.
    repo.write("data/a", "edited");
    let t = repo.bale(&["diff", "--", "data"]).ok();
    assert!(t.stdout.contains("modified: data/a"), "{t}");
    let r = repo.bale(&["diff", "refs/heads/data", "v1", "m"]).ok();
    assert!(r.stdout.starts_with("m: "), "{r}");
    let bad = repo
        .bale(&["diff", "no-such-rev", "main", "--", "data"])
        .fails();
    assert!(bad.stderr.contains("no-such-rev"), "{bad}");
}

#[test]
fn diff_outside_git_is_a_clear_error() {
    let repo = Repo::new();
    repo.write("d/a", "x");
    repo.bale(&["add", "-q", "d"]).ok();
    let run = repo.bale(&["diff"]).fails();
    assert!(
        run.stderr.contains("git") && !run.hints().is_empty(),
        "{run}"
    );
}

// ------------------------------------------------------------------- get

#[test]
fn get_makes_an_out_as_a_revision_had_it_beside_the_workspace() {
    let repo = diff_fixture();
    let workspace_before = repo.tree("data");
    let snapshot_before = snapshot_hash(&repo, "data");
    let run = repo.bale(&["get", "--rev", "v1", "data"]).ok();
    let expected = {
        let e = [
            Expect::new("a", "1", false),
            Expect::new("b", "2", false),
            Expect::new("c", "3", false),
            Expect::new("d/x", "4", false),
        ];
        expected_tree(&e)
    };
    assert_eq!(repo.tree("data@v1"), expected, "{run}");
    assert_eq!(
        repo.tree("data"),
        workspace_before,
        "the workspace's out changed"
    );
    assert_eq!(snapshot_hash(&repo, "data"), snapshot_before);
    assert_eq!(
        git(&repo, &["status", "--porcelain", "--", "data.bale"]),
        ""
    );
    // A file out, by its pointer file, into a folder of our choosing.
    repo.bale(&["get", "--rev", "v1", "m.bale", "-o", "old-m"])
        .ok();
    assert_eq!(repo.tree("old-m"), "f 644 \".\" \"m1\"\n");
    // An existing destination needs --force, and is then replaced whole.
    repo.write("data@v1/stray", "mine");
    let again = repo.bale(&["get", "--rev", "v1", "data"]).fails();
    assert!(
        again.hints().iter().any(|h| h.contains("--force")),
        "{again}"
    );
    assert!(repo.path("data@v1/stray").exists());
    repo.bale(&["get", "--rev", "v1", "data", "--force"]).ok();
    assert_eq!(repo.tree("data@v1"), expected);
    // A revision name is made a file name.
    repo.bale(&["get", "--rev", "main~1", "data"]).ok();
    assert_eq!(repo.tree("data@main_1"), expected);
}

#[test]
fn get_links_per_cache_type() {
    let repo = diff_fixture();
    repo.cache_type("hardlink");
    repo.bale(&["get", "--rev", "v1", "data", "-o", "../elsewhere"])
        .ok();
    let dest = repo.outside().join("elsewhere");
    assert_eq!(
        ino(&dest.join("a")),
        ino(&repo.object_for(b"1")),
        "a hardlink of the object"
    );
}

#[test]
fn get_names_missing_objects_and_refuses_outs_as_destinations() {
    let repo = diff_fixture();
    fs::remove_file(repo.object_for(b"3")).unwrap();
    let run = repo.bale(&["get", "--rev", "v1", "data"]).fails();
    assert!(run.stderr.contains(&hash_hex(b"3")), "{run}");
    // `bale fetch` alone gets the workspace's objects, not v1's.
    assert!(
        run.hints()
            .iter()
            .any(|h| h.contains("git checkout v1 -- data.bale && bale fetch data")),
        "{run}"
    );
    assert!(!repo.path("data@v1").exists(), "a partial folder was left");
    for dest in ["data", "data/inside", "m", ".bale/x", "."] {
        let run = repo
            .bale(&["get", "--rev", "v1", "m", "-o", dest, "--force"])
            .fails();
        assert!(!run.hints().is_empty(), "{dest}: {run}");
    }
    assert_eq!(repo.read_string("data/a"), "1");
    let run = repo.bale(&["get", "--rev", "v1", "nothing"]).fails();
    assert!(
        run.stderr.contains("nothing") && run.stderr.contains("v1"),
        "{run}"
    );
}

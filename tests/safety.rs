//! Never lose data, never trust a timestamp too much, never write outside an
//! out: checkout's refusals, change detection, hostile pointer files and
//! manifests, planted symlinks, and a cache that lost an object.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use common::{Repo, hash_hex, meta, set_mtime, tree};

/// data/a, data/b, data/sub/c, data/sub/d: four files of distinct content.
fn sample(repo: &Repo) -> String {
    repo.write("data/a", "content of a\n");
    repo.write("data/b", "content of b\n");
    repo.write("data/sub/c", "content of c\n");
    repo.write_exec("data/sub/d", "#!/bin/sh\n# d\n");
    repo.tree("data")
}

fn assert_refused(run: &common::Run, paths: &[&str]) {
    let words: Vec<&str> = run
        .stderr
        .split_whitespace()
        .map(|w| w.trim_matches(|c| "'\"`,:;()".contains(c)))
        .collect();
    for p in paths {
        assert!(words.contains(p), "stderr must name {p}:\n{run}");
    }
    let hint = run
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("no hint:\n{run}"));
    assert!(
        hint.contains("bale commit") && hint.contains("--force"),
        "{run}"
    );
}

#[test]
fn checkout_refuses_to_overwrite_an_edit_or_delete_an_untracked_file() {
    let repo = Repo::new();
    let original = sample(&repo);
    repo.bale(&["add", "data"]).ok();

    repo.write("data/a", "an edit that is in no cache\n");
    repo.write("data/sub/untracked", "dropped in by hand\n");
    fs::remove_file(repo.path("data/b")).unwrap();
    let edited = repo.tree("data");

    let co = repo.bale(&["checkout"]).fails();
    assert_refused(&co, &["data/a", "data/sub/untracked"]);
    assert!(!co.stderr.contains("data/b"), "{co}");
    assert_eq!(
        repo.tree("data"),
        edited,
        "a refused checkout changes nothing"
    );

    let co = repo.bale(&["checkout", "data"]).fails();
    assert_refused(&co, &["data/a", "data/sub/untracked"]);
    assert_eq!(repo.tree("data"), edited);

    repo.bale(&["checkout", "--force"]).ok();
    assert_eq!(repo.tree("data"), original);
    assert!(common::temp_files(&repo.root).is_empty());
}

#[test]
fn a_refusal_in_one_out_stops_the_checkout_of_every_out() {
    let repo = Repo::new();
    sample(&repo);
    repo.write("other/x", "x\n");
    repo.bale(&["add", "data", "other"]).ok();
    fs::remove_file(repo.path("data/a")).unwrap();
    repo.write("other/x", "edited x\n");

    let co = repo.bale(&["checkout"]).fails();
    assert_refused(&co, &["other/x"]);
    assert!(
        !repo.path("data/a").exists(),
        "checkout must stop before changing anything"
    );
}

#[test]
fn content_already_in_the_cache_may_be_replaced_without_force() {
    let repo = Repo::new();
    let original = sample(&repo);
    repo.bale(&["add", "data"]).ok();
    // Swapped contents: both are in the cache, nothing can be lost.
    repo.write("data/a", "content of b\n");
    repo.write("data/b", "content of a\n");
    assert_eq!(
        repo.bale(&["status"]).ok().stdout,
        "data: modified (0 added, 2 modified, 0 deleted)\n"
    );
    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), original);
}

#[test]
fn a_same_size_edit_with_the_old_mtime_put_back_is_detected() {
    let repo = Repo::new();
    sample(&repo);
    let a = repo.path("data/a");
    // An old mtime: the state DB trusts the file's stat, not the racy rule.
    set_mtime(&a, 1_577_836_800, 123_456_789);
    let before = meta(&a);
    repo.bale(&["add", "data"]).ok();
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
    repo.bale(&["checkout"]).ok();
    let old_hash = repo.pointer_hash("data.bale");

    // Let the clock move on so that the edit's ctime differs.
    sleep(Duration::from_millis(20));
    fs::write(&a, "CONTENT OF A\n").unwrap(); // same size, same inode
    set_mtime(&a, 1_577_836_800, 123_456_789);
    let after = meta(&a);
    assert_eq!(after.len(), before.len());
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&after),
        std::os::unix::fs::MetadataExt::ino(&before)
    );

    let st = repo.bale(&["status"]).ok();
    assert_eq!(
        st.stdout, "data: modified (0 added, 1 modified, 0 deleted)\n",
        "{st}"
    );
    let co = repo.bale(&["checkout"]).fails();
    assert_refused(&co, &["data/a"]);
    assert_eq!(repo.read_string("data/a"), "CONTENT OF A\n");

    repo.bale(&["commit"]).ok();
    assert_ne!(repo.pointer_hash("data.bale"), old_hash, "commit missed it");
    assert_eq!(
        fs::read_to_string(repo.object_for(b"CONTENT OF A\n")).unwrap(),
        "CONTENT OF A\n"
    );
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

#[test]
fn an_edit_made_immediately_after_add_or_checkout_is_detected() {
    let repo = Repo::new();
    for round in 0..5 {
        let v1 = format!("round {round} version one\n");
        let v2 = format!("round {round} version TWO\n");
        assert_eq!(v1.len(), v2.len());
        repo.write("f.txt", &v1);
        repo.write("data/f", &v1);
        repo.bale(&["add", "-q", "f.txt", "data"]).ok();
        fs::write(repo.path("f.txt"), &v2).unwrap();
        fs::write(repo.path("data/f"), &v2).unwrap();

        let st = repo.bale(&["status"]).ok();
        assert_eq!(
            st.stdout,
            "data: modified (0 added, 1 modified, 0 deleted)\n\
             f.txt: modified (0 added, 1 modified, 0 deleted)\n",
            "round {round}"
        );
        repo.bale(&["commit", "-q"]).ok();
        assert_eq!(repo.pointer_hash("f.txt.bale"), hash_hex(v2.as_bytes()));
        assert_eq!(
            repo.bale(&["status"]).ok().stdout,
            "data: unchanged\nf.txt: unchanged\n"
        );

        // The same race after a checkout that wrote the files.
        fs::remove_file(repo.path("f.txt")).unwrap();
        fs::remove_file(repo.path("data/f")).unwrap();
        repo.bale(&["checkout", "-q"]).ok();
        fs::write(repo.path("f.txt"), &v1).unwrap();
        fs::write(repo.path("data/f"), format!("round {round} version 1!!\n")).unwrap();
        let co = repo.bale(&["checkout"]).fails();
        assert_refused(&co, &["data/f"]);
        // f.txt now holds v1, which is in the cache: restored without --force.
        repo.bale(&["checkout", "--force"]).ok();
        assert_eq!(repo.read_string("f.txt"), v2, "round {round}");
        assert_eq!(repo.read_string("data/f"), v2, "round {round}");
    }
}

fn assert_clean_error_naming(run: &common::Run, name: &str) {
    assert!(run.stderr.contains(name), "stderr must name {name}:\n{run}");
}

#[test]
fn malformed_pointer_files_are_errors_that_name_the_file() {
    let repo = Repo::new();
    sample(&repo);
    repo.bale(&["add", "data"]).ok();
    let good = repo.read_string("data.bale");
    let hash = repo.pointer_hash("data.bale");
    let objects = repo.objects();

    let cases: Vec<(&str, String)> = vec![
        ("yaml syntax", "outs:\n- path: data\n  hash: [\n".into()),
        ("empty file", String::new()),
        ("no outs", "outs: []\n".into()),
        ("not a mapping", "just some words\n".into()),
        (
            "missing hash",
            "outs:\n- path: data\n  type: dir\n  size: 1\n".into(),
        ),
        ("bad hash", good.replace(&hash, "not-a-hash")),
        ("short hash", good.replace(&hash, &hash[1..])),
        ("uppercase junk", good.replace(&hash, &"Z".repeat(32))),
        ("bad type", good.replace("type: dir", "type: socket")),
        ("negative size", good.replace("size: ", "size: -")),
        (
            "duplicate out",
            format!("{good}{}", good.trim_start_matches("outs:\n")),
        ),
        ("tabs", good.replace("  ", "\t")),
    ];
    for (what, text) in &cases {
        fs::write(repo.path("data.bale"), text).unwrap();
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["status", "data"],
            &["checkout"],
            &["checkout", "--force", "data.bale"],
            &["commit"],
            &["gc"],
        ] {
            let run = repo.bale(args).fails();
            assert_clean_error_naming(&run, "data.bale");
            assert!(
                run.stdout.is_empty() || args[0] == "status",
                "{what}: {run}"
            );
        }
        assert_eq!(repo.objects(), objects, "{what}: gc deleted objects");
    }
    let run = {
        fs::write(repo.path("data.bale"), &cases[0].1).unwrap();
        repo.bale(&["status"]).fails()
    };
    assert!(
        run.stderr.contains("line"),
        "a syntax error names the line:\n{run}"
    );

    // Not UTF-8 at all.
    fs::write(repo.path("data.bale"), b"\x00\xff\xfe garbage").unwrap();
    let run = repo.bale(&["checkout"]).fails();
    assert_clean_error_naming(&run, "data.bale");

    fs::write(repo.path("data.bale"), good).unwrap();
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

#[test]
fn pointer_paths_that_leave_the_pointer_folder_are_refused() {
    let repo = Repo::new();
    repo.write("sub/keep", "keep\n");
    repo.write("payload", "evil\n");
    repo.bale(&["add", "payload"]).ok();
    fs::remove_file(repo.path("payload.bale")).unwrap();
    fs::remove_file(repo.path("payload")).unwrap();
    let hash = hash_hex(b"evil\n");
    let outside = repo.outside();
    let outside_before = repo.outside_tree();
    let sub_before = repo.tree("sub");

    for (pointer, path) in [
        ("evil.bale", "../escaped".to_owned()),
        ("evil.bale", "a/../../escaped".to_owned()),
        ("sub/evil.bale", "../escaped".to_owned()),
        ("evil.bale", outside.join("escaped").display().to_string()),
        ("evil.bale", ".bale/cache/escaped".to_owned()),
        ("evil.bale", ".git/hooks/post-checkout".to_owned()),
        ("sub/evil.bale", "./keep".to_owned()),
    ] {
        let text = format!("outs:\n- path: {path}\n  hash: {hash}\n  type: file\n  size: 5\n");
        repo.write(pointer, &text);
        for args in [
            &["checkout"][..],
            &["checkout", "--force"],
            &["checkout", pointer],
            &["status"],
            &["commit"],
        ] {
            let run = repo.bale(args).fails();
            assert_clean_error_naming(&run, pointer);
            assert!(
                run.stderr.contains(&path),
                "stderr must quote {path}:\n{run}"
            );
        }
        assert_eq!(repo.outside_tree(), outside_before, "{pointer}: {path}");
        assert!(!repo.path(".git").exists(), "{pointer}: {path}");
        fs::remove_file(repo.path(pointer)).unwrap();
        assert_eq!(repo.tree("sub"), sub_before, "{pointer}: {path}");
    }
    assert!(!repo.path("escaped").exists());
    assert!(!repo.path(".bale/cache/escaped").exists());
}

/// Stores `bytes` in the repository's cache under their hash, as bale would.
fn plant_object(repo: &Repo, bytes: &[u8]) -> String {
    let hex = hash_hex(bytes);
    let obj = repo.object_path(&hex);
    fs::create_dir_all(obj.parent().unwrap()).unwrap();
    common::write_file(&obj, bytes, 0o444);
    hex
}

#[test]
fn manifest_paths_that_leave_the_out_are_refused() {
    let repo = Repo::new();
    let content = b"evil\n";
    let file_hash = plant_object(&repo, content);
    fs::create_dir(repo.path("data")).unwrap();
    let outside_before = repo.outside_tree();

    for bad in [
        "../escaped",
        "sub/../../escaped",
        "/tmp/escaped-by-bale-test",
        ".bale/config.yaml",
        ".git/config",
        "a//b",
    ] {
        let manifest = format!("bale-manifest 1\n{file_hash} 5 - {bad}\n");
        let hash = plant_object(&repo, manifest.as_bytes());
        repo.write(
            "data.bale",
            format!("outs:\n- path: data\n  hash: {hash}\n  type: dir\n  size: 5\n  nfiles: 1\n"),
        );
        for args in [&["checkout"][..], &["checkout", "--force"], &["status"]] {
            let run = repo.bale(args).fails();
            assert!(run.stderr.contains(&hash), "{bad}: {run}");
        }
        assert_eq!(repo.outside_tree(), outside_before, "{bad}");
        assert!(!Path::new("/tmp/escaped-by-bale-test").exists());
        assert!(!repo.path("escaped").exists(), "{bad}");
        assert!(!repo.path("data/.bale").exists(), "{bad}");
        assert!(!repo.path("data/.git").exists(), "{bad}");
    }
}

/// data/sub (tracked) is replaced by a symlink to a folder outside the
/// repository: checkout must neither write into it nor delete from it.
#[test]
fn a_symlink_planted_in_place_of_a_tracked_folder_is_not_written_through() {
    let repo = Repo::new();
    let original = sample(&repo);
    repo.bale(&["add", "data"]).ok();

    let outside = repo.outside().join("outside");
    common::write_file(&outside.join("c"), b"someone else's c\n", 0o644);
    common::write_file(&outside.join("keep"), b"keep me\n", 0o644);
    let outside_before = tree(&outside);

    fs::remove_dir_all(repo.path("data/sub")).unwrap();
    symlink(&outside, repo.path("data/sub")).unwrap();
    // Something else to do in the same out, so the plan is not empty.
    fs::remove_file(repo.path("data/a")).unwrap();

    let co = repo.bale(&["checkout"]).fails();
    assert_refused(&co, &["data/sub"]);
    assert!(meta(&repo.path("data/sub")).file_type().is_symlink());
    assert!(!repo.path("data/a").exists());
    assert_eq!(tree(&outside), outside_before);

    repo.bale(&["checkout", "--force"]).ok();
    assert!(meta(&repo.path("data/sub")).file_type().is_dir());
    assert_eq!(repo.tree("data"), original);
    assert_eq!(
        tree(&outside),
        outside_before,
        "--force wrote through the link"
    );
}

#[test]
fn a_symlink_planted_in_place_of_a_tracked_file_or_the_out_is_replaced_only_with_force() {
    let repo = Repo::new();
    let original = sample(&repo);
    repo.bale(&["add", "data"]).ok();
    let victim = repo.outside().join("victim.txt");
    common::write_file(&victim, b"content of b\n", 0o644);
    let elsewhere = repo.outside().join("elsewhere");
    common::write_file(&elsewhere.join("a"), b"not data's a\n", 0o644);
    let before = (tree(&victim), tree(&elsewhere));

    // A file replaced by a symlink to an outside file (even one holding the
    // right content: bale did not make that link).
    fs::remove_file(repo.path("data/b")).unwrap();
    symlink(&victim, repo.path("data/b")).unwrap();
    let co = repo.bale(&["checkout"]).fails();
    assert_refused(&co, &["data/b"]);
    repo.bale(&["checkout", "--force"]).ok();
    assert_eq!(repo.tree("data"), original);
    assert_eq!((tree(&victim), tree(&elsewhere)), before);

    // The whole out replaced by a symlink to an outside folder.
    fs::remove_dir_all(repo.path("data")).unwrap();
    symlink(&elsewhere, repo.path("data")).unwrap();
    let co = repo.bale(&["checkout"]).fails();
    assert_refused(&co, &["data"]);
    repo.bale(&["checkout", "--force"]).ok();
    assert!(meta(&repo.path("data")).file_type().is_dir());
    assert_eq!(repo.tree("data"), original);
    assert_eq!((tree(&victim), tree(&elsewhere)), before);
}

#[test]
fn a_missing_cache_object_is_reported_and_the_rest_is_checked_out() {
    for link in ["copy", "hardlink", "symlink"] {
        let repo = Repo::new();
        repo.cache_type(link);
        sample(&repo);
        repo.write("data/sub/lost", "this object will be lost\n");
        repo.bale(&["add", "data"]).ok();
        fs::remove_dir_all(repo.path("data")).unwrap();
        let lost = hash_hex(b"this object will be lost\n");
        fs::remove_file(repo.object_path(&lost)).unwrap();

        let co = repo.bale(&["checkout"]).fails();
        assert!(co.stderr.contains("data/sub/lost"), "{link}: {co}");
        assert!(co.stderr.contains(&lost), "{link}: {co}");
        for (rel, content) in [
            ("data/a", "content of a\n"),
            ("data/b", "content of b\n"),
            ("data/sub/c", "content of c\n"),
            ("data/sub/d", "#!/bin/sh\n# d\n"),
        ] {
            assert_eq!(repo.read_string(rel), content, "{link}: {rel}");
        }
        assert!(
            fs::symlink_metadata(repo.path("data/sub/lost")).is_err(),
            "{link}: nothing may stand in for the lost file"
        );
        assert!(common::temp_files(&repo.root).is_empty(), "{link}");
        let st = repo.bale(&["status"]).ok();
        assert_eq!(
            st.stdout, "data: modified (0 added, 0 modified, 1 deleted)\n",
            "{link}"
        );
        // A second run reports it again, rather than trusting a snapshot.
        let co = repo.bale(&["checkout"]).fails();
        assert!(co.stderr.contains(&lost), "{link}: {co}");
    }
}

#[test]
fn a_corrupt_cache_object_is_reported_not_checked_out() {
    let repo = Repo::new();
    repo.cache_type("copy");
    sample(&repo);
    repo.bale(&["add", "data"]).ok();
    fs::remove_dir_all(repo.path("data")).unwrap();
    let hex = hash_hex(b"content of c\n");
    let obj = repo.object_path(&hex);
    common::write_file(&obj, b"CONTENT OF C\n", 0o444); // same size

    let co = repo.bale(&["checkout"]).fails();
    assert!(co.stderr.contains("data/sub/c"), "{co}");
    assert!(co.stderr.contains(&hex), "{co}");
    assert_eq!(repo.read_string("data/a"), "content of a\n");
    assert!(
        !repo.path("data/sub/c").exists(),
        "content that does not match its hash must not be checked out"
    );
    assert!(common::temp_files(&repo.root).is_empty());
}

/// The state DB is a cache of facts that can be re-derived: one written by
/// an earlier bale (the first release's schema, without later columns) must
/// not stop the commands, and must not make them trust stale stats.
#[test]
fn a_state_db_written_by_an_older_bale_is_not_fatal() {
    let repo = Repo::new();
    let original = sample(&repo);
    repo.bale(&["add", "data"]).ok();
    let hash = repo.pointer_hash("data.bale");

    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(repo.path(&format!(".bale/state.db{suffix}")));
    }
    let db = rusqlite::Connection::open(repo.path(".bale/state.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE snapshots (
             out       TEXT PRIMARY KEY,
             hash      BLOB NOT NULL,
             link_type TEXT NOT NULL,
             taken_ns  INTEGER NOT NULL,
             entries   BLOB NOT NULL
         ) WITHOUT ROWID;",
    )
    .unwrap();
    let hash_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    db.execute(
        "INSERT INTO snapshots VALUES ('data', ?1, 'copy', ?2, x'')",
        rusqlite::params![hash_bytes, i64::MAX],
    )
    .unwrap();
    drop(db);

    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
    repo.write("data/a", "an edit\n");
    assert_eq!(
        repo.bale(&["status"]).ok().stdout,
        "data: modified (0 added, 1 modified, 0 deleted)\n"
    );
    repo.bale(&["checkout"]).fails();
    repo.bale(&["checkout", "--force"]).ok();
    assert_eq!(repo.tree("data"), original);
    repo.write("data/b", "another edit\n");
    repo.bale(&["commit"]).ok();
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

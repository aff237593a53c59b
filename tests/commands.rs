//! The commands one by one: init, add, commit, status (--json), config,
//! unprotect, gc, and the exit codes of usage errors.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{Repo, bale_in, hash_hex, ino, meta, mode};

#[test]
fn init_creates_the_layout_and_refuses_a_second_time() {
    let repo = Repo::new();
    for dir in [".bale", ".bale/cache", ".bale/tmp"] {
        assert!(repo.path(dir).is_dir(), "{dir}");
    }
    assert!(repo.path(".bale/config.yaml").is_file());
    let gitignore = repo.read_string(".bale/.gitignore");
    assert!(gitignore.contains("config.yaml"), "{gitignore}");

    repo.write("data/a", "a\n");
    repo.bale(&["add", "data"]).ok();
    let objects = repo.objects();

    let again = repo.bale(&["init"]).fails();
    assert!(again.stderr.contains("--force"), "{again}");
    repo.bale(&["init", "--force"]).ok();
    assert_eq!(repo.objects(), objects, "init --force keeps the cache");
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

#[test]
fn commands_outside_a_repository_say_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = bale_in(dir.path(), &["status"]).fails();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("hint:") && l.contains("bale init")),
        "{run}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let repo = Repo::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["add"],
        &["unprotect"],
        &["checkout", "--no-such-flag"],
        &["config"],
        &["config", "cache.type", "copy", "--unset"],
        &["-j"],
    ] {
        let run = repo.bale(args).code(2);
        assert!(!run.stderr.is_empty(), "{run}");
    }
}

#[test]
fn add_writes_the_pointer_the_gitignore_and_read_only_objects() {
    let repo = Repo::new();
    repo.write(".gitignore", "*.log"); // no final newline
    repo.write("data/a", "aaa\n");
    repo.write("data/sub/b", "bb\n");
    repo.write_exec("data/run", "#!/bin/sh\n");
    repo.bale(&["add", "data"]).ok();

    let p = repo.pointer("data.bale");
    let out = &p["outs"][0];
    assert_eq!(out["path"].as_str(), Some("data"));
    assert_eq!(out["type"].as_str(), Some("dir"));
    assert_eq!(out["size"].as_u64(), Some(4 + 3 + 10));
    assert_eq!(out["nfiles"].as_u64(), Some(3));
    let hash = repo.pointer_hash("data.bale");
    assert!(
        hash.len() == 32
            && hash
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{hash}"
    );
    // The manifest is an object like any other: named by its own hash.
    let manifest = fs::read(repo.object_path(&hash)).unwrap();
    assert_eq!(hash_hex(&manifest), hash);
    assert_eq!(mode(&repo.object_path(&hash)), 0o444);

    for content in ["aaa\n", "bb\n", "#!/bin/sh\n"] {
        let obj = repo.object_for(content.as_bytes());
        assert_eq!(fs::read_to_string(&obj).unwrap(), content);
        assert_eq!(mode(&obj), 0o444, "{}", obj.display());
    }
    assert_eq!(repo.objects().len(), 4);
    assert!(
        fs::read_dir(repo.path(".bale/cache/tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(repo.read_string(".gitignore"), "*.log\n/data\n");

    // Re-adding changed content updates the pointer, not the .gitignore.
    repo.write("data/a", "changed\n");
    repo.bale(&["add", "data"]).ok();
    assert_ne!(repo.pointer_hash("data.bale"), hash);
    assert_eq!(repo.read_string(".gitignore"), "*.log\n/data\n");

    // A single file.
    repo.write("models/m.bin", "weights");
    repo.bale(&["add", "models/m.bin"]).ok();
    let p = repo.pointer("models/m.bin.bale");
    assert_eq!(p["outs"][0]["path"].as_str(), Some("m.bin"));
    assert_eq!(p["outs"][0]["type"].as_str(), Some("file"));
    assert_eq!(p["outs"][0]["size"].as_u64(), Some(7));
    assert_eq!(repo.pointer_hash("models/m.bin.bale"), hash_hex(b"weights"));
    assert_eq!(repo.read_string("models/.gitignore"), "/m.bin\n");
}

#[test]
fn add_refuses_what_it_cannot_track() {
    let repo = Repo::new();
    repo.write("data/a", "a\n");
    repo.bale(&["add", "data"]).ok();
    let outside = repo.outside().join("elsewhere.txt");
    fs::write(&outside, "x").unwrap();

    for (args, names) in [
        (vec!["add", "no-such-file"], "no-such-file"),
        (vec!["add", "data/a"], "data"),
        (vec!["add", outside.to_str().unwrap()], "elsewhere.txt"),
        (vec!["add", ".bale"], ".bale"),
    ] {
        let run = repo.bale(&args).fails();
        assert!(run.stderr.contains(names), "{run}");
    }
    assert!(!repo.path("data/a.bale").exists());
    assert!(!repo.outside().join("elsewhere.txt.bale").exists());
}

#[test]
fn add_writes_files_with_the_usual_permissions() {
    let repo = Repo::new();
    // What this process's umask gives a new file.
    let probe = repo.path("probe");
    fs::File::create(&probe).unwrap();
    let usual = mode(&probe);
    fs::remove_file(&probe).unwrap();

    repo.write(".gitignore", "*.log\n");
    fs::set_permissions(
        repo.path(".gitignore"),
        std::os::unix::fs::PermissionsExt::from_mode(0o664),
    )
    .unwrap();
    repo.write("data/a", "a\n");
    repo.bale(&["add", "data"]).ok();
    let octal = |rel: &str| format!("{:o}", mode(&repo.path(rel)));
    let usual = format!("{usual:o}");
    assert_eq!(
        octal(".gitignore"),
        "664",
        "an existing .gitignore must keep its mode"
    );
    assert_eq!(octal("data.bale"), usual, "data.bale");

    repo.write("sub/b", "b\n");
    repo.bale(&["add", "sub/b"]).ok();
    assert_eq!(octal("sub/.gitignore"), usual, "a new .gitignore");
    assert_eq!(octal("sub/b.bale"), usual, "sub/b.bale");
}

#[test]
fn commit_records_changes_and_keeps_unknown_keys() {
    let repo = Repo::new();
    repo.write("data/a", "a\n");
    repo.write("data/b", "b\n");
    repo.write("data/c", "c\n");
    repo.bale(&["add", "data"]).ok();
    let old = repo.pointer_hash("data.bale");
    let text = repo.read_string("data.bale");
    let text = text.replace("  type: dir\n", "  type: dir\n  remote: s3\n");
    fs::write(
        repo.path("data.bale"),
        format!("{text}meta:\n  owner: me\n"),
    )
    .unwrap();

    repo.write("data/a", "a, edited\n");
    repo.write("data/b", "B\n");
    repo.write("data/new/d", "d\n");
    let commit = repo.bale(&["commit"]).ok();
    assert_eq!(
        commit.stdout,
        "data: committed (1 added, 2 modified, 0 deleted)\n"
    );
    let p = repo.pointer("data.bale");
    let new = repo.pointer_hash("data.bale");
    assert_ne!(new, old);
    assert_eq!(p["outs"][0]["nfiles"].as_u64(), Some(4));
    assert_eq!(p["outs"][0]["size"].as_u64(), Some(10 + 2 + 2 + 2));
    assert_eq!(p["outs"][0]["remote"].as_str(), Some("s3"), "{p:?}");
    assert_eq!(p["meta"]["owner"].as_str(), Some("me"), "{p:?}");
    assert_eq!(
        fs::read_to_string(repo.object_for(b"a, edited\n")).unwrap(),
        "a, edited\n"
    );
    assert!(
        repo.object_path(&old).is_file(),
        "old versions stay in the cache"
    );

    let pointer = repo.read_string("data.bale");
    assert_eq!(
        repo.bale(&["commit", "data"]).ok().stdout,
        "data: unchanged\n"
    );
    assert_eq!(repo.read_string("data.bale"), pointer);
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");

    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.read_string("data/new/d"), "d\n");
}

#[test]
fn commit_stores_again_an_object_removed_behind_its_back() {
    let repo = Repo::new();
    repo.bale(&["config", "cache.type", "copy"]).ok();
    repo.write("data/a", "a\n");
    repo.write("data/b", "b\n");
    repo.bale(&["add", "data"]).ok();
    let object = repo.object_for(b"b\n");
    fs::remove_file(&object).unwrap();
    // The snapshot still vouches for data/b's content, but what it names
    // is gone: commit reads the file and stores it again.
    assert_eq!(repo.bale(&["commit"]).ok().stdout, "data: unchanged\n");
    assert_eq!(fs::read_to_string(&object).unwrap(), "b\n");
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.read_string("data/b"), "b\n");
}

fn status_json(repo: &Repo) -> Vec<serde_json::Value> {
    let run = repo.bale(&["status", "--json"]).ok();
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run}"));
    v.as_array().expect("a JSON array").clone()
}

#[test]
fn status_reports_each_state_in_text_and_json() {
    let repo = Repo::new();
    repo.write("clean/a", "a\n");
    repo.write("changed/a", "a\n");
    repo.write("changed/b", "b\n");
    repo.write("changed/c", "c\n");
    repo.write("gone/a", "a\n");
    repo.write("nested/uncached/u", "only here\n");
    repo.write("file.txt", "file\n");
    repo.bale(&[
        "add",
        "clean",
        "changed",
        "gone",
        "nested/uncached",
        "file.txt",
    ])
    .ok();

    repo.write("changed/new", "new\n");
    repo.write("changed/a", "a2\n");
    repo.write("changed/b", "b2\n");
    fs::remove_dir_all(repo.path("gone")).unwrap();
    // Pointers as pulled from git, naming data this cache never had.
    for pointer in ["nested/uncached.bale", "file.txt.bale"] {
        let text = repo.read_string(pointer);
        let hash = repo.pointer_hash(pointer);
        let unknown = hash_hex(format!("never stored {pointer}").as_bytes());
        fs::write(repo.path(pointer), text.replace(&hash, &unknown)).unwrap();
    }
    repo.write("unchanged.txt", "same\n");
    repo.bale(&["add", "unchanged.txt"]).ok();

    let text = repo.bale(&["status"]).ok();
    let lines: BTreeSet<&str> = text.stdout.lines().collect();
    let expected: BTreeSet<&str> = [
        "changed: modified (1 added, 2 modified, 0 deleted)",
        "clean: unchanged",
        "file.txt: not-in-cache",
        "gone: missing",
        "nested/uncached: not-in-cache",
        "unchanged.txt: unchanged",
    ]
    .into();
    assert_eq!(lines, expected, "{text}");

    let all = status_json(&repo);
    assert_eq!(all.len(), 6);
    for o in &all {
        let keys: BTreeSet<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["path", "pointer", "state", "added", "modified", "deleted"] {
            assert!(keys.contains(k), "missing key {k} in {o}");
        }
    }
    let by_path = |p: &str| {
        all.iter()
            .find(|o| o["path"] == p)
            .unwrap_or_else(|| panic!("no {p} in {all:?}"))
    };
    let changed = by_path("changed");
    assert_eq!(changed["pointer"], "changed.bale");
    assert_eq!(changed["state"], "modified");
    assert_eq!(
        (&changed["added"], &changed["modified"], &changed["deleted"]),
        (&1.into(), &2.into(), &0.into())
    );
    assert_eq!(by_path("clean")["state"], "unchanged");
    assert_eq!(by_path("clean")["added"], 0);
    assert_eq!(by_path("file.txt")["state"], "not-in-cache");
    assert_eq!(by_path("unchanged.txt")["state"], "unchanged");
    assert_eq!(by_path("gone")["state"], "missing");
    let uncached = by_path("nested/uncached");
    assert_eq!(uncached["state"], "not-in-cache");
    assert_eq!(uncached["pointer"], "nested/uncached.bale");

    // Targets narrow it down; status wrote nothing.
    let one = repo.bale(&["status", "changed.bale", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(!repo.path("gone").exists());
}

#[test]
fn config_reads_writes_and_hints_on_a_cache_type_change() {
    let repo = Repo::new();
    assert_eq!(
        repo.bale(&["config", "cache.type"]).ok().stdout,
        "reflink,copy\n"
    );
    repo.write("data/a", "a\n");
    repo.bale(&["add", "-q", "data"]).ok();

    let set = repo.bale(&["config", "cache.type", "hardlink"]).ok();
    let first = set.stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("hint: "), "{set}");
    assert!(set.stderr.contains("bale checkout --relink"), "{set}");
    assert!(
        !set.stdout.contains("hint"),
        "hints go to stderr only:\n{set}"
    );
    assert!(repo.read_string(".bale/config.yaml").contains("hardlink"));

    let same = repo.bale(&["config", "cache.type", "hardlink"]).ok();
    assert!(
        !same.stderr.contains("hint:"),
        "no change, no hint:\n{same}"
    );

    repo.bale(&["config", "--local", "cache.type", "symlink,copy"])
        .ok();
    assert!(repo.path(".bale/config.local.yaml").is_file());
    assert_eq!(
        repo.bale(&["config", "cache.type"]).ok().stdout,
        "symlink,copy\n",
        "the local file wins"
    );
    let unset = repo
        .bale(&["config", "--local", "--unset", "cache.type"])
        .ok();
    assert!(
        unset.stderr.starts_with("hint: "),
        "files are copies: {unset}"
    );
    assert_eq!(
        repo.bale(&["config", "cache.type"]).ok().stdout,
        "hardlink\n"
    );

    let before = repo.read_string(".bale/config.yaml");
    for args in [
        &["config", "cache.type", "teleport"][..],
        &["config", "cache.type", "copy,copy"],
        &["config", "cache.typo", "copy"],
        &["config", "no.such.key"],
    ] {
        repo.bale(args).fails();
    }
    assert_eq!(repo.read_string(".bale/config.yaml"), before);
}

#[test]
fn status_and_checkout_hint_when_the_config_was_changed_by_hand() {
    let repo = Repo::new();
    repo.cache_type("copy");
    repo.write("data/a", "a\n");
    repo.bale(&["add", "data"]).ok();
    assert!(!repo.bale(&["status"]).ok().stderr.contains("hint:"));

    // As if pulled from git: no `bale config`, so no hint from there.
    fs::write(repo.path(".bale/config.yaml"), "cache:\n  type: hardlink\n").unwrap();
    for args in [&["status"][..], &["checkout"]] {
        let run = repo.bale(args).ok();
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("hint: ") && l.contains("bale checkout --relink")),
            "{run}"
        );
    }
    repo.bale(&["checkout", "--relink"]).ok();
    assert_eq!(ino(&repo.path("data/a")), ino(&repo.object_for(b"a\n")));
    let run = repo.bale(&["status"]).ok();
    assert!(!run.stderr.contains("hint:"), "{run}");
}

#[test]
fn unprotect_makes_private_copies_and_leaves_the_cache_intact() {
    for link in ["hardlink", "symlink"] {
        let repo = Repo::new();
        repo.cache_type(link);
        repo.write("data/a", "a\n");
        repo.write("data/sub/b", "b\n");
        repo.write("data/sub/c", "c\n");
        repo.write_exec("data/run", "#!/bin/sh\n");
        repo.bale(&["add", "data"]).ok();
        let obj_a = repo.object_for(b"a\n");
        let obj_ino = ino(&obj_a);

        // Just one file, then the rest of its folder.
        repo.bale(&["unprotect", "data/sub/b"]).ok();
        assert!(
            meta(&repo.path("data/sub/c")).file_type().is_symlink()
                || ino(&repo.path("data/sub/c")) == ino(&repo.object_for(b"c\n")),
            "{link}: only the named file is unprotected"
        );
        repo.bale(&["unprotect", "data"]).ok();

        for (rel, content) in [
            ("data/a", "a\n"),
            ("data/sub/b", "b\n"),
            ("data/sub/c", "c\n"),
        ] {
            let p = repo.path(rel);
            let m = meta(&p);
            assert!(m.file_type().is_file(), "{link}: {rel}");
            assert_eq!(m.nlink(), 1, "{link}: {rel}");
            assert_ne!(
                m.ino(),
                ino(&repo.object_for(content.as_bytes())),
                "{link}: {rel}"
            );
            assert_eq!(mode(&p), 0o644, "{link}: {rel}");
            assert_eq!(repo.read_string(rel), content, "{link}: {rel}");
        }
        assert_eq!(mode(&repo.path("data/run")), 0o755, "{link}");
        assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");

        fs::write(repo.path("data/a"), "a, edited in place\n").unwrap();
        assert_eq!(fs::read_to_string(&obj_a).unwrap(), "a\n", "{link}");
        assert_eq!(mode(&obj_a), 0o444, "{link}");
        assert_eq!(ino(&obj_a), obj_ino, "{link}");
        assert_eq!(
            repo.bale(&["status"]).ok().stdout,
            "data: modified (0 added, 1 modified, 0 deleted)\n"
        );
        repo.bale(&["commit"]).ok();
        assert_eq!(fs::read_to_string(&obj_a).unwrap(), "a\n", "{link}");
        assert_eq!(
            fs::read_to_string(repo.object_for(b"a, edited in place\n")).unwrap(),
            "a, edited in place\n"
        );
    }
}

#[test]
fn gc_removes_only_unreferenced_objects_and_dry_run_removes_nothing() {
    let repo = Repo::new();
    repo.write("data/keep", "kept in both versions\n");
    repo.write("data/change", "version 1\n");
    repo.write("nested/deep/model.bin", "model weights\n");
    repo.bale(&["add", "data", "nested/deep/model.bin"]).ok();
    let v1_manifest = repo.pointer_hash("data.bale");

    repo.write("data/change", "version 2\n");
    repo.bale(&["commit"]).ok();
    let v2_manifest = repo.pointer_hash("data.bale");
    let all = repo.objects();
    let rel = |hex: &str| format!("{}/{}", &hex[..2], &hex[2..]);
    let garbage: BTreeSet<String> = [rel(&v1_manifest), rel(&hash_hex(b"version 1\n"))].into();
    let live: BTreeSet<String> = [
        rel(&v2_manifest),
        rel(&hash_hex(b"version 2\n")),
        rel(&hash_hex(b"kept in both versions\n")),
        rel(&hash_hex(b"model weights\n")),
    ]
    .into();
    assert_eq!(
        all.iter().cloned().collect::<BTreeSet<_>>(),
        &garbage | &live
    );

    let dry = repo.bale(&["gc", "--dry-run"]).ok();
    assert!(dry.stdout.contains("would remove 2 objects"), "{dry}");
    assert_eq!(repo.objects(), all, "--dry-run removed something");

    let asked = repo.bale(&["gc"]).ok();
    assert!(asked.stdout.contains("would remove 2 objects"), "{asked}");
    assert_eq!(
        repo.objects(),
        all,
        "gc without --force on a pipe removed something"
    );

    let gc = repo.bale(&["gc", "--force"]).ok();
    assert!(gc.stdout.contains("removed 2 objects"), "{gc}");
    assert_eq!(repo.objects().into_iter().collect::<BTreeSet<_>>(), live);

    let again = repo.bale(&["gc", "--force"]).ok();
    assert!(again.stdout.contains("removed 0 objects"), "{again}");

    fs::remove_dir_all(repo.path("data")).unwrap();
    fs::remove_file(repo.path("nested/deep/model.bin")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.read_string("data/change"), "version 2\n");
    assert_eq!(repo.read_string("nested/deep/model.bin"), "model weights\n");
}

// A snapshot that cannot be saved fails the command only after it has said
// what it did: the pointers are written, the workspace checked out.
#[test]
fn a_snapshot_save_that_fails_is_told_after_what_was_done() {
    let repo = Repo::new();
    repo.write("data/a", "1");
    repo.bale(&["add", "-q", "data"]).ok();
    // The file system clock is read through a file in .bale/tmp.
    let tmp = repo.path(".bale/tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, "in the way").unwrap();
    repo.write("data/a", "2");
    let r = repo.bale(&["commit"]).fails();
    assert!(r.stdout.contains("data: committed"), "{r}");
    std::fs::remove_file(repo.path("data/a")).unwrap();
    let r = repo.bale(&["checkout"]).fails();
    assert!(r.stdout.contains("data: 1 added"), "{r}");
    assert_eq!(repo.read_string("data/a"), "2");
    repo.write("more/b", "b");
    let r = repo.bale(&["add", "more"]).fails();
    assert!(r.stdout.contains("more: added 1 file"), "{r}");
}

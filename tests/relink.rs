//! `bale checkout --relink` (spec, checkout point 6) between every pair of
//! link types, and the hint after a `cache.type` change (point 7).
//!
//! Reflink tests need a folder on an XFS mount with reflink=1 in
//! `BALE_TEST_XFS`; without it they print "SKIPPED: ..." and pass.

mod common;

use std::fs;
use std::path::Path;

use common::{Repo, Run, assert_linked_as, extents, stamp_changes, stamps, temp_files};

const TYPES: [&str; 3] = ["hardlink", "symlink", "copy"];

/// One file of a sample tree: path, content, executable.
struct File {
    rel: String,
    content: Vec<u8>,
    executable: bool,
}

/// Writes `n` plain files under `out` (two folders deep; when `dup`, the
/// last one repeats the first one's content) and, when `with_exec`, an
/// executable script.
fn sample(repo: &Repo, out: &str, n: usize, dup: bool, with_exec: bool) -> Vec<File> {
    let mut files = Vec::new();
    for i in 0..n {
        let rel = match i % 3 {
            0 => format!("{out}/f{i:02}"),
            1 => format!("{out}/sub/f{i:02}"),
            _ => format!("{out}/sub/deep/f{i:02}"),
        };
        // A few KiB each, so that reflinks have real extents to share.
        let seed = if dup && i + 1 == n && n > 1 { 0 } else { i };
        let content: Vec<u8> = format!("file {seed} of {out}\n")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(3000 + seed * 17)
            .collect();
        repo.write(&rel, &content);
        files.push(File {
            rel,
            content,
            executable: false,
        });
    }
    if with_exec {
        let rel = format!("{out}/bin/run.sh");
        let content = format!("#!/bin/sh\necho {out}\n").into_bytes();
        repo.write_exec(&rel, &content);
        files.push(File {
            rel,
            content,
            executable: true,
        });
    }
    files
}

fn assert_all_linked_as(repo: &Repo, files: &[File], t: &str) {
    for f in files {
        assert_linked_as(repo, &f.rel, &f.content, t, f.executable);
    }
}

/// The numbers of `<key>: unchanged; relinked N files, M already right`.
#[track_caller]
fn relink_counts(run: &Run, key: &str) -> (usize, usize) {
    let prefix = format!("{key}: unchanged; relinked ");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}...` line:\n{run}"));
    let rest = &line[prefix.len()..];
    let (n, rest) = rest.split_once(' ').unwrap();
    let rest = rest
        .strip_prefix("files, ")
        .or_else(|| rest.strip_prefix("file, "))
        .unwrap_or_else(|| panic!("malformed line {line:?}"));
    let m = rest
        .strip_suffix(" already right")
        .unwrap_or_else(|| panic!("malformed line {line:?}"));
    let (n, m) = (n.parse().unwrap(), m.parse().unwrap());
    let word = if n == 1 { "file" } else { "files" };
    assert_eq!(
        line,
        format!("{key}: unchanged; relinked {n} {word}, {m} already right"),
        "{run}"
    );
    (n, m)
}

/// Sets `cache.type` with `bale config` and returns the run (its hint).
fn set_type(repo: &Repo, t: &str) -> Run {
    repo.bale(&["config", "cache.type", t]).ok()
}

/// Non-directory stamps under `dir`: what relinking another file must not
/// change (the probe that settles the chain may touch folders).
fn file_stamps(dir: &Path) -> std::collections::BTreeMap<String, common::Stamp> {
    stamps(dir).into_iter().filter(|(_, s)| !s.is_dir).collect()
}

/// From `from` to `to` in a repository under `base`: add with `from`,
/// switch `cache.type`, check that the hint shows and that plain commands
/// leave the links alone, then `checkout --relink` and check every file.
/// `dup`: two of the files have the same content.
fn relink_pair(base: &Path, from: &str, to: &str, dup: bool) {
    let what = format!("{from} -> {to}");
    let repo = Repo::new_in(base);
    repo.cache_type(from);
    let files = sample(&repo, "data", 9, dup, true);
    let plain = files.iter().filter(|f| !f.executable).count();
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    assert_all_linked_as(&repo, &files, from);
    let before = file_stamps(&repo.path("data"));

    set_type(&repo, to).assert_relink_hint();
    let st = repo.bale(&["status"]).ok();
    assert_eq!(st.stdout, "data: unchanged\n", "{what}: {st}");
    st.assert_relink_hint();
    let co = repo.bale(&["checkout"]).ok();
    assert_eq!(co.stdout, "data: unchanged\n", "{what}: {co}");
    co.assert_relink_hint();
    let changed = stamp_changes(&before, &file_stamps(&repo.path("data")));
    assert!(
        changed.is_empty(),
        "{what}: checkout without --relink touched: {changed:#?}"
    );

    let co = repo.bale(&["checkout", "--relink"]).ok();
    co.assert_no_hint();
    let (n, m) = relink_counts(&co, "data");
    assert_eq!(n + m, files.len(), "{what}: {co}");
    assert!(
        n >= plain,
        "{what}: every plain file had to be relinked:\n{co}"
    );
    assert_all_linked_as(&repo, &files, to);
    assert!(temp_files(&repo.path("data")).is_empty(), "{what}");

    let st = repo.bale(&["status"]).ok();
    assert_eq!(st.stdout, "data: unchanged\n", "{what}: {st}");
    st.assert_no_hint();
    let co = repo.bale(&["checkout"]).ok();
    assert_eq!(co.stdout, "data: unchanged\n", "{what}: {co}");
    co.assert_no_hint();
}

#[test]
fn relink_between_every_pair_of_hardlink_symlink_and_copy() {
    let base = std::env::temp_dir();
    for from in TYPES {
        for to in TYPES {
            if from != to {
                relink_pair(&base, from, to, true);
            }
        }
    }
}

#[test]
#[ignore = "needs BALE_TEST_XFS (an XFS mount with reflink=1), set by .ci/run"]
fn relink_to_and_from_reflink() {
    let base = common::xfs_base();
    for (from, to) in [
        ("copy", "reflink"),
        ("reflink", "hardlink"),
        ("hardlink", "reflink"),
        ("reflink", "symlink"),
        ("symlink", "reflink"),
        ("reflink", "copy"),
    ] {
        // Without duplicates: see `reflinked_duplicates_share_their_object`.
        relink_pair(&base, from, to, false);
    }
}

/// A reflink turned into a copy no longer shares its extents.
#[test]
#[ignore = "needs BALE_TEST_XFS (an XFS mount with reflink=1), set by .ci/run"]
fn relink_from_reflink_to_copy_unshares_the_extents() {
    let base = common::xfs_base();
    let repo = Repo::new_in(&base);
    let files = sample(&repo, "data", 3, false, false);
    let add = repo.bale(&["add", "data"]).ok();
    assert!(add.stdout.contains("linked as reflink"), "{add}");
    repo.settle();
    assert_all_linked_as(&repo, &files, "reflink");
    set_type(&repo, "copy");
    repo.bale(&["checkout", "--relink"]).ok();
    assert_all_linked_as(&repo, &files, "copy");
    for f in &files {
        let e = extents(&repo.path(&f.rel));
        assert!(
            !e.is_empty() && e.iter().all(|(_, _, flags)| !flags.contains("shared")),
            "{}: {e:?}",
            f.rel
        );
    }
}

/// The default chain on a file system with reflinks: files are reflinks,
/// nothing to hint, nothing to relink.
#[test]
#[ignore = "needs BALE_TEST_XFS (an XFS mount with reflink=1), set by .ci/run"]
fn the_default_chain_on_xfs_is_reflink_and_needs_no_relink() {
    let base = common::xfs_base();
    let repo = Repo::new_in(&base);
    let files = sample(&repo, "data", 6, false, true);
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    assert_all_linked_as(&repo, &files, "reflink");
    repo.bale(&["status"]).ok().assert_no_hint();
    let co = repo.bale(&["checkout", "--relink"]).ok();
    co.assert_no_hint();
    assert_eq!(relink_counts(&co, "data"), (0, files.len()), "{co}");
}

/// Which of `files` were rewritten between two `file_stamps()`: another
/// inode or another mtime (a new link to the same object changes only the
/// ctime, which `relink_leaves_right_files_untouched` checks).
fn rewritten(
    before: &std::collections::BTreeMap<String, common::Stamp>,
    after: &std::collections::BTreeMap<String, common::Stamp>,
) -> Vec<String> {
    before
        .iter()
        .filter(|(k, b)| {
            after
                .get(*k)
                .is_none_or(|a| (a.ino, a.mtime) != (b.ino, b.mtime))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Relinks `data` (9 files, one duplicate, no executable) and a file out
/// from `from` to `to`, then relinks again: the second must find every file
/// right and rewrite none. Returns the repository.
fn second_relink(base: &Path, from: &str, to: &str) {
    let what = format!("{from} -> {to}");
    let repo = Repo::new_in(base);
    repo.cache_type(from);
    let files = sample(&repo, "data", 9, true, false);
    repo.write("model.bin", "a single-file out\n");
    repo.bale(&["add", "-q", "data", "model.bin"]).ok();
    repo.settle();
    repo.cache_type(to);
    let first = repo.bale(&["checkout", "--relink"]).ok();
    assert_eq!(relink_counts(&first, "data"), (9, 0), "{what}");
    assert_eq!(relink_counts(&first, "model.bin"), (1, 0), "{what}");
    let before = file_stamps(&repo.root);
    let second = repo.bale(&["checkout", "--relink"]).ok();
    assert_eq!(
        (
            relink_counts(&second, "data"),
            relink_counts(&second, "model.bin")
        ),
        ((0, 9), (0, 1)),
        "{what}: the second --relink relinked again:\n{second}"
    );
    let redone = rewritten(&before, &file_stamps(&repo.root));
    assert!(redone.is_empty(), "{what}: rewritten: {redone:?}");
    assert_all_linked_as(&repo, &files, to);
}

/// Two files with the same content, added with `reflink`: both are linked
/// to the one object (sharing its extents), like every other type links
/// both; and if not, the snapshot must not claim they are reflinks, so
/// that `--relink` makes them so.
#[test]
#[ignore = "needs BALE_TEST_XFS (an XFS mount with reflink=1), set by .ci/run"]
fn reflinked_duplicates_share_their_object() {
    let base = common::xfs_base();
    let repo = Repo::new_in(&base);
    repo.cache_type("reflink");
    let files = sample(&repo, "data", 3, true, false);
    assert_eq!(files[0].content, files[2].content);
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    let co = repo.bale(&["checkout", "--relink"]).ok();
    let shared: Vec<(&str, bool)> = files
        .iter()
        .map(|f| {
            let p = repo.path(&f.rel);
            (
                f.rel.as_str(),
                common::shares_extents(&p, &repo.object_for(&f.content)),
            )
        })
        .collect();
    assert!(
        shared.iter().all(|(_, s)| *s),
        "after add and checkout --relink, files not sharing their object: {shared:?}\n{co}"
    );
}

#[test]
fn a_second_relink_to_hardlink_or_symlink_relinks_nothing() {
    let base = std::env::temp_dir();
    for (from, to) in [
        ("copy", "hardlink"),
        ("symlink", "hardlink"),
        ("copy", "symlink"),
        ("hardlink", "symlink"),
    ] {
        second_relink(&base, from, to);
    }
}

/// Copies cannot be told from reflinks by a stat, so a private file counts
/// as right only if the snapshot says so. The files a `--relink` just wrote
/// are in that snapshot: relinking again right after must not redo them.
/// (Several rounds: a file written in the same tick of the file system's
/// clock as the snapshot is the case that must not fail.)
#[test]
fn a_second_relink_to_copy_relinks_nothing() {
    let base = std::env::temp_dir();
    for round in 0..8 {
        let from = if round % 2 == 0 {
            "hardlink"
        } else {
            "symlink"
        };
        second_relink(&base, from, "copy");
    }
}

#[test]
#[ignore = "needs BALE_TEST_XFS (an XFS mount with reflink=1), set by .ci/run"]
fn a_second_relink_to_or_from_reflink_relinks_nothing() {
    let base = common::xfs_base();
    second_relink(&base, "reflink", "hardlink");
    for round in 0..8 {
        let from = if round % 2 == 0 { "copy" } else { "hardlink" };
        second_relink(&base, from, "reflink");
    }
}

/// An executable is never hardlinked or symlinked: under either type it is
/// a private 0755 copy, which is exactly what the type asks of it. So a
/// relink to hardlink or symlink, and a second relink, leave it alone and
/// count it as right.
#[test]
fn executables_already_private_copies_are_left_alone_by_relink() {
    for (from, to) in [
        ("copy", "hardlink"),
        ("copy", "symlink"),
        ("hardlink", "symlink"),
        ("symlink", "hardlink"),
    ] {
        let what = format!("{from} -> {to}");
        let repo = Repo::new();
        repo.cache_type(from);
        let files = sample(&repo, "data", 3, false, true);
        repo.bale(&["add", "-q", "data"]).ok();
        repo.settle();
        let exec = repo.path("data/bin/run.sh");
        let before = common::stamp(&exec);
        repo.cache_type(to);
        let co = repo.bale(&["checkout", "--relink"]).ok();
        assert_all_linked_as(&repo, &files, to);
        assert_eq!(
            (relink_counts(&co, "data"), common::stamp(&exec).ino),
            ((3, 1), before.ino),
            "{what}: the executable, already a private copy, was rewritten:\n{co}"
        );
        let again = repo.bale(&["checkout", "--relink"]).ok();
        assert_eq!(
            (relink_counts(&again, "data"), common::stamp(&exec).ino),
            ((0, 4), before.ino),
            "{what}: a second --relink rewrote the executable:\n{again}"
        );
        assert_all_linked_as(&repo, &files, to);
    }
}

/// Files already of the configured type keep their inode, mtime and ctime:
/// relink neither rewrites them nor links their objects elsewhere.
#[test]
fn relink_leaves_right_files_untouched() {
    // hardlink and symlink: one file of a linked out turned into a copy.
    for t in ["hardlink", "symlink"] {
        let repo = Repo::new();
        repo.cache_type(t);
        let files = sample(&repo, "data", 9, false, false);
        repo.bale(&["add", "-q", "data"]).ok();
        repo.settle();
        // f03 has content of its own (no other file shares its object).
        repo.bale(&["unprotect", "-q", "data/f03"]).ok();
        assert_linked_as(&repo, "data/f03", &files[3].content, "copy", false);
        let mut before = file_stamps(&repo.path("data"));
        before.remove("f03");
        let co = repo.bale(&["checkout", "--relink"]).ok();
        assert_eq!(relink_counts(&co, "data"), (1, 8), "{t}");
        let mut after = file_stamps(&repo.path("data"));
        after.remove("f03");
        let changed = stamp_changes(&before, &after);
        assert!(
            changed.is_empty(),
            "{t}: right files were touched: {changed:#?}\n{co}"
        );
        assert_all_linked_as(&repo, &files, t);
    }

    // copy: two outs, one relinked to hardlinks and back, the other left.
    let repo = Repo::new();
    repo.cache_type("copy");
    let one = sample(&repo, "one", 6, true, false);
    let two = sample(&repo, "two", 6, true, false);
    repo.bale(&["add", "-q", "one", "two"]).ok();
    repo.settle();
    repo.cache_type("hardlink");
    let co = repo.bale(&["checkout", "--relink", "one"]).ok();
    assert_eq!(relink_counts(&co, "one"), (6, 0));
    assert_all_linked_as(&repo, &one, "hardlink");
    assert_all_linked_as(&repo, &two, "copy");
    // `two` still has copies: the hint names it, and only it.
    let st = repo.bale(&["status"]).ok();
    st.assert_relink_hint();
    let hint = st.hints().join("\n");
    assert!(hint.contains("two") && !hint.contains("one"), "{st}");

    repo.cache_type("copy");
    let before = file_stamps(&repo.path("two"));
    let co = repo.bale(&["checkout", "--relink"]).ok();
    assert_eq!(relink_counts(&co, "one"), (6, 0), "{co}");
    assert_eq!(relink_counts(&co, "two"), (0, 6), "{co}");
    let changed = stamp_changes(&before, &file_stamps(&repo.path("two")));
    assert!(
        changed.is_empty(),
        "right copies were touched: {changed:#?}"
    );
    assert_all_linked_as(&repo, &one, "copy");
    assert_all_linked_as(&repo, &two, "copy");
}

/// The snapshot a `--relink` records matches the tree it leaves, so the
/// next checkout takes the unchanged-skip (it does not need the manifest).
/// Hardlinks only: their mtime is the object's, older than the snapshot,
/// whereas new symlinks and copies may be racy (same clock tick as the
/// snapshot), which rightly defeats the skip once. No duplicate content:
/// see `the_snapshot_after_hardlinking_duplicates_matches_the_tree`.
#[test]
fn the_checkout_after_a_relink_takes_the_skip() {
    let repo = Repo::new();
    repo.cache_type("copy");
    sample(&repo, "data", 6, false, false);
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    repo.cache_type("hardlink");
    // First every file is relinked, then every file is already right.
    for round in ["relinking all", "relinking none"] {
        let relink = repo.bale(&["checkout", "--relink"]).ok();
        let manifest = repo.pointer_object("data.bale");
        let saved = fs::read(&manifest).unwrap();
        fs::remove_file(&manifest).unwrap();
        let co = repo.bale(&["checkout"]);
        assert_eq!(
            (co.code, co.stdout.as_str()),
            (Some(0), "data: unchanged\n"),
            "after {round}, the snapshot does not match the tree:\n{relink}\n{co}"
        );
        common::write_file(&manifest, &saved, 0o444);
    }
}

#[test]
fn relink_refuses_to_destroy_an_edit_not_in_the_cache() {
    let repo = Repo::new();
    repo.cache_type("copy");
    let files = sample(&repo, "data", 6, true, false);
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    repo.cache_type("hardlink");
    fs::write(repo.path("data/sub/f01"), "an edit in no cache\n").unwrap();
    repo.write("data/untracked", "dropped in by hand\n");
    let before = file_stamps(&repo.path("data"));

    let co = repo.bale(&["checkout", "--relink"]).fails();
    for p in ["data/sub/f01", "data/untracked"] {
        assert!(
            co.stderr.lines().any(|l| l.trim() == p),
            "must name {p}:\n{co}"
        );
    }
    assert!(co.hints().iter().any(|h| h.contains("--force")), "{co}");
    let changed = stamp_changes(&before, &file_stamps(&repo.path("data")));
    assert!(
        changed.is_empty(),
        "a refused relink changed files: {changed:#?}"
    );
    assert_eq!(repo.read_string("data/sub/f01"), "an edit in no cache\n");
    for f in files.iter().filter(|f| f.rel != "data/sub/f01") {
        assert_linked_as(&repo, &f.rel, &f.content, "copy", false);
    }

    // With --force the edit goes and everything is relinked.
    repo.bale(&["checkout", "--relink", "--force"]).ok();
    assert_all_linked_as(&repo, &files, "hardlink");
    assert!(!repo.path("data/untracked").exists());
}

#[test]
fn relink_works_on_a_file_out() {
    for (from, to) in [
        ("copy", "hardlink"),
        ("hardlink", "symlink"),
        ("symlink", "copy"),
        ("copy", "symlink"),
    ] {
        let what = format!("{from} -> {to}");
        let repo = Repo::new();
        repo.cache_type(from);
        let content = b"a model, tracked as a single file\n";
        repo.write("models/model.bin", content);
        repo.bale(&["add", "-q", "models/model.bin"]).ok();
        repo.settle();
        assert_linked_as(&repo, "models/model.bin", content, from, false);
        repo.cache_type(to);
        repo.bale(&["status"]).ok().assert_relink_hint();
        let co = repo
            .bale(&["checkout", "--relink", "models/model.bin"])
            .ok();
        assert_eq!(relink_counts(&co, "models/model.bin"), (1, 0), "{what}");
        assert_linked_as(&repo, "models/model.bin", content, to, false);
        let st = repo.bale(&["status"]).ok();
        assert_eq!(st.stdout, "models/model.bin: unchanged\n", "{what}: {st}");
        st.assert_no_hint();
        // (A second relink to copy is `a_second_relink_to_copy_relinks_nothing`.)
        if to != "copy" {
            let again = repo.bale(&["checkout", "--relink"]).ok();
            assert_eq!(relink_counts(&again, "models/model.bin"), (0, 1), "{what}");
        }
    }
    // An executable file out stays a private 0755 copy.
    let repo = Repo::new();
    repo.cache_type("copy");
    let script = b"#!/bin/sh\necho tool\n";
    repo.write_exec("tool.sh", script);
    repo.bale(&["add", "-q", "tool.sh"]).ok();
    repo.settle();
    repo.cache_type("hardlink");
    let co = repo.bale(&["checkout", "--relink"]).ok();
    relink_counts(&co, "tool.sh");
    assert_linked_as(&repo, "tool.sh", script, "hardlink", true);
}

// ---- the hint ----

#[test]
fn config_hints_only_when_cache_type_changes() {
    let repo = Repo::new();
    // Nothing tracked yet: nothing to relink, no hint.
    set_type(&repo, "copy").assert_no_hint();
    sample(&repo, "data", 3, false, false);
    repo.bale(&["add", "-q", "data"]).ok();
    let set = set_type(&repo, "hardlink");
    set.assert_relink_hint();
    assert!(
        set.stderr.lines().all(|l| l.starts_with("hint:")),
        "only a hint on stderr:\n{set}"
    );
    set_type(&repo, "hardlink").assert_no_hint();
    set_type(&repo, "symlink").assert_relink_hint();
    set_type(&repo, "symlink").assert_no_hint();
    // Back to the type the files have: nothing to relink.
    set_type(&repo, "copy").assert_no_hint();
}

#[test]
fn a_hand_edited_cache_type_makes_status_and_checkout_hint_until_relinked() {
    let repo = Repo::new();
    let files = sample(&repo, "data", 6, true, true);
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    repo.bale(&["status"]).ok().assert_no_hint();
    repo.bale(&["checkout"]).ok().assert_no_hint();

    // As if pulled from git: no `bale config`, so no hint from it.
    fs::write(repo.path(".bale/config.yaml"), "cache:\n  type: hardlink\n").unwrap();
    let st = repo.bale(&["status"]).ok();
    assert_eq!(st.stdout, "data: unchanged\n", "{st}");
    st.assert_relink_hint();
    assert!(st.hints().iter().any(|h| h.contains("data")), "{st}");
    let co = repo.bale(&["checkout"]).ok();
    assert_eq!(co.stdout, "data: unchanged\n", "{co}");
    co.assert_relink_hint();
    // Quiet still shows hints.
    repo.bale(&["-q", "status"]).ok().assert_relink_hint();

    let co = repo.bale(&["checkout", "--relink"]).ok();
    co.assert_no_hint();
    assert_all_linked_as(&repo, &files, "hardlink");
    repo.bale(&["status"]).ok().assert_no_hint();
    repo.bale(&["checkout"]).ok().assert_no_hint();

    // Back to the type the files have: no hint, nothing to relink.
    fs::write(repo.path(".bale/config.yaml"), "cache:\n  type: symlink\n").unwrap();
    repo.bale(&["status"]).ok().assert_relink_hint();
    fs::write(repo.path(".bale/config.yaml"), "cache:\n  type: hardlink\n").unwrap();
    repo.bale(&["status"]).ok().assert_no_hint();
}

/// `reflink,copy` on ext4 (the temp folder) falls back to copy: that is not
/// a type change, and neither is setting `copy` afterwards.
#[test]
fn the_default_chain_falling_back_to_copy_never_hints() {
    let repo = Repo::new();
    let files = sample(&repo, "data", 6, true, true);
    let add = repo.bale(&["add", "data"]).ok();
    add.assert_no_hint();
    if !add.stdout.contains("linked as copy") {
        eprintln!(
            "SKIPPED: the temp folder supports reflinks; \
             the_default_chain_falling_back_to_copy_never_hints did not run"
        );
        return;
    }
    repo.settle();
    assert_all_linked_as(&repo, &files, "copy");
    for _ in 0..2 {
        repo.bale(&["status"]).ok().assert_no_hint();
        repo.bale(&["checkout"]).ok().assert_no_hint();
    }
    // The chain settles on copy: nothing to relink, every time.
    for _ in 0..2 {
        let co = repo.bale(&["checkout", "--relink"]).ok();
        co.assert_no_hint();
        assert_eq!(relink_counts(&co, "data"), (0, files.len()), "{co}");
    }

    // Neither `bale config`, status nor checkout hint: the new chain starts
    // with the type the files have.
    set_type(&repo, "copy").assert_no_hint();
    let st = repo.bale(&["status"]).ok();
    assert_eq!(st.stdout, "data: unchanged\n", "{st}");
    st.assert_no_hint();
    repo.bale(&["checkout"]).ok().assert_no_hint();
}

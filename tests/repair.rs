//! A checkout that repairs a few files of an out whose snapshot names the
//! pointer's manifest plans only the files whose stat departed from the
//! snapshot, looks their entries up in the manifest without decoding the
//! rest, and splices their new rows into the old snapshot. These tests hold
//! it to what a plan of the whole out does: the same workspace, and a
//! snapshot that describes the tree exactly (every row the stat and the
//! content of its file, every file a row), under every link type.
//!
//! A folder out made where nothing stands (after `rm -rf`) is built in a
//! staging folder under `.bale/tmp/` and renamed into place: the same
//! checks hold for it, and it leaves nothing behind there.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use bale::fsutil::stat::content_stat;
use bale::hash::Hash;
use bale::state::StateDb;
use common::Repo;

const TYPES: [&str; 3] = ["copy", "hardlink", "symlink"];

/// 3 folders of 10 files, two of them sharing their content with a file
/// elsewhere (hard links of one object share an inode). Returns (path,
/// content) of every file.
fn tree(repo: &Repo) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for d in 0..3 {
        for f in 0..10 {
            let rel = format!("data/d{d}/f{f}");
            let content = format!("file {d}/{f}\n").into_bytes();
            repo.write(&rel, &content);
            files.push((rel, content));
        }
    }
    for (rel, same_as) in [("data/d0/twin", "file 1/1\n"), ("data/top", "file 2/2\n")] {
        repo.write(rel, same_as);
        files.push((rel.to_owned(), same_as.as_bytes().to_vec()));
    }
    files.sort();
    files
}

fn setup(t: &str) -> (Repo, Vec<(String, Vec<u8>)>) {
    let repo = Repo::new();
    repo.cache_type(t);
    let files = tree(&repo);
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    (repo, files)
}

/// The workspace holds exactly `files`, each with its content and not
/// executable.
#[track_caller]
fn assert_workspace(repo: &Repo, files: &[(String, Vec<u8>)], when: &str) {
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(repo.path("data")).sort_by_file_name() {
        let e = e.unwrap();
        if !e.file_type().is_dir() {
            let rel = e.path().strip_prefix(repo.path("")).unwrap();
            found.push(rel.to_str().unwrap().to_owned());
        }
    }
    let want: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(found, want, "{when}: the files of the workspace");
    for (rel, content) in files {
        assert_eq!(&repo.read(rel), content, "{when}: content of {rel}");
        let m = fs::metadata(repo.path(rel)).unwrap();
        assert_eq!(m.permissions().mode() & 0o111, 0, "{when}: {rel} mode");
    }
}

/// The snapshot of `data` describes the tree as it is: one row per file, in
/// order, each with the file's stat now (a symlink: its target's) and the
/// hash of its content.
#[track_caller]
fn assert_snapshot_exact(repo: &Repo, files: &[(String, Vec<u8>)], when: &str) {
    let db = StateDb::open(&repo.path(".bale/state.db")).unwrap();
    let s = db.load("data").unwrap().expect("a snapshot of data");
    assert_eq!(
        repo.pointer_hash("data.bale"),
        s.hash.to_string(),
        "{when}: the snapshot's manifest"
    );
    let rows: Vec<_> = s.entries().collect();
    assert_eq!(rows.len(), s.len(), "{when}: the snapshot's count");
    let paths: Vec<String> = rows.iter().map(|r| format!("data/{}", r.path)).collect();
    let want: Vec<&String> = files.iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths.iter().collect::<Vec<_>>(),
        want,
        "{when}: the snapshot's files"
    );
    for (r, (rel, content)) in rows.iter().zip(files) {
        let now = content_stat(&repo.path(rel)).unwrap();
        let strip =
            |s: bale::fsutil::FileStat| (s.kind, s.mode, s.size, s.mtime_ns, s.ctime_ns, s.ino);
        assert_eq!(strip(r.stat), strip(now), "{when}: the row of {rel}");
        assert_eq!(r.hash, Hash::of_bytes(content), "{when}: the hash of {rel}");
    }
}

/// With the manifest gone from the cache, a checkout must still succeed:
/// the tree reproduces its snapshot and is skipped unread. The manifest is
/// put back afterwards.
#[track_caller]
fn assert_next_checkout_skips(repo: &Repo, when: &str) {
    let obj = repo.pointer_object("data.bale");
    let kept = repo.outside().join("manifest");
    fs::copy(&obj, &kept).unwrap();
    fs::remove_file(&obj).unwrap();
    let co = repo.bale(&["checkout"]);
    fs::copy(&kept, &obj).unwrap();
    let co = co.ok();
    assert_eq!(co.stdout, "data: unchanged\n", "{when}:\n{co}");
}

/// Runs a repair after `damage` and checks where it ends.
fn repair(t: &str, what: &str, damage: impl Fn(&Repo), force: bool) {
    let (repo, files) = setup(t);
    let when = format!("{t}, {what}");
    damage(&repo);
    let args: &[&str] = if force {
        &["checkout", "--force"]
    } else {
        &["checkout"]
    };
    repo.bale(args).ok();
    assert_workspace(&repo, &files, &when);
    assert_snapshot_exact(&repo, &files, &when);
    // Copies made now may have the snapshot's clock tick as mtime: those
    // rows are read again by the next command, rightly. Hard links and
    // symlinks keep the objects' older stat.
    if t != "copy" {
        assert_next_checkout_skips(&repo, &when);
    }
    let st = repo.bale(&["status"]).ok();
    assert!(st.stdout.contains("unchanged"), "{when}: {st}");
}

fn remove(repo: &Repo, rel: &str) {
    fs::remove_file(repo.path(rel)).unwrap();
}

#[test]
fn a_deleted_and_an_edited_file_are_put_back() {
    for t in TYPES {
        repair(
            t,
            "1 deleted + 1 edited",
            |r| {
                remove(r, "data/d1/f3");
                remove(r, "data/d1/f4");
                r.write("data/d1/f4", "edited\n");
            },
            true,
        );
    }
}

#[test]
fn a_file_sharing_an_inode_with_a_relinked_one_gets_its_new_stat() {
    // "data/d0/twin" has the content of "data/d1/f1": as hard links they
    // are one inode, so removing the twin departs both from the snapshot,
    // and relinking the twin changes the other's ctime and link count once
    // more, after it was looked at. Its row must have the stat it ends with.
    for t in TYPES {
        repair(t, "a twin deleted", |r| remove(r, "data/d0/twin"), false);
        repair(
            t,
            "both twins of top deleted",
            |r| {
                remove(r, "data/top");
                remove(r, "data/d2/f2");
            },
            false,
        );
    }
}

#[test]
fn a_removed_folder_is_made_again() {
    for t in TYPES {
        repair(
            t,
            "a folder removed",
            |r| fs::remove_dir_all(r.path("data/d2")).unwrap(),
            false,
        );
    }
}

#[test]
fn a_mode_change_and_a_touch_are_repaired_or_kept() {
    for t in ["copy", "hardlink"] {
        repair(
            t,
            "chmod +x",
            |r| {
                let p = r.path("data/d0/f1");
                let mut perm = fs::metadata(&p).unwrap().permissions();
                perm.set_mode(perm.mode() | 0o111);
                fs::set_permissions(&p, perm).unwrap();
            },
            false,
        );
        repair(
            t,
            "touched",
            |r| {
                let p = r.path("data/d0/f2");
                let earlier = filetime::FileTime::from_unix_time(1_000_000_000, 0);
                filetime::set_file_mtime(&p, earlier).unwrap();
            },
            false,
        );
    }
}

#[test]
fn new_files_and_a_file_turned_folder_are_planned_whole() {
    for t in TYPES {
        repair(t, "a new file", |r| drop(r.write("data/d1/new", "x")), true);
        repair(
            t,
            "a file turned into a folder",
            |r| {
                remove(r, "data/d2/f5");
                r.write("data/d2/f5/inside", "y");
            },
            true,
        );
    }
}

#[test]
fn a_repair_refuses_to_drop_an_edit_that_is_not_in_the_cache() {
    let (repo, _) = setup("hardlink");
    remove(&repo, "data/d0/f0");
    repo.write("data/d0/f0", "mine\n");
    remove(&repo, "data/d0/f1");
    let co = repo.bale(&["checkout"]).code(1);
    assert!(co.stderr.contains("data/d0/f0"), "{co}");
    assert_eq!(repo.read("data/d0/f0"), b"mine\n");
    assert!(
        !repo.path("data/d0/f1").exists(),
        "a refused checkout changes nothing"
    );
}

/// The repair also holds when the object of a departed file is gone from
/// the cache: it is reported and nothing of the out is replaced.
#[test]
fn a_repair_whose_object_is_missing_changes_nothing() {
    let (repo, _) = setup("copy");
    remove(&repo, "data/d0/f3");
    remove(&repo, "data/d0/f4");
    repo.write("data/d0/f4", "edited\n");
    fs::remove_file(repo.object_for(b"file 0/3\n")).unwrap();
    let co = repo.bale(&["checkout", "--force"]).code(1);
    assert!(co.stderr.contains("data/d0/f3"), "{co}");
    assert_eq!(repo.read("data/d0/f4"), b"edited\n", "{co}");
}

/// A snapshot that names a file its manifest does not hold (it cannot
/// have been made from that manifest) is not trusted for the others: the
/// out is planned whole, and ends right.
#[test]
fn a_snapshot_that_disagrees_with_its_manifest_sends_the_out_to_a_whole_plan() {
    use bale::state::{Snapshot, SnapshotEntries};
    let (repo, files) = setup("hardlink");
    let mut db = StateDb::open(&repo.path(".bale/state.db")).unwrap();
    let s = db.load("data").unwrap().unwrap();
    let mut rows: Vec<_> = s.entries().map(bale::state::OwnedEntry::from).collect();
    let mut ghost = rows[0].clone();
    ghost.path = "d0/ghost".into();
    rows.push(ghost);
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    let mut entries = SnapshotEntries::with_capacity(rows.len());
    for r in &rows {
        entries.push(&r.as_entry());
    }
    let forged = Snapshot::new(
        s.hash,
        s.link_type,
        s.cache_type.clone(),
        s.taken_ns,
        entries,
    );
    db.save(&[("data".into(), forged)], &[]).unwrap();
    drop(db);
    remove(&repo, "data/d1/f1");
    repo.bale(&["checkout"]).ok();
    assert_workspace(&repo, &files, "a forged snapshot");
    assert_snapshot_exact(&repo, &files, "a forged snapshot");
}

/// The folders in `.bale/tmp/` (staging folders of checkouts).
fn staged_leftovers(repo: &Repo) -> Vec<String> {
    fs::read_dir(repo.path(".bale/tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_out_made_where_nothing_stands_is_staged_and_renamed_into_place() {
    for t in TYPES {
        let (repo, files) = setup(t);
        fs::remove_dir_all(repo.path("data")).unwrap();
        repo.bale(&["checkout"]).ok();
        let when = format!("{t}, after rm -rf");
        assert_workspace(&repo, &files, &when);
        assert_snapshot_exact(&repo, &files, &when);
        assert!(
            staged_leftovers(&repo).is_empty(),
            "{when}: {:?}",
            staged_leftovers(&repo)
        );
        if t != "copy" {
            assert_next_checkout_skips(&repo, &when);
        }
    }
}

#[test]
fn a_staged_out_with_a_missing_object_keeps_the_files_it_could_make() {
    let (repo, mut files) = setup("copy");
    fs::remove_dir_all(repo.path("data")).unwrap();
    fs::remove_file(repo.object_for(b"file 0/3\n")).unwrap();
    let co = repo.bale(&["checkout"]).code(1);
    assert!(co.stderr.contains("data/d0/f3"), "{co}");
    files.retain(|(p, _)| p != "data/d0/f3");
    assert_workspace(&repo, &files, "one object missing");
    assert!(staged_leftovers(&repo).is_empty());
}

#[test]
fn a_staging_folder_left_by_a_killed_run_is_removed_and_a_live_ones_is_not() {
    let (repo, files) = setup("copy");
    // No process has a pid above the kernel's limit (at most 2^22).
    let dead = repo.path(".bale/tmp/.bale-tmp.4194305.abcdefghijkl");
    let live = repo.path(&format!(
        ".bale/tmp/.bale-tmp.{}.abcdefghijkl",
        std::process::id()
    ));
    let mine = repo.path(".bale/tmp/.bale-tmp.notes");
    for d in [&dead, &live, &mine] {
        fs::create_dir_all(d.join("d0")).unwrap();
        fs::write(d.join("d0/f0"), "left\n").unwrap();
    }
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_workspace(&repo, &files, "beside leftovers");
    assert!(!dead.exists(), "a dead run's staging folder is removed");
    assert!(
        live.join("d0/f0").is_file(),
        "a live process's folder stays"
    );
    assert!(
        mine.join("d0/f0").is_file(),
        "a folder not named by bale stays"
    );
}

#[test]
fn copies_get_their_mode_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    for umask in ["077", "022", "000"] {
        let (repo, _) = setup("copy");
        repo.write_exec("data/d0/run.sh", "#!/bin/sh\n");
        repo.bale(&["commit", "-q", "data"]).ok();
        fs::remove_dir_all(repo.path("data")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" checkout -q"))
            .arg(env!("CARGO_BIN_EXE_bale"))
            .current_dir(repo.path(""))
            .output()
            .unwrap();
        assert!(out.status.success(), "umask {umask}: {out:?}");
        let mode = |rel: &str| fs::metadata(repo.path(rel)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("data/d1/f1"), 0o644, "umask {umask}");
        assert_eq!(mode("data/d0/run.sh"), 0o755, "umask {umask}");
    }
}

//! Defects found on the built binary, in the core commands (add, commit,
//! checkout, status, fsck): each test pins one down, as the user met it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Repo, meta, mode};

// A file of the user's named like one of bale's temporary files is the
// user's: tracked, shown by status, never deleted by a plain checkout.
#[test]
fn a_user_file_named_like_a_temp_file_is_tracked_and_never_deleted() {
    let repo = Repo::new();
    let name = "data/.bale-tmp.1.abcdefghijkl";
    repo.write("data/a", "a");
    repo.write(name, "mine");
    repo.bale(&["add", "-q", "data"]).ok();
    assert_eq!(repo.pointer("data.bale")["outs"][0]["nfiles"], 2);
    fs::remove_file(repo.path("data/a")).unwrap();
    repo.bale(&["checkout", "-q"]).ok();
    assert_eq!(repo.read_string(name), "mine");

    // Dropped into the out after add: status shows it, checkout keeps it.
    let repo = Repo::new();
    repo.write("data/a", "a");
    repo.bale(&["add", "-q", "data"]).ok();
    repo.write(name, "mine");
    let st = repo.bale(&["status"]).ok();
    assert!(st.stdout.contains("1 added"), "{st}");
    let co = repo.bale(&["checkout"]).fails();
    assert!(co.stderr.contains(".bale-tmp.1.abcdefghijkl"), "{co}");
    assert_eq!(repo.read_string(name), "mine");
}

/// Tracks `inner/w.bin` and `data/`, then writes `evil.bale`: `data.bale`
/// with its path turned to `inner`.
fn pointer_naming_a_folder_of_outs(repo: &Repo) {
    repo.write("inner/w.bin", "w");
    repo.write("data/x", "x");
    repo.bale(&["add", "-q", "inner/w.bin", "data"]).ok();
    let evil = repo
        .read_string("data.bale")
        .replace("path: data", "path: inner");
    fs::write(repo.path("evil.bale"), evil).unwrap();
}

#[test]
fn a_pointer_naming_a_folder_that_holds_an_out_deletes_nothing() {
    let repo = Repo::new();
    pointer_naming_a_folder_of_outs(&repo);
    let before = repo.tree("inner");
    for args in [
        &["checkout", "--force"][..],
        &["checkout", "--force", "evil.bale"],
    ] {
        let r = repo.bale(args).fails();
        assert!(r.stderr.contains("evil.bale"), "{r}");
        assert_eq!(repo.tree("inner"), before, "{r}");
    }
    assert!(repo.path("inner/w.bin.bale").is_file());
    assert!(repo.path("inner/.gitignore").is_file());
}

#[test]
fn a_pointer_may_not_name_a_gitignore_a_pointer_file_or_a_path_inside_an_out() {
    let repo = Repo::new();
    repo.write("data/sub/x", "x");
    repo.write("f", "f");
    repo.bale(&["add", "-q", "data", "f"]).ok();
    let f = repo.read_string("f.bale");
    let gitignore = repo.read_string(".gitignore");
    for (name, path) in [
        ("a.bale", ".gitignore"),
        ("b.bale", "b.bale"),
        ("c.bale", "f.bale"),
        ("d.bale", "data/sub"),
    ] {
        fs::write(
            repo.path(name),
            f.replace("path: f", &format!("path: {path}")),
        )
        .unwrap();
        let r = repo.bale(&["checkout", "--force", name]).fails();
        assert!(r.stderr.contains(name), "{r}");
        let r = repo.bale(&["status", name]).fails();
        assert!(r.stderr.contains(name), "{r}");
        fs::remove_file(repo.path(name)).unwrap();
    }
    assert_eq!(repo.read_string(".gitignore"), gitignore);
    assert_eq!(repo.read_string("f.bale"), f);
    assert_eq!(repo.read_string("data/sub/x"), "x");
}

#[test]
fn two_pointer_files_claiming_one_out_are_an_error_naming_both() {
    let repo = Repo::new();
    repo.write("data/x", "x");
    repo.bale(&["add", "-q", "data"]).ok();
    fs::copy(repo.path("data.bale"), repo.path("other.bale")).unwrap();
    for args in [
        &["checkout"][..],
        &["status"],
        &["checkout", "other.bale"],
        &["commit"],
    ] {
        let r = repo.bale(args).fails();
        assert!(
            r.stderr.contains("data.bale") && r.stderr.contains("other.bale"),
            "{r}"
        );
    }
}

#[test]
fn symlinks_left_out_by_add_stay_left_out() {
    let repo = Repo::new();
    repo.write("data/a", "a");
    std::os::unix::fs::symlink("/etc/hostname", repo.path("data/link")).unwrap();
    let r = repo.bale(&["add", "data", "--skip-symlinks"]).ok();
    assert!(r.stderr.contains("data/link"), "{r}");
    let st = repo.bale(&["status"]).ok();
    assert!(st.stdout.contains("data: unchanged"), "{st}");
    repo.write("data/a", "a2");
    repo.bale(&["commit", "-q"]).ok();
    repo.bale(&["checkout", "--force", "-q"]).ok();
    assert!(meta(&repo.path("data/link")).file_type().is_symlink());
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
    // A second add keeps leaving it out, without the flag.
    repo.bale(&["add", "-q", "data"]).ok();
    assert!(meta(&repo.path("data/link")).file_type().is_symlink());
}

#[test]
fn a_file_with_another_hard_link_is_copied_into_the_cache_not_taken_over() {
    let repo = Repo::new();
    repo.cache_type("hardlink");
    let outside = repo.outside().join("shared.bin");
    fs::write(&outside, "v1").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(repo.path("data")).unwrap();
    fs::hard_link(&outside, repo.path("data/shared.bin")).unwrap();
    repo.bale(&["add", "-q", "data"]).ok();
    assert_eq!(mode(&outside), 0o644, "the outside file is left as it was");
    let object = repo.object_for(b"v1");
    assert_ne!(common::ino(&object), common::ino(&outside));
    // An edit outside does not reach the cache.
    fs::write(&outside, "v2").unwrap();
    assert_eq!(fs::read(&object).unwrap(), b"v1");
    let r = repo.bale(&["fsck"]).ok();
    assert!(r.stdout.contains("0 corrupt"), "{r}");
    assert_eq!(repo.read_string("data/shared.bin"), "v1");
}

/// `data/a` added with hardlinks, then written in place through its link:
/// its cache object changed with it.
fn edited_through_a_hard_link() -> Repo {
    let repo = Repo::new();
    repo.cache_type("hardlink");
    repo.write("data/a", "old content");
    repo.bale(&["add", "-q", "data"]).ok();
    let a = repo.path("data/a");
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&a, "new content").unwrap();
    repo
}

#[test]
fn commit_after_an_edit_in_place_of_a_hardlinked_file_succeeds() {
    let repo = edited_through_a_hard_link();
    let a = repo.path("data/a");
    let r = repo.bale(&["commit"]).ok();
    assert!(r.stdout.contains("committed"), "{r}");
    assert!(!r.stderr.contains("error:"), "{r}");
    assert!(r.stderr.contains("warning:"), "{r}");
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
    fs::remove_file(&a).unwrap();
    repo.bale(&["checkout", "-q"]).ok();
    assert_eq!(repo.read_string("data/a"), "new content");
}

#[test]
fn after_an_edit_through_a_link_the_hint_says_commit() {
    let repo = edited_through_a_hard_link();
    let r = repo.bale(&["status"]).fails();
    let hints: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("hint:"))
        .collect();
    assert!(hints.iter().any(|h| h.contains("bale commit")), "{r}");
    assert!(
        !hints.iter().any(|h| h.contains("remakes workspace files")),
        "{r}"
    );
}

#[test]
fn symlinks_into_a_moved_cache_are_relinked_without_force() {
    let repo = Repo::new();
    repo.cache_type("symlink");
    repo.write("data/a", "a");
    repo.write("data/sub/b", "b");
    repo.bale(&["add", "-q", "data"]).ok();
    let moved = repo.outside().join("moved-cache");
    fs::rename(repo.path(".bale/cache"), &moved).unwrap();
    repo.bale(&["config", "-q", "cache.dir", moved.to_str().unwrap()])
        .ok();
    let r = repo.bale(&["checkout"]).ok();
    assert!(r.stdout.contains("data: "), "{r}");
    for (p, content) in [("data/a", "a"), ("data/sub/b", "b")] {
        assert_eq!(repo.read_string(p), content);
        let target = fs::read_link(repo.path(p)).unwrap();
        assert!(target.starts_with(&moved), "{p} -> {}", target.display());
    }
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

/// A folder on a file system without reflinks: tmpfs.
fn no_reflink_base() -> Option<std::path::PathBuf> {
    let shm = Path::new("/dev/shm");
    shm.is_dir().then(|| shm.to_path_buf())
}

#[test]
fn a_reflink_only_chain_without_reflinks_says_why_once_with_a_fix() {
    let Some(base) = no_reflink_base() else {
        eprintln!("NOT RUN: no /dev/shm (tmpfs) to stand for a file system without reflinks");
        return;
    };
    let repo = Repo::new_in(&base);
    for i in 0..40 {
        repo.write(&format!("data/f{i:02}"), format!("file {i}"));
    }
    repo.bale(&["add", "-q", "data"]).ok();
    repo.cache_type("reflink");
    fs::remove_dir_all(repo.path("data")).unwrap();
    let r = repo.bale(&["checkout"]).fails();
    assert!(!r.stderr.contains("executable"), "{r}");
    let errors = r.stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert!(errors <= 3, "one cause, told once:\n{r}");
    assert!(r.stderr.contains("cache.type reflink,copy"), "{r}");
}

#[test]
fn checkout_of_a_path_inside_an_out_hints_at_the_whole_out() {
    let repo = Repo::new();
    repo.write("data/sub/x", "x");
    repo.bale(&["add", "-q", "data"]).ok();
    let r = repo.bale(&["checkout", "data/sub"]).fails();
    let hint = r
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or("");
    assert!(!hint.contains("bale add"), "{r}");
    assert!(!hint.contains(repo.root.to_str().unwrap()), "{r}");
    assert!(hint.contains("data"), "{r}");
}

#[test]
fn errors_name_paths_relative_to_the_current_folder() {
    let repo = Repo::new();
    repo.write("data/x", "x");
    repo.write("sub/keep", "k");
    repo.bale(&["add", "-q", "data"]).ok();
    fs::write(repo.path("data.bale"), "outs: [\n").unwrap();
    let r = repo.bale(&["status"]).fails();
    assert!(!r.stderr.contains(repo.root.to_str().unwrap()), "{r}");
    assert!(r.stderr.contains("data.bale"), "{r}");
    let r = common::bale_in(&repo.path("sub"), &["status", "../data"]).fails();
    assert!(!r.stderr.contains(repo.root.to_str().unwrap()), "{r}");
    assert!(r.stderr.contains("../data.bale"), "{r}");
}

#[test]
fn the_count_of_incomplete_outs_counts_outs() {
    let repo = Repo::new();
    for i in 0..3 {
        repo.write(&format!("data/f{i}"), format!("{i}"));
    }
    repo.write("other/x", "x");
    repo.bale(&["add", "-q", "data", "other"]).ok();
    fs::remove_dir_all(repo.path("data")).unwrap();
    for i in 0..3 {
        fs::remove_file(repo.object_for(format!("{i}").as_bytes())).unwrap();
    }
    let r = repo.bale(&["checkout"]).fails();
    assert!(
        r.stderr.contains("1 of 2 outs could not be completed"),
        "{r}"
    );
    let r = repo.bale(&["fsck"]).ok();
    assert!(!r.stderr.contains("outs"), "{r}");
}

#[test]
fn a_pointer_with_a_byte_order_mark_is_read() {
    let repo = Repo::new();
    repo.write("data/x", "x");
    repo.bale(&["add", "-q", "data"]).ok();
    let text = repo.read_string("data.bale");
    fs::write(repo.path("data.bale"), format!("\u{feff}{text}")).unwrap();
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

#[test]
fn a_pointer_with_merge_conflict_markers_says_so() {
    let repo = Repo::new();
    repo.write("data/x", "x");
    repo.bale(&["add", "-q", "data"]).ok();
    let text = repo.read_string("data.bale");
    let other = text.replace(&repo.pointer_hash("data.bale"), &"0".repeat(32));
    fs::write(
        repo.path("data.bale"),
        format!("<<<<<<< HEAD\n{text}=======\n{other}>>>>>>> theirs\n"),
    )
    .unwrap();
    let r = repo.bale(&["status"]).fails();
    assert!(r.stderr.contains("merge conflict markers"), "{r}");
    assert!(r.stderr.contains("data.bale"), "{r}");
}

#[test]
fn the_add_summary_counts_new_objects_not_files() {
    let repo = Repo::new();
    for i in 0..5 {
        repo.write(&format!("data/f{i}"), "same content");
    }
    let r = repo.bale(&["add", "data"]).ok();
    assert!(r.stdout.contains("5 files"), "{r}");
    assert!(r.stdout.contains("1 object new"), "{r}");
}

/// Runs bale in `repo` as a user whom file modes bind: this process's user
/// when it is not root; else `baletest`, made for the purpose (the repository
/// is handed to it). `None` when that cannot be arranged.
fn bale_as_non_root(repo: &Repo, args: &[&str]) -> Option<common::Run> {
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let made = std::process::Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "baletest"])
            .output()
            .ok()?;
        // 9: the user exists already.
        if !made.status.success() && made.status.code() != Some(9) {
            return None;
        }
        let owned = std::process::Command::new("chown")
            .args(["-R", "baletest"])
            .arg(repo.outside())
            .status()
            .ok()?;
        fs::set_permissions(repo.outside(), fs::Permissions::from_mode(0o755)).ok()?;
        if !owned.success() {
            return None;
        }
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "baletest", "--", common::BIN]);
        c
    } else {
        std::process::Command::new(common::BIN)
    };
    cmd.args(args)
        .current_dir(&repo.root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Some(common::wait(cmd.spawn().ok()?, args))
}

#[test]
fn checkout_force_replaces_a_file_bale_may_not_read_and_hints_for_a_folder() {
    let repo = Repo::new();
    repo.write("data/a", "a");
    repo.write("data/sub/b", "b");
    repo.bale(&["add", "-q", "data"]).ok();
    fs::set_permissions(repo.path("data/a"), fs::Permissions::from_mode(0o000)).unwrap();
    let Some(r) = bale_as_non_root(&repo, &["checkout", "--force"]) else {
        eprintln!("NOT RUN: no user without root's powers to run bale as (useradd, runuser)");
        return;
    };
    let r = r.ok();
    assert!(r.stdout.contains("1 modified"), "{r}");
    assert_eq!(mode(&repo.path("data/a")) & 0o400, 0o400, "{r}");
    assert_eq!(repo.read_string("data/a"), "a");
    assert_eq!(
        bale_as_non_root(&repo, &["status"]).unwrap().ok().stdout,
        "data: unchanged\n"
    );

    let sub = repo.path("data/sub");
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o000)).unwrap();
    let r = bale_as_non_root(&repo, &["checkout", "--force"])
        .unwrap()
        .fails();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    let hint = r
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or("");
    assert!(hint.contains("chmod") && hint.contains("data/sub"), "{r}");
}

#[test]
fn gc_says_what_it_freed_when_the_packs_keep_the_bytes() {
    let repo = Repo::new();
    for i in 0..50 {
        repo.write(&format!("data/f{i:02}"), format!("packed file {i:02}"));
    }
    repo.bale(&["add", "-q", "data"]).ok();
    repo.bale(&["pack", "-q"]).ok();
    // One object of fifty dead: its pack is not worth rewriting.
    repo.write("data/f00", "changed");
    repo.bale(&["commit", "-q"]).ok();
    // The old manifest (loose) and the old f00 (packed) go; only the
    // manifest's bytes are freed.
    let r = repo.bale(&["gc", "--workspace", "--force"]).ok();
    assert!(r.stdout.contains("removed 2 objects"), "{r}");
    assert!(!r.stdout.contains("rewrote"), "{r}");
    assert!(
        r.stdout
            .contains("14 B of packed objects stay on disk in their packs"),
        "{r}"
    );
}

//! What each `cache.type` makes of a workspace file: the cache object itself
//! (hardlink), a link to it (symlink), or a private writable file (copy,
//! reflink), with the executable bit kept.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{Repo, extents, ino, meta, mode};

const A: &str = "alpha\n";
const B: &str = "bravo, a little longer\n";
const SCRIPT: &str = "#!/bin/sh\necho run\n";

/// data/a, data/sub/b, data/sub/a-again (same content as a) and an
/// executable data/bin/run.sh.
fn sample(repo: &Repo) {
    repo.write("data/a", A);
    repo.write("data/sub/b", B);
    repo.write("data/sub/a-again", A);
    repo.write_exec("data/bin/run.sh", SCRIPT);
}

const PLAIN: [(&str, &str); 3] = [("data/a", A), ("data/sub/b", B), ("data/sub/a-again", A)];

/// Runs `check` after `add`, then again after `rm -rf` and `checkout`.
fn after_add_and_after_checkout(repo: &Repo, check: impl Fn(&str)) {
    repo.bale(&["add", "data"]).ok();
    check("after add");
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();
    check("after checkout");
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

/// An executable is never linked to the (never executable) cache object: it
/// is a private 0755 copy.
fn assert_private_executable(repo: &Repo, when: &str) {
    let p = repo.path("data/bin/run.sh");
    let m = meta(&p);
    assert!(
        m.file_type().is_file(),
        "{when}: run.sh is not a regular file"
    );
    assert_eq!(mode(&p), 0o755, "{when}: run.sh lost its executable bit");
    assert_ne!(m.ino(), ino(&repo.object_for(SCRIPT.as_bytes())), "{when}");
    assert_eq!(repo.read_string("data/bin/run.sh"), SCRIPT, "{when}");
}

fn assert_objects_read_only(repo: &Repo) {
    for content in [A, B, SCRIPT] {
        let obj = repo.object_for(content.as_bytes());
        assert_eq!(mode(&obj), 0o444, "{}", obj.display());
        assert_eq!(fs::read_to_string(&obj).unwrap(), content);
    }
}

#[test]
fn hardlinked_files_are_the_cache_object() {
    let repo = Repo::new();
    repo.cache_type("hardlink");
    sample(&repo);
    after_add_and_after_checkout(&repo, |when| {
        for (rel, content) in PLAIN {
            let p = repo.path(rel);
            let obj = repo.object_for(content.as_bytes());
            assert!(meta(&p).file_type().is_file(), "{when}: {rel}");
            assert_eq!(ino(&p), ino(&obj), "{when}: {rel} is not the object");
            assert_eq!(mode(&p), 0o444, "{when}: {rel} must be read-only");
            assert_eq!(repo.read_string(rel), content, "{when}: {rel}");
        }
        assert_eq!(
            ino(&repo.path("data/a")),
            ino(&repo.path("data/sub/a-again")),
            "{when}: equal content, one object"
        );
        assert_private_executable(&repo, when);
        assert_objects_read_only(&repo);
    });
}

#[test]
fn symlinked_files_point_at_their_object_inside_the_cache() {
    let repo = Repo::new();
    repo.cache_type("symlink");
    sample(&repo);
    let cache = repo.path(".bale/cache");
    after_add_and_after_checkout(&repo, |when| {
        for (rel, content) in PLAIN {
            let p = repo.path(rel);
            assert!(meta(&p).file_type().is_symlink(), "{when}: {rel}");
            let target = fs::read_link(&p).unwrap();
            assert!(target.is_absolute(), "{when}: {rel} -> {target:?}");
            assert!(target.starts_with(&cache), "{when}: {rel} -> {target:?}");
            assert_eq!(target, repo.object_for(content.as_bytes()), "{when}");
            assert_eq!(repo.read_string(rel), content, "{when}: {rel}");
        }
        assert_private_executable(&repo, when);
        assert_objects_read_only(&repo);
    });
}

#[test]
fn copied_files_are_private_and_writable() {
    let repo = Repo::new();
    repo.cache_type("copy");
    sample(&repo);
    after_add_and_after_checkout(&repo, |when| {
        for (rel, content) in PLAIN {
            let p = repo.path(rel);
            let obj = repo.object_for(content.as_bytes());
            let m = meta(&p);
            assert!(m.file_type().is_file(), "{when}: {rel}");
            assert_ne!(m.ino(), ino(&obj), "{when}: {rel} shares the object");
            assert_eq!(m.nlink(), 1, "{when}: {rel}");
            assert_eq!(mode(&p), 0o644, "{when}: {rel}");
            assert_eq!(repo.read_string(rel), content, "{when}: {rel}");
        }
        assert_private_executable(&repo, when);
        assert_objects_read_only(&repo);
    });
    // Writing to a private copy leaves the cache alone.
    fs::write(repo.path("data/a"), "edited\n").unwrap();
    assert_objects_read_only(&repo);
}

#[test]
fn checkout_relink_moves_files_to_the_configured_type_and_back() {
    let repo = Repo::new();
    repo.cache_type("copy");
    sample(&repo);
    repo.bale(&["add", "data"]).ok();
    let expected = repo.tree("data");

    repo.cache_type("hardlink");
    repo.bale(&["checkout", "--relink"]).ok();
    for (rel, content) in PLAIN {
        assert_eq!(
            ino(&repo.path(rel)),
            ino(&repo.object_for(content.as_bytes())),
            "{rel} was not relinked as a hardlink"
        );
    }
    assert_private_executable(&repo, "after relink to hardlink");

    repo.cache_type("copy");
    repo.bale(&["checkout", "--relink"]).ok();
    assert_eq!(repo.tree("data"), expected);
    for (rel, content) in PLAIN {
        assert_ne!(
            ino(&repo.path(rel)),
            ino(&repo.object_for(content.as_bytes())),
            "{rel} is still the cache object"
        );
        assert_eq!(meta(&repo.path(rel)).nlink(), 1, "{rel}");
    }
    assert_objects_read_only(&repo);
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

#[test]
#[ignore = "needs BALE_TEST_XFS (an XFS mount with reflink=1), set by .ci/run"]
fn reflinked_files_share_extents_with_the_cache_object() {
    let base = common::xfs_base();
    let repo = Repo::new_in(&base);
    repo.cache_type("reflink");
    let big: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    repo.write("data/big.bin", &big);
    repo.write("data/small.txt", "small\n");
    repo.write_exec("data/run.sh", SCRIPT);

    let add = repo.bale(&["add", "data"]).ok();
    assert!(add.stdout.contains("linked as reflink"), "{add}");
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();

    for (rel, content) in [
        ("data/big.bin", big.as_slice()),
        ("data/small.txt", b"small\n".as_slice()),
        ("data/run.sh", SCRIPT.as_bytes()),
    ] {
        let p = repo.path(rel);
        let obj = repo.object_for(content);
        let m = meta(&p);
        assert!(m.file_type().is_file(), "{rel}");
        assert_ne!(m.ino(), ino(&obj), "{rel} must be its own inode");
        assert_eq!(m.nlink(), 1, "{rel}");
        assert_eq!(mode(&p) & 0o200, 0o200, "{rel} must be writable");
        assert_eq!(fs::read(&p).unwrap(), content, "{rel}");
        let (ours, theirs) = (extents(&p), extents(&obj));
        assert!(!ours.is_empty(), "{rel}: no extents");
        let physical = |e: &[(String, String, String)]| -> Vec<(String, String)> {
            e.iter().map(|(l, p, _)| (l.clone(), p.clone())).collect()
        };
        assert_eq!(
            physical(&ours),
            physical(&theirs),
            "{rel} does not share its extents with the cache object"
        );
        assert!(
            ours.iter().all(|(_, _, flags)| flags.contains("shared")),
            "{rel}: {ours:?}"
        );
    }
    assert_eq!(mode(&repo.path("data/run.sh")), 0o755);
    assert_eq!(mode(&repo.path("data/big.bin")), 0o644);

    // Writing to the reflinked file copies on write: the object is intact.
    fs::write(repo.path("data/big.bin"), b"overwritten").unwrap();
    let obj = repo.object_for(&big);
    assert_eq!(fs::read(&obj).unwrap(), big);
    assert_eq!(mode(&obj), 0o444);
}

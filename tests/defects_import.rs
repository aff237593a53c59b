//! Defects of `bale import` and `bale get` found on the built binary
//! (issue 23): names a tar or zip entry cannot have (`.`, empty, longer
//! than a file system allows), an empty tar, the summary's counts and link
//! type, a full disk during a loose import, hints that name the command
//! they sit in, and the folder `get` makes inside the git work tree.

mod common;

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

/// The good files every test archive holds before its odd entry.
const LEAD: [(&str, &[u8]); 2] = [
    ("good/one.txt", b"first good file\n"),
    ("good/two.txt", b"second good file\n"),
];

/// A GNU tar header for `name`, copied byte for byte (no checks of the
/// tar crate apply).
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// A tar of the `LEAD` files, then a regular file named `name` (raw).
fn tar_with_file_named(name: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, data) in LEAD {
        b.append(
            &raw_header(n.as_bytes(), tar::EntryType::Regular, data.len() as u64),
            data,
        )
        .unwrap();
    }
    let data = b"a file with an odd name\n";
    b.append(
        &raw_header(name, tar::EntryType::Regular, data.len() as u64),
        &data[..],
    )
    .unwrap();
    b.into_inner().unwrap()
}

/// A tar of `files` (name, content) through the tar crate (long names get
/// the GNU extension).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A stored zip of `files` (name, content).
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o644);
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes an archive beside the repository and returns its path.
fn put(repo: &Repo, name: &str, bytes: &[u8]) -> String {
    let p = repo.outside().join(name);
    fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

fn error_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect()
}

/// Asserts that `bale import ARCHIVE data` of `bytes` fails with exit 1
/// and an `error:` line holding `names`, leaving no pointer, no workspace
/// folder, no `.gitignore` line and no manifest behind.
#[track_caller]
fn assert_refused(file: &str, bytes: &[u8], names: &str, what: &str) -> Run {
    let repo = Repo::new();
    repo.cache_type("copy");
    let archive = put(&repo, file, bytes);
    let before = tree(&repo.root);
    let run = repo.bale(&["import", &archive, "data"]).fails();
    assert!(
        error_lines(&run).iter().any(|l| l.contains(names)),
        "{what}: the error must name the entry ({names}):\n{run}"
    );
    assert!(
        !repo.path("data.bale").exists(),
        "{what}: pointer left\n{run}"
    );
    assert!(!repo.path("data").exists(), "{what}: folder left\n{run}");
    assert!(
        manifest_objects(&repo).is_empty(),
        "{what}: a manifest was stored\n{run}"
    );
    assert_eq!(
        tree(&repo.root),
        before,
        "{what}: the repository changed\n{run}"
    );
    run
}

// ---------------------------------------------- 2: `.` and empty names

// issue 23, item 2
#[test]
fn a_tar_file_entry_named_dot_or_empty_is_refused_naming_it() {
    for (name, shown) in [
        (&b"."[..], "entry \".\""),
        (b"./", "entry \"./\""),
        (b"./.", "entry \"./.\""),
        (b"", "entry \"\""),
    ] {
        let what = format!("tar file entry {:?}", name.escape_ascii().to_string());
        assert_refused("data.tar", &tar_with_file_named(name), shown, &what);
    }
}

// issue 23, item 2: the zip reader refuses them already.
#[test]
fn a_zip_file_entry_named_dot_or_empty_is_refused_naming_it() {
    for (name, shown) in [(".", "entry \".\""), ("", "entry \"\"")] {
        let mut files = LEAD.to_vec();
        files.push((name, b"a file with an odd name\n"));
        let what = format!("zip file entry {name:?}");
        assert_refused("data.zip", &zip_of(&files), shown, &what);
    }
}

// The archive's own root folder, `./`, is still no entry at all.
#[test]
fn a_tar_root_folder_entry_is_still_accepted() {
    let mut b = tar::Builder::new(Vec::new());
    b.append(&raw_header(b"./", tar::EntryType::Directory, 0), &b""[..])
        .unwrap();
    let (n, data) = LEAD[0];
    b.append(
        &raw_header(n.as_bytes(), tar::EntryType::Regular, data.len() as u64),
        data,
    )
    .unwrap();
    let repo = Repo::new();
    let archive = put(&repo, "data.tar", &b.into_inner().unwrap());
    let run = repo.bale(&["import", &archive, "data"]).ok();
    assert!(run.stdout.contains("imported 1 file "), "{run}");
    assert_eq!(repo.read(&format!("data/{n}")), data);
}

// ---------------------------------------------------- 3: an empty tar

// issue 23, item 3
#[test]
fn an_empty_tar_imports_zero_files_as_its_gzip_does() {
    // What `tar cf e.tar --files-from /dev/null` writes.
    let empty = vec![0u8; 10240];
    assert_eq!(tar_of(&[]).iter().filter(|b| **b != 0).count(), 0);
    for (file, bytes) in [("e.tar", empty.clone()), ("e.tar.gz", gz(&empty))] {
        let repo = Repo::new();
        let archive = put(&repo, file, &bytes);
        let run = repo.bale(&["import", &archive, "data"]).ok();
        assert!(run.stdout.contains("imported 0 files"), "{file}: {run}");
        assert_eq!(
            repo.pointer("data.bale")["outs"][0]["nfiles"].as_u64(),
            Some(0)
        );
    }
    // The two zero blocks alone, as the tar crate ends an archive.
    let repo = Repo::new();
    let archive = put(&repo, "e.tar", &vec![0u8; 1024]);
    repo.bale(&["import", &archive, "data"]).ok();
}

// Zeros that are not two whole blocks are no tar.
#[test]
fn a_file_of_fewer_zeros_is_still_not_an_archive() {
    let repo = Repo::new();
    let archive = put(&repo, "zeros.tar", &vec![0u8; 600]);
    let run = repo.bale(&["import", &archive, "data"]).fails();
    assert!(run.stderr.contains("not an archive"), "{run}");
}

// ----------------------------------------- 4: every new object counted

// issue 23, item 4
#[test]
fn the_summary_counts_entries_larger_than_a_batch() {
    let five = noise_seeded(5, 5_000_000);
    let three = noise_seeded(3, 3_000_000);
    let small = b"small\n".to_vec();
    let tar = tar_of(&[("five", &five), ("three", &three), ("small", &small)]);
    let repo = Repo::new();
    repo.bale(&["config", "import.batch_bytes", "2M"]).ok();
    let archive = put(&repo, "data.tar", &tar);
    let run = repo.bale(&["import", &archive, "data"]).ok();
    assert!(run.stdout.contains("; 3 objects new"), "{run}");
    // Again: nothing is new.
    fs::remove_dir_all(repo.path("data")).unwrap();
    fs::remove_file(repo.path("data.bale")).unwrap();
    let run = repo.bale(&["import", &archive, "data"]).ok();
    assert!(run.stdout.contains("; 0 objects new"), "{run}");
}

// ------------------------------------------ 5: the link type named

/// The link type the summary names after "checked out as", if any.
fn checked_out_as(run: &Run) -> Option<String> {
    let at = run.stdout.find("checked out as ")?;
    let rest = &run.stdout[at + "checked out as ".len()..];
    Some(rest.lines().next().unwrap_or("").trim().to_owned())
}

fn many_small_tar(n: usize) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("f{i:04}"), format!("small file {i}\n").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    tar_of(&refs)
}

// issue 23, item 5: a packed record shares no blocks with a file, so its
// checkout is a copy whatever the file system.
#[test]
fn a_packed_import_says_it_checked_out_copies() {
    let repo = Repo::new();
    let archive = put(&repo, "data.tar", &many_small_tar(50));
    let run = repo.bale(&["import", "--packed", &archive, "data"]).ok();
    assert_eq!(checked_out_as(&run).as_deref(), Some("copy"), "{run}");
}

// issue 23, item 5
#[test]
fn an_empty_import_names_no_link_type() {
    for t in ["reflink,copy", "hardlink", "copy"] {
        let repo = Repo::new();
        repo.cache_type(t);
        let archive = put(&repo, "e.tar.gz", &gz(&tar_of(&[])));
        let run = repo.bale(&["import", &archive, "data"]).ok();
        assert_eq!(checked_out_as(&run), None, "{t}: {run}");
        for word in ["reflink", "hardlink", "symlink", "copy"] {
            assert!(!has_word(&run.stdout, word), "{t}: names {word}: {run}");
        }
    }
}

// issue 23, item 5: loose objects on a file system without reflinks.
#[test]
fn a_loose_import_names_the_type_its_files_have() {
    if reflinks_work(&std::env::temp_dir()) {
        return;
    }
    let repo = Repo::new();
    let archive = put(&repo, "data.tar", &many_small_tar(5));
    let run = repo.bale(&["import", "--loose", &archive, "data"]).ok();
    assert_eq!(checked_out_as(&run).as_deref(), Some("copy"), "{run}");
    repo.cache_type("hardlink,copy");
    let run = repo.bale(&["import", "--loose", &archive, "more"]).ok();
    assert_eq!(checked_out_as(&run).as_deref(), Some("hardlink"), "{run}");
}

/// Whether a FICLONE of a file in `dir` works.
fn reflinks_work(dir: &Path) -> bool {
    let d = tempfile::tempdir_in(dir).unwrap();
    let a = d.path().join("a");
    fs::write(&a, b"x").unwrap();
    Command::new("cp")
        .args(["--reflink=always"])
        .arg(&a)
        .arg(d.path().join("b"))
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// issue 23, item 5: on XFS, large entries are reflinked and small packed
// ones copied; the summary names both.
#[test]
#[ignore = "needs BALE_TEST_XFS (a folder on an XFS mount with reflink=1), set by .ci/run"]
fn an_import_on_xfs_names_reflink_and_copy_as_used() {
    let base = xfs_base();
    let large = noise_seeded(9, 2 << 20);
    let repo = Repo::new_in(&base);
    let archive = put(&repo, "big.tar", &tar_of(&[("large", &large)]));
    let run = repo.bale(&["import", &archive, "big"]).ok();
    assert_eq!(checked_out_as(&run).as_deref(), Some("reflink"), "{run}");
    assert_linked_as(&repo, "big/large", &large, "reflink", false);

    let archive = put(&repo, "small.tar", &many_small_tar(50));
    let run = repo.bale(&["import", "--packed", &archive, "small"]).ok();
    assert_eq!(checked_out_as(&run).as_deref(), Some("copy"), "{run}");

    let large2 = noise_seeded(10, 2 << 20);
    let archive = put(
        &repo,
        "mixed.tar",
        &tar_of(&[("large", &large2), ("small", b"small\n")]),
    );
    let run = repo.bale(&["import", "--packed", &archive, "mixed"]).ok();
    let said = checked_out_as(&run).unwrap_or_default();
    assert!(
        has_word(&said, "reflink") && has_word(&said, "copy"),
        "a mixed checkout names both types: {run}"
    );
}

// --------------------------------------- 6: names too long for a file

const LONG: usize = 256;

// issue 23, item 6
#[test]
fn an_entry_name_longer_than_the_file_system_allows_is_refused() {
    let long = "x".repeat(LONG);
    let nested = format!("sub/{long}/leaf");
    for name in [long.as_str(), nested.as_str()] {
        let mut files = LEAD.to_vec();
        files.push((name, b"too long\n"));
        let shown = &long[..40];
        assert_refused("data.tar", &tar_of(&files), shown, "tar, long name");
        assert_refused("data.zip", &zip_of(&files), shown, "zip, long name");
    }
    // 255 bytes is fine.
    let ok = "y".repeat(255);
    let repo = Repo::new();
    let archive = put(&repo, "data.zip", &zip_of(&[(ok.as_str(), b"fits\n")]));
    repo.bale(&["import", &archive, "data"]).ok();
    assert_eq!(repo.read(&format!("data/{ok}")), b"fits\n");
    repo.bale(&["checkout", "data"]).ok();
}

// issue 23, item 6: a pointer can never name such a path either.
#[test]
fn a_pointer_naming_a_component_longer_than_255_bytes_is_refused() {
    let repo = Repo::new();
    repo.write("d/a", "a\n");
    repo.bale(&["add", "-q", "d"]).ok();
    let text = repo.read_string("d.bale");
    let long = "x".repeat(LONG);
    fs::write(
        repo.path("d.bale"),
        text.replace("path: d", &format!("path: {long}")),
    )
    .unwrap();
    let run = repo.bale(&["checkout"]).fails();
    assert!(run.stderr.contains("255"), "{run}");
    assert!(!run.stderr.contains("too long (os error"), "{run}");
}

// --------------------------------- 10: a full disk during a loose import

/// The small file system of the disk-full tests (`BALE_TEST_SMALLFS`).
fn smallfs() -> PathBuf {
    match std::env::var_os("BALE_TEST_SMALLFS") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("BALE_TEST_SMALLFS is not set: .ci/run sets it"),
    }
}

// issue 23, item 10
#[test]
#[ignore = "needs BALE_TEST_SMALLFS (a small file system), set by .ci/run"]
fn disk_full_during_a_loose_import_says_the_disk_is_full() {
    let repo = Repo::new_in(&smallfs());
    let entries: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("part{i}"), noise_seeded(100 + i, 3 << 20)))
        .collect();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    let elsewhere = tempfile::tempdir().unwrap();
    let archive = elsewhere.path().join("data.tar");
    fs::write(&archive, tar_of(&refs)).unwrap();
    let run = repo
        .bale(&["import", "--loose", archive.to_str().unwrap(), "data"])
        .fails();
    let errors = error_lines(&run);
    let line = errors.first().copied().unwrap_or_default();
    assert!(line.starts_with("error: the disk is full: "), "{run}");
    assert!(line.contains(".bale"), "the error names the path: {run}");
    assert_eq!(
        line.matches(".bale-tmp.").count(),
        usize::from(line.contains(".bale-tmp.")),
        "the path is named once: {run}"
    );
    assert!(
        run.hints().iter().any(|h| h.contains("free some space")),
        "{run}"
    );
    assert!(!repo.path("data.bale").exists(), "{run}");
}

// ------------------------------------- 13: hints name their own command

/// The bale commands the hints name in backquotes (`bale checkout`...).
fn commands_hinted(run: &Run) -> Vec<String> {
    run.hints()
        .iter()
        .flat_map(|h| {
            h.match_indices("`bale ")
                .filter_map(|(i, _)| h[i + 6..].split([' ', '`']).next())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

// issue 23, item 13
#[test]
fn an_import_over_local_edits_hints_import_force() {
    let repo = Repo::new();
    repo.cache_type("copy");
    let first = put(&repo, "one.tar", &tar_of(&[("a", b"one\n")]));
    let second = put(&repo, "two.tar", &tar_of(&[("a", b"two\n")]));
    repo.bale(&["import", &first, "data"]).ok();
    repo.write("data/a", "my edit\n");
    let run = repo.bale(&["import", &second, "data"]).fails();
    let hints = run.hints().join("\n");
    assert!(hints.contains("bale import --force"), "{run}");
    assert!(!hints.contains("checkout"), "{run}");
    assert_eq!(repo.read_string("data/a"), "my edit\n");
    repo.bale(&["import", "--force", &second, "data"]).ok();
    assert_eq!(repo.read_string("data/a"), "two\n");
}

// issue 23, item 13: the audit of the other hints `import` can print.
#[test]
fn import_refusals_hint_import_or_commands_that_fix_them() {
    let repo = Repo::new();
    let archive = put(&repo, "d.tar", &tar_of(&[("a", b"a\n")]));
    repo.write("data/x", "x\n");
    repo.bale(&["add", "-q", "data"]).ok();
    repo.write("outer/inner/y", "y\n");
    repo.bale(&["add", "-q", "outer/inner"]).ok();
    for (dest, force) in [("data/sub", false), ("outer", true)] {
        let mut args = vec!["import", &archive, dest];
        if force {
            args.push("--force");
        }
        let run = repo.bale(&args).fails();
        assert!(!run.hints().is_empty(), "{dest}: {run}");
        assert!(
            !run.hints().iter().any(|h| h.contains("add ")),
            "{dest}: a hint of import is about add: {run}"
        );
        let named = commands_hinted(&run);
        assert!(
            named.iter().all(|c| c == "import"),
            "{dest}: a hint of import names another command {named:?}: {run}"
        );
    }
}

// issue 23, item 13: `get` outside git says what to do for get, not gc.
#[test]
fn get_outside_git_hints_git_not_gc() {
    let repo = Repo::new();
    repo.write("data/a", "a\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let run = repo.bale(&["get", "--rev", "HEAD", "data"]).fails();
    let named = commands_hinted(&run);
    assert!(!named.iter().any(|c| c == "gc"), "{run}");
    assert!(run.hints().iter().any(|h| h.contains("git")), "{run}");
}

// ----------------------------------- 23: what get writes is git-ignored

fn two_versions() -> Repo {
    let repo = Repo::new();
    git(&repo, &["init", "-q", "-b", "main"]);
    repo.write("data/a", "1");
    repo.bale(&["add", "-q", "data"]).ok();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    repo.write("data/a", "2");
    repo.bale(&["commit", "-q", "data"]).ok();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v2"]);
    repo
}

// issue 23, item 23
#[test]
fn what_get_makes_in_the_work_tree_is_ignored_by_git() {
    let repo = two_versions();
    repo.bale(&["get", "--rev", "HEAD~1", "data"]).ok();
    assert_eq!(repo.read_string("data@HEAD_1/a"), "1");
    let status = git(&repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains("data@"), "{status}");
    let lines = |repo: &Repo| -> Vec<String> {
        repo.read_string(".gitignore")
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(lines(&repo), ["/data", "/data@HEAD_1"]);
    // Once, however often.
    repo.bale(&["get", "--rev", "HEAD~1", "data", "--force"])
        .ok();
    assert_eq!(lines(&repo), ["/data", "/data@HEAD_1"]);
    // Into a folder of the work tree named with -o: its own .gitignore.
    repo.bale(&["get", "--rev", "HEAD~1", "data", "-o", "old/v1"])
        .ok();
    assert_eq!(repo.read_string("old/.gitignore"), "/v1\n");
    let status = git(&repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains("old/v1"), "{status}");
}

// issue 23, item 23: outside the work tree nothing is written.
#[test]
fn get_outside_the_work_tree_writes_no_gitignore() {
    let repo = two_versions();
    let elsewhere = tempfile::tempdir().unwrap();
    let dest = elsewhere.path().join("v1");
    repo.bale(&[
        "get",
        "--rev",
        "HEAD~1",
        "data",
        "-o",
        dest.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(fs::read_to_string(dest.join("a")).unwrap(), "1");
    assert!(!elsewhere.path().join(".gitignore").exists());
    assert_eq!(repo.read_string(".gitignore"), "/data\n");
}

//! Hostile trees (issue 7): a pointer that switches an out between folder and
//! file while an object is missing, symlinked folders on the way to an out,
//! cache symlinks left dangling, overlapping outs, empty folders, in-place
//! edits of hardlinked or symlinked files, and user files that look like
//! bale's temporary files.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::symlink;

use common::{Repo, Run, assert_linked_as, hash_hex, meta};

/// Whether stderr names `name`: a word that is `name` or a path ending in
/// `/name`, quotes, punctuation and a trailing `/` ignored.
fn names(run: &Run, name: &str) -> bool {
    let suffix = format!("/{name}");
    run.stderr
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c| "'\"`,:;()[]".contains(c))
                .trim_end_matches('/')
        })
        .any(|w| w == name || w.ends_with(&suffix))
}

#[track_caller]
fn assert_names(run: &Run, name: &str) {
    assert!(names(run, name), "stderr must name `{name}`:\n{run}");
}

#[track_caller]
fn assert_stderr_has(run: &Run, text: &str) {
    assert!(
        run.stderr.contains(text),
        "stderr must say {text:?}:\n{run}"
    );
}

/// Every line of stdout and stderr together.
fn all_output(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

#[track_caller]
fn assert_not_unchanged(run: &Run, out: &str) {
    let line = format!("{out}: unchanged");
    assert!(
        !run.stdout.lines().any(|l| l.trim() == line),
        "must not report `{line}`:\n{run}"
    );
}

/// Removes the cache object holding `content`.
fn remove_object(repo: &Repo, content: &[u8]) {
    let obj = repo.object_for(content);
    fs::remove_file(&obj).unwrap_or_else(|e| panic!("remove {}: {e}", obj.display()));
}

/// Asserts that every cache object's content hashes to its name.
#[track_caller]
fn assert_cache_sound(repo: &Repo) {
    for rel in repo.objects() {
        let hex = rel.replace('/', "");
        let content = fs::read(repo.object_path(&hex)).unwrap();
        assert_eq!(
            hash_hex(&content),
            hex,
            "the cache object {hex} does not hold the content its name says"
        );
    }
}

/// The manifest that the pointer file `rel` names, as text.
fn manifest_of(repo: &Repo, rel: &str) -> String {
    String::from_utf8(fs::read(repo.pointer_object(rel)).unwrap()).unwrap()
}

/// Appends `text` to the file at `rel`, following a symlink (`>>`).
fn append(repo: &Repo, rel: &str, text: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(repo.path(rel))
        .unwrap_or_else(|e| panic!("open {rel} for append: {e}"));
    f.write_all(text.as_bytes()).unwrap();
}

/// `data` with two files, added with link type `t`, its stats settled.
fn linked_sample(t: &str) -> Repo {
    let repo = Repo::new();
    repo.cache_type(t);
    repo.write("data/f", "original content\n");
    repo.write("data/g", "other content\n");
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    repo
}

/// After `data/f` ("original content") was appended to in place: status
/// does not say unchanged, names the old object and points to commit.
fn assert_status_names_the_corrupt_object(repo: &Repo) {
    let st = repo.bale(&["status"]);
    assert_not_unchanged(&st, "data");
    let text = all_output(&st);
    assert!(
        text.contains(&hash_hex(b"original content\n")),
        "status must name the object whose content changed:\n{st}"
    );
    assert!(
        text.contains("bale commit"),
        "status must point to `bale commit`, which records the edit:\n{st}"
    );
}

/// The same, then commit: it succeeds, warns naming the old object, records the
/// new content of f (`old` was the pointer's hash before).
fn assert_commit_records_the_edit(repo: &Repo, old: &str, new_content: &[u8]) {
    let commit = repo.bale(&["commit"]).ok();
    assert_stderr_has(&commit, &hash_hex(b"original content\n"));
    assert_stderr_has(&commit, "warning:");
    assert!(!commit.stderr.contains("error:"), "{commit}");
    assert_ne!(
        repo.pointer_hash("data.bale"),
        old,
        "commit missed the edit"
    );
    assert!(
        manifest_of(repo, "data.bale").contains(&format!("{} ", hash_hex(new_content))),
        "the manifest must list the new content of f:\n{}",
        manifest_of(repo, "data.bale")
    );
}

fn running_as_root(test: &str) -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test} edits a read-only cache object in place, which needs root");
        return false;
    }
    true
}

// issue 7, defect 1
#[test]
fn a_folder_to_file_switch_with_a_missing_object_changes_nothing() {
    let repo = Repo::new();
    // A pointer that tracks `data` as a file, kept aside.
    repo.write("data", "data as a file\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let as_file = repo.read_string("data.bale");
    fs::remove_file(repo.path("data")).unwrap();
    // The workspace and the pointer now have `data` as a folder.
    repo.write("data/a", "content of a\n");
    repo.write("data/sub/b", "content of b\n");
    repo.bale(&["add", "-q", "data"]).ok();
    remove_object(&repo, b"data as a file\n");
    let before = repo.tree("data");

    fs::write(repo.path("data.bale"), &as_file).unwrap();
    let co = repo.bale(&["checkout"]).fails();
    assert_stderr_has(&co, &hash_hex(b"data as a file\n"));
    assert_eq!(
        repo.tree("data"),
        before,
        "a checkout that cannot make the file must leave the folder as it was"
    );
}

// issue 7, defect 1
#[test]
fn a_file_to_folder_switch_with_a_missing_object_changes_nothing() {
    let repo = Repo::new();
    // A pointer that tracks `data` as a folder, kept aside.
    repo.write("data/a", "content of a\n");
    repo.write("data/b", "content of b\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let as_dir = repo.read_string("data.bale");
    fs::remove_dir_all(repo.path("data")).unwrap();
    // The workspace and the pointer now have `data` as a file.
    repo.write("data", "data as a file\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let before = repo.tree("data");
    fs::write(repo.path("data.bale"), &as_dir).unwrap();

    // The manifest is there, one object it lists is not.
    remove_object(&repo, b"content of b\n");
    let co = repo.bale(&["checkout"]).fails();
    assert_stderr_has(&co, &hash_hex(b"content of b\n"));
    assert_eq!(
        repo.tree("data"),
        before,
        "a checkout that cannot make the folder must leave the file as it was"
    );

    // The manifest itself is missing.
    let manifest = repo.pointer_object("data.bale");
    fs::remove_file(&manifest).unwrap();
    let co = repo.bale(&["checkout"]).fails();
    assert_stderr_has(&co, &repo.pointer_hash("data.bale"));
    assert_eq!(repo.tree("data"), before);
}

// issue 7, defect 1
#[test]
fn a_folder_to_folder_change_with_a_missing_object_changes_nothing_of_that_out() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.write("data/b", "content of b\n");
    repo.write("data/sub/c", "content of c\n");
    repo.write("other/x", "content of x\n");
    repo.bale(&["add", "-q", "data", "other"]).ok();
    let v1 = repo.read_string("data.bale");
    // v2: b edited, sub/c gone, new/d added.
    repo.write("data/b", "content of b, version 2\n");
    fs::remove_dir_all(repo.path("data/sub")).unwrap();
    repo.write("data/new/d", "content of d\n");
    repo.bale(&["commit", "-q", "data"]).ok();
    let v2 = repo.read_string("data.bale");
    // Back to v1 in the workspace.
    fs::write(repo.path("data.bale"), &v1).unwrap();
    repo.bale(&["checkout", "-q"]).ok();
    let before = repo.tree("data");

    // The pointer moves to v2, whose new/d is not in the cache.
    fs::write(repo.path("data.bale"), &v2).unwrap();
    remove_object(&repo, b"content of d\n");
    fs::remove_file(repo.path("other/x")).unwrap();
    let co = repo.bale(&["checkout"]).fails();
    assert_stderr_has(&co, &hash_hex(b"content of d\n"));
    assert_eq!(
        repo.tree("data"),
        before,
        "no file of data may be deleted or replaced when an object it needs is missing"
    );
    // The rest of the checkout still completes.
    assert_eq!(repo.read_string("other/x"), "content of x\n");
}

// issue 7, defect 2
#[test]
fn adding_a_path_through_a_symlinked_folder_is_refused_and_writes_nothing_outside() {
    let repo = Repo::new();
    let ext = repo.outside().join("ext");
    common::write_file(&ext.join("d/f"), b"outside data\n", 0o644);
    symlink(&ext, repo.path("evil")).unwrap();
    let outside = repo.outside_tree();
    let objects = repo.objects();

    let add = repo.bale(&["add", "evil/d"]).fails();
    assert_names(&add, "evil");
    assert_stderr_has(&add, "symlink");
    assert_eq!(
        repo.outside_tree(),
        outside,
        "nothing may be written outside"
    );
    assert!(
        !ext.join("d.bale").exists(),
        "a pointer was written outside"
    );
    assert!(
        meta(&repo.path("evil")).file_type().is_symlink(),
        "evil must stay a symlink"
    );
    assert_eq!(repo.objects(), objects, "nothing may be stored");
}

// issue 7, defect 2
#[test]
fn a_pointer_reached_through_a_symlinked_folder_is_refused_by_checkout_and_status() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.bale(&["add", "-q", "data"]).ok();
    // A valid pointer in a folder outside, reached through `evil`.
    let ext = repo.outside().join("ext");
    fs::create_dir(&ext).unwrap();
    fs::copy(repo.path("data.bale"), ext.join("data.bale")).unwrap();
    symlink(&ext, repo.path("evil")).unwrap();
    let outside = repo.outside_tree();

    let co = repo.bale(&["checkout", "evil/data.bale"]).fails();
    assert_names(&co, "evil");
    assert_stderr_has(&co, "symlink");
    assert_eq!(repo.outside_tree(), outside, "checkout wrote outside");
    assert!(!ext.join("data").exists());

    let st = repo.bale(&["status", "evil/data"]).fails();
    assert_names(&st, "evil");
    assert_stderr_has(&st, "symlink");
    assert_eq!(repo.outside_tree(), outside);
}

// issue 7, defect 3
#[test]
fn a_cache_symlink_whose_object_was_removed_is_not_unchanged_and_checkout_names_the_hash() {
    let repo = Repo::new();
    repo.cache_type("symlink");
    repo.write("data/a", "content of a\n");
    repo.write("data/b", "content of b\n");
    repo.bale(&["add", "-q", "data"]).ok();
    repo.settle();
    remove_object(&repo, b"content of a\n");

    let st = repo.bale(&["status"]);
    assert!(matches!(st.code, Some(0 | 1)), "{st}");
    assert_not_unchanged(&st, "data");
    let st = repo.bale(&["status", "-v"]);
    assert!(
        all_output(&st).contains("data/a"),
        "status -v must name data/a:\n{st}"
    );

    let co = repo.bale(&["checkout"]).fails();
    assert_stderr_has(&co, &hash_hex(b"content of a\n"));
}

// issue 7, defect 3
#[test]
fn a_cache_symlink_left_dangling_by_gc_is_reported_and_repaired_once_its_object_is_there() {
    let repo = Repo::new();
    repo.cache_type("symlink");
    let (one, two) = (b"model, version 1\n", b"model, version 2\n");
    repo.write("model.bin", one);
    repo.bale(&["add", "-q", "model.bin"]).ok();
    let v1 = repo.read_string("model.bin.bale");
    fs::remove_file(repo.path("model.bin")).unwrap();
    repo.write("model.bin", two);
    repo.bale(&["commit", "-q"]).ok();
    let v2 = repo.read_string("model.bin.bale");
    fs::write(repo.path("model.bin.bale"), &v1).unwrap();
    repo.bale(&["checkout", "-q"]).ok();
    repo.settle();
    assert_linked_as(&repo, "model.bin", one, "symlink", false);
    // `git switch` to a branch at v2 without a checkout, `bale gc` there
    // (version 1 is referenced by no pointer), and back.
    fs::write(repo.path("model.bin.bale"), &v2).unwrap();
    repo.bale(&["gc", "-q", "--force"]).ok();
    assert!(!repo.object_for(one).exists(), "gc kept version 1");
    fs::write(repo.path("model.bin.bale"), &v1).unwrap();

    let st = repo.bale(&["status"]);
    assert!(matches!(st.code, Some(0 | 1)), "{st}");
    assert_not_unchanged(&st, "model.bin");
    let st = repo.bale(&["status", "-v"]);
    assert!(
        all_output(&st).contains("model.bin"),
        "status -v must name model.bin:\n{st}"
    );
    let co = repo.bale(&["checkout"]).fails();
    assert_stderr_has(&co, &hash_hex(one));

    // Back at v2, whose object is there: checkout repairs the link.
    fs::write(repo.path("model.bin.bale"), &v2).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_linked_as(&repo, "model.bin", two, "symlink", false);
    assert_eq!(repo.bale(&["status"]).ok().stdout, "model.bin: unchanged\n");
}

// issue 7, defect 4
#[test]
fn adding_a_folder_that_holds_an_out_is_refused_naming_that_out() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.write("data/sub/c", "content of c\n");
    repo.bale(&["add", "-q", "data/sub"]).ok();
    let before = repo.tree("");
    let objects = repo.objects();

    let add = repo.bale(&["add", "data"]).fails();
    assert_names(&add, "data/sub");
    assert!(!repo.path("data.bale").exists(), "a pointer was written");
    assert_eq!(repo.tree(""), before, "nothing may change");
    assert_eq!(repo.objects(), objects, "nothing may be stored");
}

// issue 7, defect 4
#[test]
fn adding_a_path_inside_an_out_is_refused_naming_the_out() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.write("data/sub/c", "content of c\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let before = repo.tree("");

    let add = repo.bale(&["add", "data/sub"]).fails();
    assert_names(&add, "data");
    assert!(!repo.path("data/sub.bale").exists());
    assert_eq!(repo.tree(""), before, "nothing may change");
}

// issue 7, defect 4
#[test]
fn pointer_files_gitignore_files_and_bale_internals_are_never_outs() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.bale(&["add", "-q", "data"]).ok();
    repo.write("sub/.gitignore", "/scratch\n");
    let before = repo.tree("");
    let config = repo.read_string(".bale/config.yaml");

    for target in [
        "data.bale",
        ".gitignore",
        "sub/.gitignore",
        ".bale",
        ".bale/config.yaml",
    ] {
        repo.bale(&["add", target]).fails();
        assert_eq!(
            repo.tree(""),
            before,
            "`bale add {target}` must write nothing (no pointer, no .gitignore line)"
        );
        assert!(!repo.path(&format!("{target}.bale")).exists(), "{target}");
        assert_eq!(repo.read_string(".bale/config.yaml"), config, "{target}");
    }
}

// issue 7, defect 8
#[test]
fn a_users_empty_folder_survives_a_checkout_that_repairs_another_file() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.write("data/sub/b", "content of b\n");
    repo.bale(&["add", "-q", "data"]).ok();
    fs::create_dir(repo.path("data/mine")).unwrap();
    fs::create_dir_all(repo.path("data/sub/mine too")).unwrap();
    let before = repo.tree("data");
    fs::remove_file(repo.path("data/a")).unwrap();

    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), before, "the empty folders must survive");
}

// issue 7, defect 8
#[test]
fn a_folder_the_new_version_drops_is_removed_while_a_users_empty_folder_stays() {
    let repo = Repo::new();
    repo.write("data/keep", "content of keep\n");
    repo.write("data/old/x", "content of x\n");
    repo.write("data/old/deeper/y", "content of y\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let v1 = repo.read_string("data.bale");
    fs::remove_dir_all(repo.path("data/old")).unwrap();
    repo.bale(&["commit", "-q"]).ok();
    let v2 = repo.read_string("data.bale");
    fs::write(repo.path("data.bale"), &v1).unwrap();
    repo.bale(&["checkout", "-q"]).ok();
    assert!(repo.path("data/old/deeper/y").is_file());
    fs::create_dir(repo.path("data/mine")).unwrap();

    fs::write(repo.path("data.bale"), &v2).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(
        repo.tree("data"),
        "f 644 \"keep\" \"content of keep\\n\"\nd 755 \"mine\"\n",
        "data/old must be gone, data/mine must stay"
    );
}

// issue 7, defect 9
#[test]
fn appending_to_a_hardlinked_file_makes_status_name_the_corrupt_object_and_fsck() {
    if !running_as_root(
        "appending_to_a_hardlinked_file_makes_status_name_the_corrupt_object_and_fsck",
    ) {
        return;
    }
    let repo = linked_sample("hardlink");
    append(&repo, "data/f", "appended in place\n");

    assert_status_names_the_corrupt_object(&repo);
}

// issue 7, defect 9
#[test]
fn commit_after_appending_to_a_hardlinked_file_records_it_and_drops_the_corrupt_object() {
    if !running_as_root(
        "commit_after_appending_to_a_hardlinked_file_records_it_and_drops_the_corrupt_object",
    ) {
        return;
    }
    let repo = linked_sample("hardlink");
    let old = repo.pointer_hash("data.bale");
    append(&repo, "data/f", "appended in place\n");
    let new_content = b"original content\nappended in place\n";

    assert_commit_records_the_edit(&repo, &old, new_content);
    assert_eq!(fs::read(repo.object_for(new_content)).unwrap(), new_content);
    assert_cache_sound(&repo);
    repo.bale(&["fsck"]).ok();
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

// issue 7, defect 9
#[test]
fn fsck_exits_0_on_a_sound_cache_and_1_naming_a_corrupt_object() {
    let repo = Repo::new();
    repo.write("data/f", "original content\n");
    repo.write("data/g", "other content\n");
    repo.bale(&["add", "-q", "data"]).ok();
    repo.bale(&["fsck"]).ok();

    let obj = repo.object_for(b"other content\n");
    fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&obj, "other content, damaged\n").unwrap();
    fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let fsck = repo.bale(&["fsck"]).fails();
    assert_stderr_has(&fsck, &hash_hex(b"other content\n"));
    assert!(
        !fsck.stderr.contains(&hash_hex(b"original content\n")),
        "only the corrupt object may be named:\n{fsck}"
    );
}

// issue 7, defect 9
#[test]
fn writing_through_a_cache_symlink_is_reported_and_committed() {
    if !running_as_root("writing_through_a_cache_symlink_is_reported_and_committed") {
        return;
    }
    let repo = linked_sample("symlink");
    let old = repo.pointer_hash("data.bale");
    append(&repo, "data/f", "appended in place\n");
    let new_content = b"original content\nappended in place\n";

    assert_status_names_the_corrupt_object(&repo);

    assert_commit_records_the_edit(&repo, &old, new_content);
    assert_eq!(repo.read("data/f"), new_content);
    assert_cache_sound(&repo);
}

// issue 7, defect 11
#[test]
fn a_user_file_named_like_a_temp_file_is_tracked_by_add() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.write("data/.bale-tmp.notes", "my notes\n");
    repo.bale(&["add", "-q", "data"]).ok();

    assert_eq!(
        repo.pointer("data.bale")["outs"][0]["nfiles"].as_u64(),
        Some(2),
        "nfiles must count .bale-tmp.notes:\n{}",
        repo.read_string("data.bale")
    );
    let manifest = manifest_of(&repo, "data.bale");
    assert!(
        manifest.lines().any(|l| l.ends_with(" .bale-tmp.notes")),
        "the manifest must list .bale-tmp.notes:\n{manifest}"
    );
    assert_eq!(repo.read_string("data/.bale-tmp.notes"), "my notes\n");
}

// issue 7, defect 11
#[test]
fn checkout_never_deletes_a_user_file_named_like_a_temp_file() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    repo.write("data/sub/.bale-tmp.notes", "my notes\n");
    repo.bale(&["add", "-q", "data"]).ok();
    let before = repo.tree("data");

    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), before, "a no-op checkout deleted a file");

    fs::remove_file(repo.path("data/a")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(
        repo.tree("data"),
        before,
        "a checkout that repairs data/a deleted another file"
    );
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

// A killed run leaves its temp file beside the pointer file or .gitignore
// it was writing; the next writer there removes it, and only it.
#[test]
fn temp_files_a_killed_run_left_beside_pointer_files_are_removed() {
    let repo = Repo::new();
    repo.write("data/a", "content of a\n");
    // No pid is above the kernel's maximum (4194304): its process is gone.
    let leftover = repo.path(&common::temp_name(&repo, 99999999, "Ab3dEf6hIj9k"));
    fs::write(&leftover, "half a pointer file").unwrap();
    let live = repo.path(&common::temp_name(&repo, 1, "Ab3dEf6hIj9k"));
    fs::write(&live, "pid 1 is running").unwrap();
    repo.write(".bale-tmp.notes", "my notes\n");
    // Named as bale names them, but not under this repository's key: a
    // user's (or another repository's) file.
    let untagged = repo.path(".bale-tmp.99999999.Ab3dEf6hIj9k");
    fs::write(&untagged, "mine").unwrap();
    repo.bale(&["add", "-q", "data"]).ok();
    assert!(!leftover.exists(), "the leftover of a killed run stays");
    assert!(live.exists(), "a running process's temp file was removed");
    assert_eq!(repo.read_string(".bale-tmp.notes"), "my notes\n");
    assert_eq!(repo.read_string(".bale-tmp.99999999.Ab3dEf6hIj9k"), "mine");
}

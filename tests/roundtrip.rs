//! add → rm -rf → checkout gives back the very same tree, and switching a
//! pointer file between versions switches the workspace.

mod common;

use std::fs;

use common::{Repo, ino, odd_tree, tree};

#[test]
fn nested_tree_with_odd_names_survives_add_rm_checkout() {
    let repo = Repo::new();
    odd_tree(&repo, "data");
    let before = repo.tree("data");

    let add = repo.bale(&["add", "data"]).ok();
    assert!(add.stdout.contains("data: added 15 files"), "{add}");
    assert_eq!(
        repo.tree("data"),
        before,
        "add (copy) must not change the tree"
    );

    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["status"]).ok();
    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), before);
    assert!(common::temp_files(&repo.root).is_empty());

    let status = repo.bale(&["status"]).ok();
    assert_eq!(status.stdout, "data: unchanged\n");
}

#[test]
fn a_second_checkout_of_a_clean_tree_touches_nothing() {
    let repo = Repo::new();
    odd_tree(&repo, "data");
    repo.bale(&["add", "data"]).ok();
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();

    let stats = |rel: &str| {
        let m = common::meta(&repo.path(rel));
        (
            std::os::unix::fs::MetadataExt::ino(&m),
            m.modified().unwrap(),
        )
    };
    let files = ["data/plain.txt", "data/deep/big.bin", "data/bin/run.sh"];
    let before: Vec<_> = files.iter().map(|f| stats(f)).collect();

    let again = repo.bale(&["checkout"]).ok();
    assert_eq!(again.stdout, "data: unchanged\n");
    let after: Vec<_> = files.iter().map(|f| stats(f)).collect();
    assert_eq!(before, after, "files already right must be left alone");
}

#[test]
fn checkout_restores_only_what_is_missing() {
    let repo = Repo::new();
    odd_tree(&repo, "data");
    let expected = repo.tree("data");
    repo.bale(&["add", "data"]).ok();
    let kept = ino(&repo.path("data/plain.txt"));
    fs::remove_file(repo.path("data/deep/a/b/c/d/e/leaf")).unwrap();
    fs::remove_dir_all(repo.path("data/with space")).unwrap();

    let st = repo.bale(&["status"]).ok();
    assert_eq!(
        st.stdout,
        "data: modified (0 added, 0 modified, 2 deleted)\n"
    );
    repo.bale(&["checkout", "data"]).ok();
    assert_eq!(repo.tree("data"), expected);
    assert_eq!(ino(&repo.path("data/plain.txt")), kept);
}

#[test]
fn a_file_out_round_trips_with_its_executable_bit() {
    let repo = Repo::new();
    repo.write_exec("tool.sh", "#!/bin/sh\nexit 0\n");
    repo.write("notes.txt", "");
    let before = (repo.tree("tool.sh"), repo.tree("notes.txt"));
    repo.bale(&["add", "tool.sh", "notes.txt"]).ok();

    let p = repo.pointer("tool.sh.bale");
    assert_eq!(p["outs"][0]["type"].as_str(), Some("file"));
    assert_eq!(p["outs"][0]["path"].as_str(), Some("tool.sh"));

    fs::remove_file(repo.path("tool.sh")).unwrap();
    fs::remove_file(repo.path("notes.txt")).unwrap();
    repo.bale(&["checkout", "tool.sh.bale", "notes.txt"]).ok();
    assert_eq!((repo.tree("tool.sh"), repo.tree("notes.txt")), before);
}

#[test]
fn outs_in_subfolders_get_their_pointer_and_gitignore_beside_them() {
    let repo = Repo::new();
    odd_tree(&repo, "projects/p 1/data");
    repo.write("projects/p 1/.gitignore", "*.log\n");
    let expected = repo.tree("projects/p 1/data");

    repo.bale(&["-C", "projects", "add", "p 1/data"]).ok();
    assert!(repo.path("projects/p 1/data.bale").is_file());
    assert_eq!(
        repo.read_string("projects/p 1/.gitignore"),
        "*.log\n/data\n",
        "the line is appended to the .gitignore beside the out"
    );
    assert!(!repo.path(".gitignore").exists());

    fs::remove_dir_all(repo.path("projects/p 1/data")).unwrap();
    // From a subfolder, no target means every pointer file below it.
    let co = repo.bale(&["-C", "projects/p 1", "checkout"]).ok();
    assert!(co.stdout.contains("projects/p 1/data"), "{co}");
    assert_eq!(repo.tree("projects/p 1/data"), expected);
}

#[test]
fn switching_the_pointer_file_between_versions_switches_the_workspace() {
    let repo = Repo::new();
    repo.write("data/keep", "same in both\n");
    repo.write("data/changes", "version 1\n");
    repo.write("data/only-v1/old", "gone in v2\n");
    repo.bale(&["add", "data"]).ok();
    let v1_pointer = repo.read_string("data.bale");
    let v1 = repo.tree("data");

    repo.write("data/changes", "version 2, longer\n");
    fs::remove_dir_all(repo.path("data/only-v1")).unwrap();
    repo.write_exec("data/only-v2/new.sh", "#!/bin/sh\n");
    repo.bale(&["add", "data"]).ok();
    let v2_pointer = repo.read_string("data.bale");
    let v2 = repo.tree("data");
    assert_ne!(v1_pointer, v2_pointer);
    assert_eq!(
        repo.read_string(".gitignore"),
        "/data\n",
        "re-adding must not repeat the .gitignore line"
    );

    // What `git checkout` of the pointer file does, then `bale checkout`.
    fs::write(repo.path("data.bale"), &v1_pointer).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(tree(&repo.path("data")), v1);
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");

    fs::write(repo.path("data.bale"), &v2_pointer).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(tree(&repo.path("data")), v2);
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

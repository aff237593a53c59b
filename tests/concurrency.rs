//! Interrupted and simultaneous runs: a checkout or add killed with SIGKILL
//! leaves whole files only and a re-run completes; two bale processes at
//! once never corrupt the workspace, the cache or the state DB.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Repo, TEMP_PREFIX, command_in, hash_hex, temp_files, wait};

/// Writes `folders` × `per_folder` small files of distinct content under
/// `out` (one thread per folder: creating files is slow on some file
/// systems) and returns them by path relative to the repository root.
fn many_files(
    repo: &Repo,
    out: &str,
    folders: usize,
    per_folder: usize,
) -> BTreeMap<String, Vec<u8>> {
    let folder = |d: usize| -> Vec<(String, Vec<u8>)> {
        (0..per_folder)
            .map(|f| {
                let rel = format!("{out}/d{d:02}/f{f:03}");
                let content = format!("{rel}\n").repeat(1 + (f % 5) * 40).into_bytes();
                repo.write(&rel, &content);
                (rel, content)
            })
            .collect()
    };
    std::thread::scope(|s| {
        let jobs: Vec<_> = (0..folders).map(|d| s.spawn(move || folder(d))).collect();
        jobs.into_iter().flat_map(|j| j.join().unwrap()).collect()
    })
}

/// The files (not folders) under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files
}

/// Checks that every file under `out` is one of `expected` with its whole
/// content (temp files aside) and returns how many there are.
fn whole_files(repo: &Repo, out: &str, expected: &BTreeMap<String, Vec<u8>>) -> usize {
    let mut count = 0;
    for p in files_under(&repo.path(out)) {
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX)
        {
            continue;
        }
        let rel = p
            .strip_prefix(&repo.root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let want = expected
            .get(&rel)
            .unwrap_or_else(|| panic!("unexpected file {rel}"));
        let got = fs::read(&p).unwrap();
        assert!(
            &got == want,
            "{rel} is partial or wrong: {} bytes instead of {}",
            got.len(),
            want.len()
        );
        count += 1;
    }
    count
}

/// Every object in the cache holds the content its name says.
fn assert_cache_sound(cache: &Path) {
    for prefix in fs::read_dir(cache).unwrap() {
        let prefix = prefix.unwrap();
        let name = prefix.file_name().into_string().unwrap();
        if name.len() != 2 {
            continue;
        }
        for obj in fs::read_dir(prefix.path()).unwrap() {
            let obj = obj.unwrap();
            let hex = format!("{name}{}", obj.file_name().to_str().unwrap());
            let content = fs::read(obj.path()).unwrap();
            assert_eq!(hash_hex(&content), hex, "object {hex} is corrupt");
        }
    }
}

/// Runs `bale args` in the background and kills it with SIGKILL after a
/// delay that adapts until the kill lands mid-way: `done()` counts what is
/// in place, between 1 and `total - 1`. `reset` prepares each attempt.
/// Returns whether a kill landed mid-way.
fn kill_midway(
    repo: &Repo,
    args: &[&str],
    reset: impl Fn(),
    done: impl Fn() -> usize,
    total: usize,
) -> bool {
    let mut delay = Duration::from_millis(40);
    for _ in 0..40 {
        reset();
        let mut child = command_in(&repo.root, args).spawn().unwrap();
        let started = Instant::now();
        sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
        }
        let n = done();
        if !finished && n > 0 && n < total {
            eprintln!(
                "killed `bale {}` after {:?} with {n} of {total} done",
                args.join(" "),
                started.elapsed()
            );
            return true;
        }
        if finished || n == total {
            delay /= 2;
        } else {
            delay = delay * 3 / 2 + Duration::from_millis(2);
        }
    }
    false
}

/// Removes every file under `dir`, keeping the folders.
fn remove_files_under(dir: &std::path::Path) {
    for f in files_under(dir) {
        fs::remove_file(f).unwrap();
    }
}

/// The whole files of `data` in the staging folders under `.bale/tmp/`
/// (a fresh checkout builds its out there); panics on a file not in it.
fn staged_whole_files(repo: &Repo, expected: &BTreeMap<String, Vec<u8>>) -> usize {
    let mut count = 0;
    for stage in fs::read_dir(repo.path(".bale/tmp")).unwrap().flatten() {
        if !stage.file_type().unwrap().is_dir() {
            continue;
        }
        for f in files_under(&stage.path()) {
            let rel = f.strip_prefix(stage.path()).unwrap();
            let key = format!("data/{}", rel.to_str().unwrap());
            let want = expected
                .get(&key)
                .unwrap_or_else(|| panic!("unexpected staged file {key}"));
            // A file being written is the one partial file allowed: it is
            // not under its final name until the folder is.
            if &fs::read(&f).unwrap() == want {
                count += 1;
            }
        }
    }
    count
}

/// A repository with `cache.type` copy and 2,500 files added as `data`:
/// the repository, the files' contents and the tree.
fn added_copies() -> (Repo, BTreeMap<String, Vec<u8>>, String) {
    let repo = Repo::new();
    repo.cache_type("copy");
    let expected = many_files(&repo, "data", 25, 100);
    repo.bale(&["add", "-q", "data"]).ok();
    let tree = repo.tree("data");
    (repo, expected, tree)
}

#[test]
fn a_checkout_killed_with_sigkill_leaves_whole_files_and_a_rerun_completes() {
    let (repo, expected, expected_tree) = added_copies();

    // The folders stay: the files are made in place, each beside its
    // final name and renamed over it.
    let midway = kill_midway(
        &repo,
        &["checkout", "-q"],
        || remove_files_under(&repo.path("data")),
        || whole_files(&repo, "data", &expected),
        expected.len(),
    );
    assert!(midway, "never managed to kill the checkout mid-way");
    assert_eq!(repo.bale(&["status"]).ok().stdout.lines().count(), 1);

    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), expected_tree);
    assert_eq!(temp_files(&repo.root), Vec::<std::path::PathBuf>::new());
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
    assert_eq!(repo.bale(&["checkout"]).ok().stdout, "data: unchanged\n");
}

#[test]
fn a_fresh_checkout_killed_with_sigkill_leaves_no_folder_and_a_rerun_completes() {
    let (repo, expected, expected_tree) = added_copies();

    // Nothing stands where the out goes: it is built in `.bale/tmp/` and
    // renamed into place whole, so a kill leaves no `data` at all.
    let midway = kill_midway(
        &repo,
        &["checkout", "-q"],
        || {
            let _ = fs::remove_dir_all(repo.path("data"));
        },
        || {
            if repo.path("data").exists() {
                whole_files(&repo, "data", &expected)
            } else {
                staged_whole_files(&repo, &expected)
            }
        },
        expected.len(),
    );
    assert!(midway, "never managed to kill the checkout mid-way");
    assert!(
        !repo.path("data").exists(),
        "a killed fresh checkout left a partial out"
    );

    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), expected_tree);
    let leftovers: Vec<_> = fs::read_dir(repo.path(".bale/tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(repo.bale(&["status"]).ok().stdout, "data: unchanged\n");
}

#[test]
fn an_add_killed_with_sigkill_leaves_no_partial_object_and_a_rerun_completes() {
    let repo = Repo::new();
    repo.cache_type("copy");
    let expected = many_files(&repo, "data", 20, 75);
    let expected_tree = repo.tree("data");
    let cache = repo.path(".bale/cache");

    let midway = kill_midway(
        &repo,
        &["add", "-q", "data"],
        || {
            let _ = fs::remove_dir_all(&cache);
            fs::create_dir(&cache).unwrap();
        },
        || repo.objects().len(),
        // Distinct contents plus the manifest.
        expected.len() + 1,
    );
    assert!(midway, "never managed to kill the add mid-way");
    assert_cache_sound(&cache);
    assert!(
        !repo.path("data.bale").exists(),
        "a pointer to an incomplete add"
    );

    repo.bale(&["add", "data"]).ok();
    assert_cache_sound(&cache);
    assert_eq!(repo.tree("data"), expected_tree);
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!(repo.tree("data"), expected_tree);
    assert!(temp_files(&repo.root).is_empty());
}

/// Each run either succeeded or gave up on the lock with a clear error.
fn assert_ok_or_locked(run: &common::Run) {
    match run.code {
        Some(0) => {}
        Some(1) => assert!(run.stderr.contains("locked"), "{run}"),
        _ => panic!("neither success nor a lock error:\n{run}"),
    }
}

#[test]
fn two_checkouts_at_once_leave_a_correct_tree() {
    for link in ["copy", "hardlink"] {
        let repo = Repo::new();
        repo.cache_type(link);
        many_files(&repo, "data", 10, 50);
        repo.bale(&["add", "-q", "data"]).ok();
        let expected_tree = repo.tree("data");

        for round in 0..3 {
            fs::remove_dir_all(repo.path("data")).unwrap();
            let args = ["checkout", "-q"];
            let a = command_in(&repo.root, &args).spawn().unwrap();
            let b = command_in(&repo.root, &args).spawn().unwrap();
            let (a, b) = (wait(a, &args), wait(b, &args));
            assert_ok_or_locked(&a);
            assert_ok_or_locked(&b);
            assert!(a.code == Some(0) || b.code == Some(0), "{a}\n{b}");
            assert_eq!(repo.tree("data"), expected_tree, "{link}, round {round}");
            assert!(temp_files(&repo.root).is_empty(), "{link}, round {round}");
            assert_eq!(
                repo.bale(&["status"]).ok().stdout,
                "data: unchanged\n",
                "{link}, round {round}"
            );
        }
    }
}

#[test]
fn two_adds_at_once_in_one_repository_both_get_recorded() {
    let repo = Repo::new();
    repo.cache_type("copy");
    many_files(&repo, "one", 10, 40);
    many_files(&repo, "two", 10, 40);
    let (one, two) = (repo.tree("one"), repo.tree("two"));

    let a = command_in(&repo.root, &["add", "one"]).spawn().unwrap();
    let b = command_in(&repo.root, &["add", "two"]).spawn().unwrap();
    let (a, b) = (wait(a, &["add", "one"]), wait(b, &["add", "two"]));
    assert_ok_or_locked(&a);
    assert_ok_or_locked(&b);
    for (run, out) in [(a, "one"), (b, "two")] {
        if run.code != Some(0) {
            repo.bale(&["add", out]).ok();
        }
    }
    assert_cache_sound(&repo.path(".bale/cache"));
    assert_eq!(
        repo.bale(&["status"]).ok().stdout,
        "one: unchanged\ntwo: unchanged\n"
    );
    fs::remove_dir_all(repo.path("one")).unwrap();
    fs::remove_dir_all(repo.path("two")).unwrap();
    repo.bale(&["checkout"]).ok();
    assert_eq!((repo.tree("one"), repo.tree("two")), (one, two));
}

#[test]
fn two_repositories_adding_the_same_data_into_one_shared_cache() {
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    let repos = [Repo::new(), Repo::new()];
    let mut trees = Vec::new();
    for r in &repos {
        r.bale(&["config", "-q", "cache.dir", cache.to_str().unwrap()])
            .ok();
        r.cache_type("copy");
        many_files(r, "data", 10, 50);
        trees.push(r.tree("data"));
    }
    assert_eq!(trees[0], trees[1]);

    let args = ["add", "-q", "data"];
    let children: Vec<_> = repos
        .iter()
        .map(|r| command_in(&r.root, &args).spawn().unwrap())
        .collect();
    for c in children {
        wait(c, &args).ok();
    }
    assert_cache_sound(&cache);
    assert!(
        fs::read_dir(repos[0].path(".bale/cache"))
            .map(|mut d| d.all(|e| e.unwrap().file_name() == "tmp"))
            .unwrap_or(true),
        "objects went to the repository's own cache"
    );
    for (r, t) in repos.iter().zip(&trees) {
        fs::remove_dir_all(r.path("data")).unwrap();
        r.bale(&["checkout"]).ok();
        assert_eq!(&r.tree("data"), t);
    }
}

//! Packed objects (spec, "Packed objects"): `bale pack` moves small loose
//! objects into `<cache>/packs/*.pack` with an SQLite `index.db`, never one
//! that a workspace hardlink or symlink uses; checkouts read packs byte for
//! byte; `bale fsck` names a corrupt packed object; `--rebuild-index`
//! rebuilds the index from the packs; a corrupt index is set aside with a
//! warning; a torn tail is never served and the next writer copes; `gc`
//! drops packed objects no pointer references.
//!
//! These tests use `bale add` and `bale pack` only (no `bale import`), so
//! that they test packs whatever the state of the importer.

mod common;

use std::fs;

use common::{
    Expect, Repo, Run, append_to, assert_linked_as, assert_out_files, expected_tree, is_loose,
    manifest_objects, many_small, meta, noise_seeded, pack_bytes, pack_files, packs_dir,
    patch_in_place, write_expected,
};

/// `pack.threshold`'s default: objects of this size or more stay loose.
const THRESHOLD: usize = 1 << 20;

/// 300 small files of distinct, incompressible content (so every record
/// is stored raw), one in 97 executable.
fn small_files(seed: u64) -> Vec<Expect> {
    many_small(300, seed)
}

/// A repository with `cache.type` `t` and `files` added as the folder
/// `data`.
fn added(t: &str, files: &[Expect]) -> Repo {
    let repo = Repo::new();
    repo.cache_type(t);
    write_expected(&repo.path("data"), files);
    repo.bale(&["add", "-q", "data"]).ok();
    repo
}

/// `bale pack`, asserting success.
#[track_caller]
fn pack(repo: &Repo, how: &str) -> Run {
    let run = repo.bale(&["pack"]);
    assert_eq!(run.code, Some(0), "{how}: bale pack must succeed:\n{run}");
    run
}

/// The `warning:` lines of stderr.
fn warning_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect()
}

/// Removes `data`, checks it out again and asserts its content and that
/// status calls it unchanged.
#[track_caller]
fn assert_checks_out(repo: &Repo, files: &[Expect], how: &str) {
    fs::remove_dir_all(repo.path("data")).unwrap();
    let co = repo.bale(&["checkout"]);
    assert_eq!(co.code, Some(0), "{how}: checkout after rm -rf data:\n{co}");
    assert_out_files(repo, "data", files, how);
    let st = repo.bale(&["status"]);
    assert_eq!(
        (st.code, st.stdout.as_str()),
        (Some(0), "data: unchanged\n"),
        "{how}: status:\n{st}"
    );
}

/// Where `content` lies in the packs: (pack, offset), if some pack holds it
/// as is.
fn find_in_packs(repo: &Repo, content: &[u8]) -> Option<(std::path::PathBuf, usize)> {
    for p in pack_files(repo) {
        let bytes = fs::read(&p).unwrap();
        if let Some(at) = bytes.windows(content.len()).position(|w| w == content) {
            return Some((p, at));
        }
    }
    None
}

/// Removes `index.db` and its WAL and shared-memory files.
fn remove_index(repo: &Repo) {
    for name in ["index.db", "index.db-wal", "index.db-shm"] {
        let p = packs_dir(repo).join(name);
        if p.exists() {
            fs::remove_file(&p).unwrap();
        }
    }
}

/// Asserts that `bale pack` packed every object of `files` under the
/// threshold: none is a loose file any more, and the packs hold data.
#[track_caller]
fn assert_small_packed(repo: &Repo, files: &[Expect], how: &str) {
    assert!(
        pack_bytes(repo) > 0,
        "{how}: no *.pack file (or only empty ones) under .bale/cache/packs"
    );
    let still_loose: Vec<&str> = files
        .iter()
        .filter(|f| f.content.len() < THRESHOLD && is_loose(repo, &f.content))
        .map(|f| f.rel.as_str())
        .collect();
    assert!(
        still_loose.is_empty(),
        "{how}: {} small objects that no workspace link uses are still loose, e.g. {:?}",
        still_loose.len(),
        &still_loose[..still_loose.len().min(5)]
    );
}

#[test]
fn pack_moves_small_loose_objects_into_packs_and_checkout_reads_them() {
    let mut files = small_files(1);
    let large = noise_seeded(2, THRESHOLD + THRESHOLD / 2);
    files.push(Expect::new("big/large.bin", &large, false));
    let repo = added("copy", &files);
    let manifest = repo.pointer_hash("data.bale");
    let loose_before = repo.objects().len();
    assert!(loose_before > 300, "bale add stored {loose_before} objects");

    pack(&repo, "bale pack");
    let loose_after = repo.objects();
    assert!(
        loose_after.len() < loose_before,
        "bale pack left {} loose objects of {loose_before}",
        loose_after.len()
    );
    assert_small_packed(&repo, &files, "bale pack");
    assert!(
        is_loose(&repo, &large),
        "an object over pack.threshold must stay loose"
    );
    assert!(
        repo.object_path(&manifest).is_file(),
        "the manifest must stay a loose object"
    );
    assert_eq!(manifest_objects(&repo).len(), 1, "manifests in the cache");
    assert!(
        packs_dir(&repo).join("index.db").is_file(),
        "no .bale/cache/packs/index.db"
    );

    // Packing does not disturb the workspace.
    let st = repo.bale(&["status"]).ok();
    assert_eq!(
        st.stdout, "data: unchanged\n",
        "status after bale pack:\n{st}"
    );
    repo.bale(&["fsck"]).ok();

    assert_checks_out(&repo, &files, "checkout from packs");
    assert_eq!(
        repo.tree("data"),
        expected_tree(&files),
        "the tree checked out from packs"
    );
    assert_eq!(
        repo.objects(),
        loose_after,
        "a copy checkout must copy from the packs, not unpack objects to loose files"
    );
}

#[test]
fn pack_twice_stores_nothing_new() {
    let files = small_files(3);
    let repo = added("copy", &files);
    pack(&repo, "the first bale pack");
    assert_small_packed(&repo, &files, "the first bale pack");
    let (loose, packed) = (repo.objects(), pack_bytes(&repo));
    pack(&repo, "the second bale pack");
    assert_eq!(
        repo.objects(),
        loose,
        "the second bale pack changed the loose objects"
    );
    assert_eq!(
        pack_bytes(&repo),
        packed,
        "the second bale pack, with nothing to pack, grew the packs"
    );
    repo.bale(&["fsck"]).ok();
}

/// A hardlink or symlink in the workspace is the loose object (or points at
/// it): packing it would break the workspace. The objects of another out,
/// added as copies before the link type changed, are packed as usual.
#[test]
fn pack_keeps_the_objects_of_workspace_links_loose() {
    for t in ["hardlink", "symlink"] {
        let repo = Repo::new();
        repo.cache_type("copy");
        let copies = many_small(100, 12);
        write_expected(&repo.path("other"), &copies);
        repo.bale(&["add", "-q", "other"]).ok();
        repo.cache_type(t);
        let files = small_files(4);
        write_expected(&repo.path("data"), &files);
        repo.bale(&["add", "-q", "data"]).ok();

        let how = format!("bale pack with cache.type {t}");
        pack(&repo, &how);
        assert_small_packed(&repo, &copies, &format!("{how}, the copies of other"));
        for f in files.iter().filter(|f| !f.exec) {
            assert_linked_as(&repo, &format!("data/{}", f.rel), &f.content, t, false);
        }
        assert_out_files(&repo, "data", &files, &how);
        assert_out_files(&repo, "other", &copies, &how);
        let st = repo.bale(&["status"]).ok();
        assert_eq!(
            st.stdout, "data: unchanged\nother: unchanged\n",
            "{how}: status:\n{st}"
        );
        repo.bale(&["fsck"]).ok();
        let co = repo.bale(&["checkout", "data"]).ok();
        assert_eq!(co.stdout, "data: unchanged\n", "{how}: checkout:\n{co}");
    }
}

/// Objects packed under `copy` are unpacked to loose files on demand when
/// the workspace is then linked by hardlink or symlink.
#[test]
fn a_linked_checkout_of_packed_objects_unpacks_them_on_demand() {
    for t in ["hardlink", "symlink"] {
        let files = small_files(5);
        let repo = added("copy", &files);
        pack(&repo, "bale pack");
        assert_small_packed(&repo, &files, "bale pack");
        repo.cache_type(t);
        let how = format!("checkout of packed objects with cache.type {t}");
        assert_checks_out(&repo, &files, &how);
        for f in files.iter().filter(|f| !f.exec) {
            assert_linked_as(&repo, &format!("data/{}", f.rel), &f.content, t, false);
        }
        repo.bale(&["fsck"]).ok();
    }
}

#[test]
fn fsck_passes_on_sound_packs_and_names_a_corrupt_packed_object() {
    let files: Vec<Expect> = (0..300)
        .map(|i| Expect::new(&format!("f{i:03}"), noise_seeded(1000 + i, 4096), false))
        .collect();
    let repo = added("copy", &files);
    pack(&repo, "bale pack");
    assert_small_packed(&repo, &files, "bale pack");
    repo.bale(&["fsck"]).ok();

    // The file whose record lies nearest the middle of its pack.
    let mut found: Vec<(&Expect, std::path::PathBuf, usize, u64)> = files
        .iter()
        .filter_map(|f| {
            let (p, at) = find_in_packs(&repo, &f.content)?;
            let len = meta(&p).len();
            Some((f, p, at, len))
        })
        .collect();
    assert!(
        !found.is_empty(),
        "no pack holds a file's incompressible content as is"
    );
    found.sort_by_key(|(_, _, at, len)| (*at as i64 - *len as i64 / 2).abs());
    let (victim, pack_file, at, _) = &found[0];
    let offset = (*at + victim.content.len() / 2) as u64;
    let byte = victim.content[victim.content.len() / 2];
    patch_in_place(pack_file, offset, &[byte ^ 0x20]);

    let victim_hash = common::hash_hex(&victim.content);
    let fsck = repo.bale(&["fsck"]).fails();
    assert!(
        fsck.stderr.contains(&victim_hash),
        "fsck must name the corrupt object {victim_hash} ({}):\n{fsck}",
        victim.rel
    );
    let others: Vec<&str> = files
        .iter()
        .filter(|f| f.rel != victim.rel && fsck.stderr.contains(&common::hash_hex(&f.content)))
        .map(|f| f.rel.as_str())
        .collect();
    assert!(
        others.is_empty(),
        "fsck named sound objects as corrupt: {others:?}\n{fsck}"
    );
}

#[test]
fn fsck_rebuild_index_restores_a_deleted_index() {
    let files = small_files(6);
    let repo = added("copy", &files);
    pack(&repo, "bale pack");
    assert_small_packed(&repo, &files, "bale pack");
    remove_index(&repo);

    let run = repo.bale(&["fsck", "--rebuild-index"]);
    assert_eq!(run.code, Some(0), "fsck --rebuild-index:\n{run}");
    assert!(
        packs_dir(&repo).join("index.db").is_file(),
        "fsck --rebuild-index made no index.db"
    );
    repo.bale(&["fsck"]).ok();
    let st = repo.bale(&["status"]).ok();
    assert_eq!(
        st.stdout, "data: unchanged\n",
        "status after the rebuild:\n{st}"
    );
    assert_checks_out(&repo, &files, "checkout after fsck --rebuild-index");
}

#[test]
fn a_corrupt_index_is_set_aside_with_a_warning_and_commands_go_on() {
    let files = small_files(7);
    let repo = added("copy", &files);
    pack(&repo, "bale pack");
    assert_small_packed(&repo, &files, "bale pack");
    remove_index(&repo);
    fs::write(
        packs_dir(&repo).join("index.db"),
        b"this is not an SQLite database\n".repeat(200),
    )
    .unwrap();

    fs::remove_dir_all(repo.path("data")).unwrap();
    let co = repo.bale(&["checkout"]);
    assert_eq!(
        co.code,
        Some(0),
        "checkout with a corrupt index.db must go on:\n{co}"
    );
    let warnings = warning_lines(&co);
    assert!(
        warnings.iter().any(|w| w.contains("index.db")),
        "expected a `warning:` line naming index.db:\n{co}"
    );
    assert_out_files(&repo, "data", &files, "checkout with a corrupt index.db");

    let again = repo.bale(&["status"]).ok();
    assert_eq!(again.stdout, "data: unchanged\n", "{again}");
    assert!(
        warning_lines(&again).is_empty(),
        "the index must have been rebuilt once, not warned about again:\n{again}"
    );
    repo.bale(&["fsck"]).ok();
    assert_checks_out(&repo, &files, "checkout after the index was set aside");
}

/// A crash mid-append leaves bytes after the last committed record: garbage,
/// or the start of a record. Readers never serve them; the next writer
/// truncates or re-indexes them, and the packs stay sound.
#[test]
fn a_torn_pack_tail_is_never_served_and_the_next_writer_copes() {
    for tail in ["garbage", "a torn record"] {
        let files = small_files(8);
        let repo = added("copy", &files);
        pack(&repo, "bale pack");
        assert_small_packed(&repo, &files, "bale pack");
        let last = pack_files(&repo).pop().expect("no pack file");
        let torn = match tail {
            "garbage" => noise_seeded(9, 777),
            // The pack's first 64 bytes: its header, if it has one, and the
            // start of the first record (every payload here is over 64
            // bytes, so this is never a whole record).
            _ => fs::read(&last).unwrap()[..64].to_vec(),
        };
        append_to(&last, &torn);
        let how = format!("after {tail} appended to {}", last.display());

        assert_checks_out(&repo, &files, &how);

        // The next writer: more small objects, added and packed.
        let more: Vec<Expect> = many_small(200, 10)
            .into_iter()
            .map(|mut f| {
                f.rel = format!("more/{}", f.rel);
                f
            })
            .collect();
        write_expected(&repo.path("data"), &more);
        repo.bale(&["commit"]).ok();
        pack(&repo, &how);
        let fsck = repo.bale(&["fsck"]);
        assert_eq!(
            fsck.code,
            Some(0),
            "{how}: fsck after the next writer:\n{fsck}"
        );
        let all: Vec<Expect> = files.iter().chain(more.iter()).cloned().collect();
        let left_loose: Vec<&str> = more
            .iter()
            .filter(|f| is_loose(&repo, &f.content))
            .map(|f| f.rel.as_str())
            .collect();
        assert!(
            left_loose.is_empty(),
            "{how}: bale pack left new objects loose: {left_loose:?}"
        );
        assert_checks_out(&repo, &all, &how);
    }
}

/// `gc` drops packed objects that no pointer references, rewriting a pack
/// whose dead share is large.
#[test]
fn gc_drops_packed_objects_no_pointer_references() {
    let old = small_files(11);
    let repo = added("copy", &old);
    pack(&repo, "bale pack");
    assert_small_packed(&repo, &old, "bale pack");
    let before = pack_bytes(&repo);

    // A new version in which 290 of the 300 files changed.
    let new: Vec<Expect> = old
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.clone();
            if i >= 10 {
                f.content = noise_seeded(5000 + i as u64, f.content.len());
            }
            f
        })
        .collect();
    write_expected(&repo.path("data"), &new);
    repo.bale(&["commit"]).ok();
    let gc = repo.bale(&["gc", "--force"]);
    assert_eq!(gc.code, Some(0), "gc:\n{gc}");
    let dead_left: Vec<&str> = old[10..]
        .iter()
        .filter(|f| find_in_packs(&repo, &f.content).is_some() || is_loose(&repo, &f.content))
        .map(|f| f.rel.as_str())
        .collect();
    assert!(
        dead_left.is_empty(),
        "gc left {} of the 290 unreferenced packed objects (the pack was {before} bytes, \
         now {}), e.g. {:?}",
        dead_left.len(),
        pack_bytes(&repo),
        &dead_left[..dead_left.len().min(5)]
    );
    repo.bale(&["fsck"]).ok();
    pack(&repo, "bale pack after gc");
    repo.bale(&["fsck"]).ok();
    assert_checks_out(&repo, &new, "checkout after gc");
}

/// An unchanged out is skipped on its snapshot alone: a no-op checkout of
/// packed content never opens the pack index. (A garbage index would be
/// noticed, with a warning, by anything that opened it.)
#[test]
fn a_no_op_checkout_of_packed_content_never_opens_the_pack_index() {
    let files = small_files(23);
    let repo = added("copy", &files);
    pack(&repo, "packing the added files");
    fs::remove_dir_all(repo.path("data")).unwrap();
    repo.bale(&["checkout"]).ok();
    let index = packs_dir(&repo).join("index.db");
    fs::write(&index, b"this is no database, and nobody reads it").unwrap();
    let run = repo.bale(&["checkout"]).ok();
    assert!(
        run.stdout.contains("data: unchanged"),
        "the out must be unchanged:\n{run}"
    );
    assert!(
        warning_lines(&run).is_empty(),
        "a no-op checkout must not touch the pack index:\n{run}"
    );
    assert_eq!(
        fs::read(&index).unwrap(),
        b"this is no database, and nobody reads it",
        "the index was not even rebuilt"
    );
}

/// `bale pack` finds an object packed already: the loose copy goes only
/// if the packed record reads back sound, so bit rot in a pack never costs
/// the last good copy.
#[test]
fn pack_keeps_the_loose_copy_when_the_packed_one_is_corrupt() {
    let files = small_files(31);
    let repo = added("copy", &files);
    pack(&repo, "packing the added files");
    let victim = &files[10];
    let (pack_path, at) = find_in_packs(&repo, &victim.content).expect("the record is in a pack");
    let mut bytes = fs::read(&pack_path).unwrap();
    bytes[at + 3] ^= 0x40;
    fs::write(&pack_path, &bytes).unwrap();
    // The same content, added again: a sound loose object.
    fs::create_dir_all(repo.path("again")).unwrap();
    fs::write(repo.path("again/x"), &victim.content).unwrap();
    repo.bale(&["add", "-q", "again"]).ok();
    pack(&repo, "packing again");
    fs::remove_dir_all(repo.path("again")).unwrap();
    let run = repo.bale(&["checkout", "again"]);
    assert_eq!(run.code, Some(0), "the sound copy must survive:\n{run}");
    assert_eq!(fs::read(repo.path("again/x")).unwrap(), victim.content);
}

/// `data`'s 300 small files packed, then one byte flipped in the middle of
/// one file's record: (repo, files, that file, its pack file).
fn packed_with_a_flipped_byte() -> (Repo, Vec<Expect>, Expect, std::path::PathBuf) {
    let files = small_files(7);
    let repo = added("copy", &files);
    pack(&repo, "bale pack");
    assert_small_packed(&repo, &files, "bale pack");
    let victim = files
        .iter()
        .find(|f| f.content.len() > 64 && find_in_packs(&repo, &f.content).is_some())
        .expect("a file stored raw in a pack")
        .clone();
    let (pack_file, at) = find_in_packs(&repo, &victim.content).unwrap();
    let mid = victim.content.len() / 2;
    patch_in_place(&pack_file, (at + mid) as u64, &[victim.content[mid] ^ 0x20]);
    (repo, files, victim, pack_file)
}

/// The name of a pack file, as messages show it.
fn pack_name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

// A record dropped by the command that found it damaged stays named by
// fsck, with its pack and offset, until the object is back in the cache.
#[test]
fn a_record_dropped_by_checkout_is_named_by_every_fsck_until_the_object_is_back() {
    let (repo, _files, victim, pack_file) = packed_with_a_flipped_byte();
    let path = repo.path(&format!("data/{}", victim.rel));
    fs::remove_file(&path).unwrap();
    repo.bale(&["checkout"]).fails();
    let hash = common::hash_hex(&victim.content);
    for round in ["first", "second"] {
        let fsck = repo.bale(&["fsck"]).fails();
        assert!(
            fsck.stderr.contains(&pack_name(&pack_file))
                && fsck.stderr.contains("at byte")
                && fsck.stderr.contains(&hash),
            "{round} fsck must name the pack, the offset and the object:\n{fsck}"
        );
        assert!(!fsck.stdout.contains(" 0 damaged"), "{fsck}");
    }
    // The content added again: the object is in the cache, dealt with.
    common::write_file(&path, &victim.content, 0o644);
    repo.bale(&["commit", "-q"]).ok();
    repo.bale(&["fsck"]).ok();
}

#[test]
fn fsck_rebuild_index_names_a_record_it_cannot_read() {
    let (repo, _files, victim, pack_file) = packed_with_a_flipped_byte();
    let fsck = repo.bale(&["fsck", "--rebuild-index"]).fails();
    assert!(
        fsck.stderr.contains(&pack_name(&pack_file)) && fsck.stderr.contains("at byte"),
        "{fsck}"
    );
    assert!(
        fsck.stderr.contains(&common::hash_hex(&victim.content)),
        "{fsck}"
    );
    // gc rewrites the pack without the damaged record: dealt with.
    repo.bale(&["gc", "--workspace", "--force", "-q"]).ok();
    repo.bale(&["fsck"]).ok();
}

#[test]
fn a_truncated_pack_is_reported_once_as_truncated() {
    let files = small_files(8);
    let repo = added("copy", &files);
    pack(&repo, "bale pack");
    let packs = pack_files(&repo);
    assert_eq!(packs.len(), 1, "{packs:?}");
    let len = meta(&packs[0]).len();
    fs::OpenOptions::new()
        .write(true)
        .open(&packs[0])
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let fsck = repo.bale(&["fsck"]).fails();
    assert_eq!(fsck.stderr.matches("truncated").count(), 1, "{fsck}");
    assert!(fsck.stderr.lines().count() < 10, "{fsck}");
    // Still named on the next run.
    let again = repo.bale(&["fsck"]).fails();
    assert_eq!(again.stderr.matches("truncated").count(), 1, "{again}");
}

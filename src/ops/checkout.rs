//! checkout: an out whose pointer hash equals its snapshot's, and whose
//! fresh stat walk reproduces the snapshot exactly, is unchanged: nothing
//! else is done for it. Every other out is observed and planned; a plan
//! that would remove or replace anything runs only once every object the
//! new content needs is known to be in the cache.

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::LinkType;
use crate::manifest::Manifest;
use crate::out::Out;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::progress::Bar;
use crate::repo::Repo;
use crate::state::{Snapshot, SnapshotEntry, StateDb};
use crate::workspace::{
    self, Observation, apply, link::Linker, link::relink_advised, observe::Departures, plan,
    relink, rows, walk,
};

use super::{Changes, display_path, expected_of};

#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// Also relink right-content files whose link type differs.
    pub relink: bool,
    /// Drop workspace content that is not in the cache.
    pub force: bool,
}

/// One out's planned checkout.
pub struct OutPlan {
    pub out: Out,
    obs: Observation,
    /// The manifest planned for: the plan's writes are its entries.
    pub expected: Manifest,
    pub plan: plan::CheckoutPlan,
    /// Files with the right content relinked to the configured type.
    pub relinked: usize,
    /// Cache objects found corrupt (and set aside) while observing.
    pub corrupt: Vec<Error>,
    old: Option<Snapshot>,
    /// Only the files departed from `old` were planned (`plan_departed`): `old`
    /// is whole, and holds the rows of all the others.
    few: bool,
    /// Every kept file was checked to have the configured link type.
    relink: bool,
}

pub enum Planned {
    /// The snapshot matched: nothing to do.
    Unchanged(Box<(Out, Option<Snapshot>)>),
    Changes(Box<OutPlan>),
}

/// Plans one out.
pub fn plan_out(
    repo: &Repo,
    state: &StateDb,
    linker: &Linker,
    o: Out,
    opts: PlanOptions,
    quiet: bool,
) -> Result<Planned> {
    let mut snapshot = state.load(&o.key)?;
    let mut walked = super::walk_out(repo, &o, snapshot.as_ref().map_or(0, Snapshot::len))?;
    let departed = match (&snapshot, &walked) {
        (Some(s), Some(w)) if !opts.relink && s.hash == o.record.hash => {
            workspace::observe::departures(w, s, few_limit(s.len()))
        }
        _ => Departures::Other,
    };
    match departed {
        Departures::None => {
            return Ok(Planned::Unchanged(Box::new((
                o,
                snapshot.map(Snapshot::header_only),
            ))));
        }
        Departures::Few(d) if o.is_dir() => {
            let (Some(s), Some(w)) = (snapshot, walked) else {
                unreachable!("departures are only found between a snapshot and a walk")
            };
            // The walk's list goes before the manifest is read: the two
            // are the largest things a checkout holds.
            let few = departed_only(w, &d);
            let paths: Vec<&str> = d.iter().map(|x| x.recorded.path.as_str()).collect();
            if let Some(expected) = repo
                .cache
                .read_manifest_at(o.record.hash, &o.root, &paths)?
            {
                drop(paths);
                return plan_departed(repo, o, s, few, d, expected, opts, quiet);
            }
            // The manifest does not hold a file the snapshot does (the
            // snapshot was not made from it): the whole out is planned,
            // from a walk made again.
            drop((few, paths));
            snapshot = Some(s);
            walked = super::walk_out(repo, &o, snapshot.as_ref().map_or(0, Snapshot::len))?;
        }
        Departures::Few(_) | Departures::Other => {}
    }
    let obs = workspace::observe(&o.root, walked, snapshot.as_ref(), &repo.cache, quiet)?;
    check_holds_no_out(repo, &o, &obs)?;
    // What the snapshot knew is in the observation now: only its header
    // is needed further on, not one more copy of every file.
    let snapshot = snapshot.map(Snapshot::header_only);
    let expected = expected_of(repo, &o)?;
    let corrupt = corrupt_objects(repo, &o, &obs);
    let mut plan = plan::plan(
        &expected,
        o.is_dir(),
        &obs.files,
        &obs.dirs,
        obs.root,
        |h| repo.cache.contains(h),
        opts.force,
    );
    let mut relinked = 0;
    if opts.relink {
        // Settle the chain on what works here before judging links by it.
        if let Some(&(i, j)) = plan.kept.first() {
            let dest = crate::paths::join(&o.root, &obs.files[i].path);
            if let Some(dir) = dest.parent() {
                let e = expected.get(j);
                linker.probe_reflink(&repo.cache, e.hash, e.size, dir);
            }
        }
        let wrong = relink::wrong_links(&plan.kept, &obs.files, &expected, &repo.cache, linker);
        relinked = wrong.len();
        // `wrong` is a subsequence of `kept`, in the same order: one merge
        // pass takes it out (no set of 10^6 indices).
        let mut next_wrong = wrong.iter().peekable();
        plan.kept
            .retain(|pair| next_wrong.next_if(|&w| w == pair).is_none());
        plan.writes.reserve_exact(wrong.len());
        plan.writes
            .extend(wrong.iter().map(|&(_, entry)| plan::Write {
                entry,
                replaces: true,
            }));
    }
    if plan.conflicts.is_empty() {
        check_objects(repo, &o, &plan, &expected)?;
    }
    let mut obs = obs;
    keep_only_kept(&mut obs.files, &mut plan.kept);
    let expected = narrow(expected, &mut plan.writes);
    Ok(Planned::Changes(Box::new(OutPlan {
        out: o,
        obs,
        expected,
        plan,
        relinked,
        corrupt,
        old: snapshot,
        few: false,
        relink: opts.relink,
    })))
}

/// Refuses an out whose folder holds another out's pointer file (a pointer
/// edited by hand to name a folder that holds outs): checkout would
/// otherwise delete that pointer, its `.gitignore` and its out as files
/// the manifest does not list.
fn check_holds_no_out(repo: &Repo, o: &Out, obs: &Observation) -> Result<()> {
    let inner = obs
        .files
        .iter()
        .filter(|a| a.stat.kind == crate::fsutil::Kind::File)
        .filter(|a| a.path.ends_with(crate::pointer::SUFFIX))
        .map(|a| crate::paths::join(&o.root, &a.path))
        .find(|p| crate::pointer::PointerFile::read(p).is_ok());
    match inner {
        None => Ok(()),
        Some(p) => Err(Error::OutsOverlap {
            pointer: o.pointer.clone(),
            out: o.key.clone(),
            other_out: repo.relative(&p.with_extension(""))?,
            other_pointer: p,
        }),
    }
}

/// Departures from the snapshot up to which a repair plans only the files
/// that departed.
fn few_limit(files: usize) -> usize {
    (files / 64).max(4096)
}

/// Of a walk, only the departed files and the folders, in path order.
fn departed_only(walked: walk::Walk, departed: &[workspace::observe::Departed]) -> walk::Walk {
    let mut at = departed.iter().filter_map(|d| d.walked).peekable();
    // Into a list of its own: collected in place, the few entries would
    // keep the whole walk's allocation.
    let mut entries = Vec::new();
    entries.extend(
        walked
            .entries
            .into_iter()
            .enumerate()
            .filter(|(i, e)| at.next_if_eq(i).is_some() || e.stat.kind == crate::fsutil::Kind::Dir)
            .map(|(_, e)| e),
    );
    walk::Walk {
        entries,
        stale_temps: Vec::new(),
        bad_names: Vec::new(),
    }
}

/// Plans the repair of an out whose walk departs from its snapshot (of the
/// pointer's manifest) only at a few files it holds, each gone or with
/// another stat, none a folder now (`Departures::Few`); `few` is the walk
/// cut to those files and the folders (`departed_only`), `expected` holds the
/// manifest's entries at those files.
///
/// Every other file the walk reproduced exactly, which is what a no-op
/// checkout trusts the snapshot for: it is right, and the plan leaves it
/// alone without looking at it. For the departed files the plan is the one
/// the whole out would get: no file is new, so nothing is deleted and no
/// folder is removed (a folder goes only where a file must be, or when
/// deletes empty it, and no departed path is a folder); a folder to create
/// is a missing one, and all files under it have departed, so it is among
/// the departed files' parents. The next snapshot is the old one with the
/// departed files' rows replaced (`Snapshot::splice`).
#[allow(clippy::too_many_arguments)]
fn plan_departed(
    repo: &Repo,
    o: Out,
    snapshot: Snapshot,
    few: walk::Walk,
    departed: Vec<workspace::observe::Departed>,
    expected: Manifest,
    opts: PlanOptions,
    quiet: bool,
) -> Result<Planned> {
    let mut recorded = crate::state::SnapshotEntries::with_capacity(departed.len());
    for d in &departed {
        recorded.push(&d.recorded.as_entry());
    }
    let recorded = Snapshot::new(
        snapshot.hash,
        snapshot.link_type,
        snapshot.cache_type.clone(),
        snapshot.taken_ns,
        recorded,
    );
    let obs = workspace::observe(&o.root, Some(few), Some(&recorded), &repo.cache, quiet)?;
    let corrupt = corrupt_objects(repo, &o, &obs);
    let plan = plan::plan(
        &expected,
        true,
        &obs.files,
        &obs.dirs,
        obs.root,
        |h| repo.cache.contains(h),
        opts.force,
    );
    debug_assert!(plan.deletes.is_empty() && plan.remove_dirs.is_empty());
    if plan.conflicts.is_empty() {
        check_objects(repo, &o, &plan, &expected)?;
    }
    Ok(Planned::Changes(Box::new(OutPlan {
        out: o,
        obs,
        expected,
        plan,
        relinked: 0,
        corrupt,
        old: Some(snapshot),
        few: true,
        relink: false,
    })))
}

/// The cache objects an observation found corrupt, each set aside, as the
/// errors to report.
fn corrupt_objects(repo: &Repo, o: &Out, obs: &Observation) -> Vec<Error> {
    obs.corrupt
        .iter()
        .map(|(h, p)| {
            repo.cache.set_aside(*h);
            repo.cache.edited_in_place(*h, display_path(&o.key, p))
        })
        .collect()
}

/// Refuses a plan that would remove or replace anything while an object it
/// needs is missing: then nothing of the out changes. A plan that only
/// creates files (into an emptied out) goes ahead, each missing file
/// reported by itself.
fn check_objects(
    repo: &Repo,
    o: &Out,
    plan: &plan::CheckoutPlan,
    expected: &Manifest,
) -> Result<()> {
    let destructive = !plan.deletes.is_empty()
        || !plan.remove_dirs.is_empty()
        || plan.writes.iter().any(|w| w.replaces);
    if !destructive {
        return Ok(());
    }
    let missing: Vec<String> = plan
        .writes
        .iter()
        .map(|w| expected.get(w.entry))
        .filter(|e| !repo.cache.contains(e.hash))
        .map(|e| format!("{} {}", e.hash, display_path(&o.key, e.path)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::ObjectsMissing {
            out: o.key.clone(),
            missing,
            remote: repo.cache.default_remote().map(str::to_owned),
        })
    }
}

/// What applying a plan did.
pub struct Applied {
    pub errors: Vec<Error>,
    /// The new snapshot, when the out now matches its manifest.
    pub snapshot: Option<Snapshot>,
    /// From the workspace's side: files created, replaced, removed.
    pub changes: Changes,
    /// The link types of the files written, each once (a reflink of a
    /// packed object is a copy): what the user is told they are.
    pub link_types: Vec<LinkType>,
}

/// Applies a planned checkout. `list_changes`: name every file changed
/// (for `-v`; 10^6 names are not made otherwise).
pub fn apply_out(
    repo: &Repo,
    linker: &Linker,
    w: &OutPlan,
    bar: &Bar,
    list_changes: bool,
) -> Applied {
    // A folder out made where nothing stands is built aside and renamed in.
    let staging = (w.out.is_dir() && w.obs.root == workspace::observe::Root::Missing)
        .then(|| apply::Staging::new(&repo.bale_dir.join("tmp"), &w.out.root))
        .flatten();
    let outcome = apply::apply(
        &w.plan,
        &w.expected,
        &w.out.root,
        &w.obs.stale_temps,
        &repo.cache,
        linker,
        bar,
        staging,
    );
    let mut changes = Changes::default();
    if list_changes {
        let name = |p: &str| display_path(&w.out.key, p);
        for p in &outcome.placed {
            let write = &w.plan.writes[p.write];
            let path = name(w.expected.get(write.entry).path);
            if write.replaces {
                changes.modified.push(path);
            } else {
                changes.added.push(path);
            }
        }
        changes.added.sort_unstable();
        changes.modified.sort_unstable();
        changes.deleted = w.plan.deletes.iter().map(|p| name(p)).collect();
    }
    let mut link_types = Vec::new();
    for p in &outcome.placed {
        if !link_types.contains(&p.link_type) {
            link_types.push(p.link_type);
        }
    }
    if !outcome.errors.is_empty() {
        return Applied {
            errors: outcome.errors,
            snapshot: None,
            changes,
            link_types,
        };
    }
    match snapshot_after(w, outcome.placed, linker) {
        Ok(s) => Applied {
            errors: Vec::new(),
            snapshot: Some(s),
            changes,
            link_types,
        },
        Err(e) => Applied {
            errors: vec![e],
            snapshot: None,
            changes,
            link_types,
        },
    }
}

/// The checkout bar over what the plans write: files and bytes.
pub fn bar_for<'a>(works: impl Iterator<Item = &'a OutPlan> + Clone, quiet: bool) -> Bar {
    let files = works.clone().map(|w| w.plan.writes.len() as u64).sum();
    let bytes = works.map(|w| w.plan.write_bytes(&w.expected)).sum();
    Bar::files(files, bytes, "checkout", quiet)
}

/// Of the observed files, keeps only those the plan leaves alone (their
/// rows make the next snapshot) when they are few, renumbering `kept`: a
/// relink or a switch to other content then does not hold a row of every
/// file it rewrites while it writes them.
fn keep_only_kept(files: &mut Vec<plan::Actual>, kept: &mut [(usize, usize)]) {
    if kept.len() >= files.len() / 4 {
        return;
    }
    let mut only = Vec::with_capacity(kept.len());
    let mut next = kept.iter_mut().peekable();
    for (i, f) in std::mem::take(files).into_iter().enumerate() {
        if let Some(pair) = next.next_if(|pair| pair.0 == i) {
            pair.0 = only.len();
            only.push(f);
        }
    }
    *files = only;
}

/// Of the expected manifest, keeps only the entries the plan writes when
/// they are few, renumbering the writes: a repair of a few files then
/// does not hold the whole manifest while it writes them. (Past planning,
/// only the writes read the manifest; kept files make their snapshot rows
/// from the observation.)
fn narrow(expected: Manifest, writes: &mut [plan::Write]) -> Manifest {
    if writes.len() >= expected.len() / 4 {
        return expected;
    }
    let mut entries: Vec<usize> = writes.iter().map(|w| w.entry).collect();
    entries.sort_unstable();
    let only = expected.subset(&entries);
    for w in writes.iter_mut() {
        // Each entry is written once, so its place in `entries` is its
        // index in `only`.
        w.entry = entries
            .binary_search(&w.entry)
            .unwrap_or_else(|_| unreachable!("every write's entry was collected above"));
    }
    only
}

/// "data: 3 added, 1 modified, 0 deleted", from the workspace's side.
pub fn summary(w: &OutPlan, relink: bool) -> String {
    let p = &w.plan;
    let changes = p.added + p.modified + p.deleted;
    let mut s = if changes == 0 {
        format!("{}: unchanged", w.out.key)
    } else {
        format!(
            "{}: {} added, {} modified, {} deleted",
            w.out.key, p.deleted, p.modified, p.added
        )
    };
    if relink {
        s.push_str(&format!(
            "; relinked {} file{}, {} already right",
            w.relinked,
            if w.relinked == 1 { "" } else { "s" },
            p.kept.len()
        ));
    }
    s
}

/// The snapshot of an out that now matches its manifest: files left alone
/// keep the stat they were compared with; placed files have their new one.
/// Its chain is the configured one only if every file was made under it
/// (all placed now, all checked by `--relink`, or the chain did not
/// change): otherwise the files kept from before still have the old links,
/// and the relink hint stays due.
fn snapshot_after(
    w: &OutPlan,
    mut placed: Vec<apply::Placed>,
    linker: &Linker,
) -> Result<Snapshot> {
    let writes = &w.plan.writes;
    let path_of = |p: &apply::Placed| w.expected.get(writes[p.write].entry).path;
    placed.sort_unstable_by(|a, b| path_of(a).cmp(path_of(b)));
    let kept = || {
        w.plan
            .kept
            .iter()
            .filter_map(|&(i, _)| rows::row_of(&w.obs.files[i]))
    };
    let placed_rows = || {
        placed.iter().map(|p| {
            let e = w.expected.get(writes[p.write].entry);
            SnapshotEntry {
                path: e.path,
                stat: p.stat,
                hash: e.hash,
                link: Some(p.link_type),
            }
        })
    };
    if w.few {
        return snapshot_spliced(w, rows::merge(kept(), placed_rows()), &placed, linker);
    }
    let mut made: Vec<(u64, u64)> = placed
        .iter()
        .filter(|p| p.stat.nlink > 1)
        .map(|p| (p.stat.dev, p.stat.ino))
        .collect();
    made.par_sort_unstable();
    let encoded = rows::encode(
        &w.out.root,
        || rows::merge(kept(), placed_rows()),
        w.plan.kept.len() + placed.len(),
        Some(&made),
    )?;
    let chain = linker.describe();
    let (link_type, cache_type) = match &w.old {
        Some(old) if !w.relink && !w.plan.kept.is_empty() && old.cache_type != chain => (
            encoded.common_link.unwrap_or(old.link_type),
            old.cache_type.clone(),
        ),
        _ => (
            encoded.common_link.unwrap_or_else(|| linker.current()),
            chain,
        ),
    };
    Ok(Snapshot::new(
        w.out.record.hash,
        link_type,
        cache_type,
        0,
        encoded.entries,
    ))
}

/// `snapshot_after` for a repair of a few files (`plan_departed`): the old
/// snapshot with the departed files' rows replaced. Hard links made now
/// change the stat of every file sharing their inode: those files are
/// stat'ed again, wherever they are in the out.
fn snapshot_spliced<'a>(
    w: &'a OutPlan,
    rows: impl Iterator<Item = SnapshotEntry<'a>>,
    placed: &[apply::Placed],
    linker: &Linker,
) -> Result<Snapshot> {
    let old = w
        .old
        .as_ref()
        .unwrap_or_else(|| unreachable!("a repair of a few files keeps its snapshot"));
    let mut inodes: Vec<u64> = placed
        .iter()
        .filter(|p| p.stat.nlink > 1)
        .map(|p| p.stat.ino)
        .collect();
    inodes.sort_unstable();
    inodes.dedup();
    let restat = |p: &str| {
        let abs = crate::paths::join(&w.out.root, p);
        crate::fsutil::stat::content_stat(&abs).at("read", &abs)
    };
    // The departed files' rows, in path order (few).
    let mut rows: Vec<SnapshotEntry> = rows.collect();
    for r in &mut rows {
        if r.stat.nlink > 1 && inodes.binary_search(&r.stat.ino).is_ok() {
            r.stat = restat(r.path)?;
        }
    }
    let departed: Vec<&str> = w.expected.entries().map(|e| e.path).collect();
    // Files not made now keep the links of the chain they were made under.
    let left_alone = old.len() > departed.len() || !w.plan.kept.is_empty();
    let (entries, common) = old.splice(&departed, rows.into_iter(), &inodes, restat)?;
    let chain = linker.describe();
    let (link_type, cache_type) = if left_alone && old.cache_type != chain {
        (common.unwrap_or(old.link_type), old.cache_type.clone())
    } else {
        (common.unwrap_or_else(|| linker.current()), chain)
    };
    Ok(Snapshot::new(
        w.out.record.hash,
        link_type,
        cache_type,
        0,
        entries,
    ))
}

/// Whether an out linked as its snapshot says needs `checkout --relink`.
pub fn needs_relink(s: &Snapshot, linker: &Linker) -> bool {
    relink_advised(s.link_type, &s.cache_type, linker)
}

/// The hint for outs last linked under another `cache.type`.
pub fn relink_hint(keys: &[String], linker: &Linker) -> String {
    format!(
        "{} {} linked before cache.type became {}; existing workspace files keep their old links: run `bale checkout --relink` to relink them",
        keys.join(", "),
        if keys.len() == 1 { "was" } else { "were" },
        linker.describe()
    )
}

/// What `run` is asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub plan: PlanOptions,
    /// No progress bar.
    pub quiet: bool,
    /// Name every file changed (`-v`).
    pub list_changes: bool,
    /// The remote just fetched from (`pull`): an object still missing is
    /// one that remote lacks, and errors say so.
    pub fetched_from: Option<String>,
}

impl Options {
    /// `e` as this checkout reports it: after a fetch, an object still
    /// missing is one the remote lacks.
    fn explain(&self, e: Error) -> Error {
        match (&self.fetched_from, e) {
            (Some(remote), e @ (Error::MissingObject { .. } | Error::ObjectsMissing { .. })) => {
                Error::MissingOnRemote {
                    remote: remote.clone(),
                    inner: Box::new(e),
                }
            }
            (_, e) => e,
        }
    }
}

/// What a checkout did.
#[derive(Default)]
pub struct CheckoutReport {
    /// The outs asked for.
    pub total: usize,
    /// Errors in the order they were met, each group one out's (shown ten
    /// at a time).
    pub errors: Vec<Vec<Error>>,
    /// Workspace files whose content is not in the cache: when there are
    /// any, nothing was changed.
    pub conflicts: Vec<PathBuf>,
    /// The outs planned, in order.
    pub outs: Vec<OutCheckout>,
    /// The outs that could not be completed.
    pub failed: BTreeSet<String>,
    /// Outs last linked under another `cache.type`: the hint to relink.
    pub relink_hint: Option<String>,
    /// The snapshots could not be saved (told after the outs, which are
    /// checked out).
    pub unsaved: Option<Error>,
}

/// One out's checkout.
pub struct OutCheckout {
    pub key: String,
    /// Its snapshot matched: nothing was done.
    pub unchanged: bool,
    /// "data: 3 added, ...", when it completed.
    pub summary: Option<String>,
    /// File by file, with `list_changes`.
    pub changes: Changes,
    /// The link types of the files written (`Applied::link_types`).
    pub link_types: Vec<LinkType>,
}

/// Checks out `outs`: every out is planned before anything is applied, and
/// a conflict in any of them stops the checkout before it changes
/// anything (`report.conflicts`). Then each plan is applied and the
/// snapshots of the completed outs are saved.
pub fn run(
    repo: &Repo,
    state: &mut StateDb,
    outs: Vec<Out>,
    opts: &Options,
) -> Result<CheckoutReport> {
    let linker = super::linker(repo);
    let mut report = CheckoutReport {
        total: outs.len(),
        ..CheckoutReport::default()
    };
    let mut planned = Vec::new();
    for o in outs {
        let key = o.key.clone();
        match plan_out(repo, state, &linker, o, opts.plan, opts.quiet) {
            Ok(p) => planned.push(p),
            Err(e) => {
                report.errors.push(vec![opts.explain(e)]);
                report.failed.insert(key);
            }
        }
    }
    report.conflicts = planned
        .iter()
        .filter_map(|p| match p {
            Planned::Changes(w) => Some(w),
            Planned::Unchanged(..) => None,
        })
        .flat_map(|w| {
            w.plan
                .conflicts
                .iter()
                .map(|c| crate::paths::join(Path::new(&w.out.key), c))
        })
        .collect();
    if !report.conflicts.is_empty() {
        return Ok(report);
    }
    apply_all(repo, state, &linker, planned, opts, &mut report)?;
    Ok(report)
}

/// Applies planned outs free of conflicts, saves the snapshots of those
/// that completed, and decides the relink hint: the tail of every checkout
/// (`run`, and import's of its one out).
pub fn apply_all(
    repo: &Repo,
    state: &mut StateDb,
    linker: &Linker,
    mut planned: Vec<Planned>,
    opts: &Options,
    report: &mut CheckoutReport,
) -> Result<()> {
    for p in &mut planned {
        if let Planned::Changes(w) = p
            && !w.corrupt.is_empty()
        {
            report.failed.insert(w.out.key.clone());
            report
                .errors
                .extend(std::mem::take(&mut w.corrupt).into_iter().map(|e| vec![e]));
        }
    }
    let works = || {
        planned.iter().filter_map(|p| match p {
            Planned::Changes(w) => Some(w),
            Planned::Unchanged(..) => None,
        })
    };
    let bar = bar_for(works().map(|w| &**w), opts.quiet);
    let relink = opts.plan.relink;
    let mut snapshots = Vec::new();
    let mut advise = Vec::new();
    for p in planned {
        let w = match p {
            Planned::Unchanged(u) => {
                let (o, s) = *u;
                if !relink && s.as_ref().is_some_and(|s| needs_relink(s, linker)) {
                    advise.push(o.key.clone());
                }
                report.outs.push(OutCheckout {
                    summary: Some(format!("{}: unchanged", o.key)),
                    key: o.key,
                    unchanged: true,
                    changes: Changes::default(),
                    link_types: Vec::new(),
                });
                continue;
            }
            Planned::Changes(w) => w,
        };
        let applied = apply_out(repo, linker, &w, &bar, opts.list_changes);
        let summary = if applied.errors.is_empty() {
            Some(summary(&w, relink))
        } else {
            report.failed.insert(w.out.key.clone());
            let errors = applied.errors.into_iter().map(|e| opts.explain(e));
            report.errors.push(errors.collect());
            None
        };
        if let Some(s) = applied.snapshot {
            if !relink && needs_relink(&s, linker) {
                advise.push(w.out.key.clone());
            }
            snapshots.push((w.out.key.clone(), s));
        }
        report.outs.push(OutCheckout {
            key: w.out.key.clone(),
            unchanged: false,
            summary,
            changes: applied.changes,
            link_types: applied.link_types,
        });
    }
    bar.finish();
    report.unsaved = repo.save_snapshots(state, snapshots).err();
    if !advise.is_empty() {
        report.relink_hint = Some(relink_hint(&advise, linker));
    }
    Ok(())
}

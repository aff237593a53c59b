//! `bale config KEY [VALUE] [--unset] [--local]`, `bale config --list`.

use crate::error::IoContext;
use crate::ops::checkout::relink_hint;
use crate::repo::Repo;
use crate::workspace::link::{Linker, relink_advised};

use super::{Ctx, hint};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A key such as cache.type or cache.dir
    #[arg(required_unless_present = "list")]
    pub key: Option<String>,
    /// The new value (omit to print the current one)
    pub value: Option<String>,
    /// Remove the key
    #[arg(long, conflicts_with = "value")]
    pub unset: bool,
    /// Write .bale/config.local.yaml (not committed) instead of config.yaml
    #[arg(long)]
    pub local: bool,
    /// Print every key that is set, as key=value
    #[arg(long, conflicts_with_all = ["key", "value", "unset"])]
    pub list: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Some(key) = args.key.as_deref() else {
        let repo = ctx.open_config(false)?;
        for (k, v) in repo.config.list()? {
            ctx.print(format!("{k}={}", crate::config::shown(&k, &v)));
        }
        return Ok(());
    };
    let writing = args.value.is_some() || args.unset;
    let repo = ctx.open_config(writing)?;
    let effective = |repo: &Repo| -> anyhow::Result<String> {
        Ok(match (repo.config.get(key)?, key) {
            (Some(v), _) => v,
            (None, "cache.dir") => repo.cache.dir().display().to_string(),
            (None, _) => match crate::config::default_of(key) {
                Some(v) => v,
                None => return Err(crate::Error::ConfigUnset(key.to_owned()).into()),
            },
        })
    };
    if !writing {
        ctx.print(crate::config::shown(key, &effective(&repo)?));
        return Ok(());
    }
    if key == "cache.dir"
        && let Some(dir) = &args.value
    {
        // A new cache folder is made here, on purpose; a configured one that
        // goes missing later is an error, never made anew silently.
        let abs = repo.root.join(dir);
        std::fs::create_dir_all(&abs).at("create the cache folder", &abs)?;
    }
    let before = effective(&repo).ok();
    repo.config.set(key, args.value.as_deref(), args.local)?;
    let after = effective(&repo).ok();
    if key == "cache.type"
        && before != after
        && let Some(after) = &after
    {
        // Judged against how the workspace is linked, not against the old
        // value: a change back to what the files have needs no relink.
        let linker = Linker::new(crate::fsutil::LinkType::parse_list(after).unwrap_or_default());
        let stale: Vec<String> = repo
            .state()?
            .link_types()?
            .into_iter()
            .filter(|(_, t, chain)| relink_advised(*t, chain, &linker))
            .map(|(k, _, _)| k)
            .collect();
        if !stale.is_empty() {
            hint(relink_hint(&stale, &linker));
        }
    }
    match after {
        Some(v) => ctx.say(format!("{key} = {}", crate::config::shown(key, &v))),
        None => ctx.say(format!("{key} unset")),
    }
    Ok(())
}

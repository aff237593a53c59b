//! `bale config KEY [VALUE] [--unset] [--local]`, `bale config --list`.

use crate::ops::config;

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
    if !writing {
        ctx.print(crate::config::shown(key, &config::get(&repo, key)?));
        return Ok(());
    }
    let set = config::set(&repo, key, args.value.as_deref(), args.local)?;
    if let Some(h) = &set.relink_hint {
        hint(h);
    }
    match set.after {
        Some(v) => ctx.say(format!("{key} = {}", crate::config::shown(key, &v))),
        None => ctx.say(format!("{key} unset")),
    }
    Ok(())
}

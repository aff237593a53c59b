//! `bale config KEY [VALUE] [--unset] [--local]`.

use crate::config::DEFAULT_CACHE_TYPE;
use crate::repo::{Access, Repo};

use super::{Ctx, hint};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// cache.type or cache.dir
    pub key: String,
    /// The new value (omit to print the current one)
    pub value: Option<String>,
    /// Remove the key
    #[arg(long, conflicts_with = "value")]
    pub unset: bool,
    /// Write .bale/config.local.yaml (not committed) instead of config.yaml
    #[arg(long)]
    pub local: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let writing = args.value.is_some() || args.unset;
    let repo = Repo::open(&ctx.cwd, if writing { Access::Write } else { Access::Read })?;
    let effective = |repo: &Repo| -> anyhow::Result<String> {
        Ok(match (repo.config.get(&args.key)?, args.key.as_str()) {
            (Some(v), _) => v,
            (None, "cache.type") => DEFAULT_CACHE_TYPE.to_owned(),
            (None, _) => repo.cache.dir().display().to_string(),
        })
    };
    if !writing {
        println!("{}", effective(&repo)?);
        return Ok(());
    }
    let before = effective(&repo)?;
    repo.config
        .set(&args.key, args.value.as_deref(), args.local)?;
    let after = effective(&repo)?;
    if args.key == "cache.type" && before != after {
        hint(format!(
            "existing workspace files keep their old links ({before}); run `bale checkout --relink` to relink them as {after}"
        ));
    }
    ctx.say(format!("{} = {after}", args.key));
    Ok(())
}

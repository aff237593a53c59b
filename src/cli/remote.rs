//! `bale remote add NAME URL [--default]`, `bale remote list`,
//! `bale remote remove NAME`: the remotes are config keys
//! (`remote.NAME.url` and friends, `core.remote` for the default).

use crate::ops::remote;
use crate::url::redacted;

use super::Ctx;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add a remote: a folder path, file:///PATH or s3://BUCKET/PREFIX
    Add {
        name: String,
        url: String,
        /// Make it the default remote (core.remote)
        #[arg(short, long)]
        default: bool,
        /// The S3 endpoint of a store other than AWS (MinIO, Ceph, R2...)
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Write .bale/config.local.yaml (not committed) instead of config.yaml
        #[arg(long)]
        local: bool,
        /// Replace a remote of that name
        #[arg(short, long)]
        force: bool,
    },
    /// List the remotes (the default one is marked)
    List,
    /// Remove a remote from the configuration (nothing on it is deleted)
    Remove { name: String },
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::List => {
            let repo = ctx.open_config(false)?;
            for (name, url, is_default) in remote::list(&repo)? {
                let mark = if is_default { " (default)" } else { "" };
                ctx.print(format!("{name}\t{}{mark}", redacted(&url)));
            }
            Ok(())
        }
        Command::Add {
            name,
            url,
            default,
            endpoint,
            local,
            force,
        } => {
            let new = remote::NewRemote::parse(name, url, endpoint)?;
            let repo = ctx.open_config(true)?;
            let opts = remote::AddOptions {
                default,
                local,
                force,
            };
            remote::add(&repo, &new, opts)?;
            ctx.say(format!(
                "added the remote {} ({}){}",
                new.name,
                redacted(&new.url),
                if default { ", the default" } else { "" }
            ));
            Ok(())
        }
        Command::Remove { name } => {
            let repo = ctx.open_config(true)?;
            remote::remove(&repo, &name)?;
            ctx.say(format!("removed the remote {name}"));
            Ok(())
        }
    }
}

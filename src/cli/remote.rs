//! `bale remote add NAME URL [--default]`, `bale remote list`,
//! `bale remote remove NAME`: the remotes are config keys
//! (`remote.NAME.url` and friends, `core.remote` for the default).

use crate::error::Error;
use crate::remote::{self, RemoteUrl};

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
            let default = repo.config.get("core.remote")?;
            for (name, url) in remote::configured(&repo.config)? {
                let mark = if default.as_deref() == Some(name.as_str()) {
                    " (default)"
                } else {
                    ""
                };
                ctx.print(format!("{name}\t{}{mark}", remote::redacted(&url)));
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
            if !remote::is_name(&name) {
                return Err(Error::InvalidConfigValue {
                    key: "remote NAME".into(),
                    value: name,
                    reason: "a remote's name is letters, digits, '-' and '_'".into(),
                }
                .into());
            }
            RemoteUrl::parse(&url).map_err(|reason| Error::BadRemoteUrl {
                url: remote::redacted(&url),
                reason,
            })?;
            if let Some(e) = &endpoint {
                remote::check_endpoint(e).map_err(|reason| Error::InvalidConfigValue {
                    key: format!("remote.{name}.endpoint"),
                    value: remote::redacted(e),
                    reason,
                })?;
            }
            let repo = ctx.open_config(true)?;
            let key = |k: &str| format!("remote.{name}.{k}");
            if repo.config.get(&key("url"))?.is_some() && !force {
                return Err(Error::RemoteExists(name).into());
            }
            repo.config.set(&key("url"), Some(&url), local)?;
            if let Some(e) = &endpoint {
                repo.config.set(&key("endpoint"), Some(e), local)?;
            }
            if default {
                repo.config.set("core.remote", Some(&name), local)?;
            }
            ctx.say(format!(
                "added the remote {name} ({}){}",
                remote::redacted(&url),
                if default { ", the default" } else { "" }
            ));
            Ok(())
        }
        Command::Remove { name } => {
            let repo = ctx.open_config(true)?;
            let prefix = format!("remote.{name}.");
            let keys: Vec<String> = repo
                .config
                .list()?
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.starts_with(&prefix))
                .collect();
            if keys.is_empty() {
                return Err(Error::UnknownRemote {
                    known: remote::configured(&repo.config)?
                        .into_iter()
                        .map(|(n, _)| n)
                        .collect(),
                    name,
                }
                .into());
            }
            for local in [false, true] {
                for k in &keys {
                    repo.config.set(k, None, local)?;
                }
            }
            // The local file wins: it is the first to name the default.
            for local in [true, false] {
                if repo.config.get("core.remote")?.as_deref() == Some(name.as_str()) {
                    repo.config.set("core.remote", None, local)?;
                }
            }
            ctx.say(format!("removed the remote {name}"));
            Ok(())
        }
    }
}

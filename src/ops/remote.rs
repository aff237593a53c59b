//! remote: the remotes are config keys (`remote.NAME.url` and friends,
//! `core.remote` for the default); adding, listing and removing them.

use crate::error::{Error, Result};
use crate::remote::{self, RemoteUrl};
use crate::repo::Repo;

/// A remote to add, its name, URL and endpoint checked.
pub struct NewRemote {
    pub name: String,
    pub url: String,
    pub endpoint: Option<String>,
}

impl NewRemote {
    /// Checks what the user gave before anything is opened or written.
    pub fn parse(name: String, url: String, endpoint: Option<String>) -> Result<NewRemote> {
        if !remote::is_name(&name) {
            return Err(Error::InvalidConfigValue {
                key: "remote NAME".into(),
                value: name,
                reason: "a remote's name is letters, digits, '-' and '_'".into(),
            });
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
        Ok(NewRemote {
            name,
            url,
            endpoint,
        })
    }
}

/// Where `add` writes, and whether it may replace.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddOptions {
    /// Make it the default remote (`core.remote`).
    pub default: bool,
    /// Write `config.local.yaml`.
    pub local: bool,
    /// Replace a remote of that name.
    pub force: bool,
}

pub fn add(repo: &Repo, new: &NewRemote, opts: AddOptions) -> Result<()> {
    let key = |k: &str| format!("remote.{}.{k}", new.name);
    if repo.config.get(&key("url"))?.is_some() && !opts.force {
        return Err(Error::RemoteExists(new.name.clone()));
    }
    repo.config.set(&key("url"), Some(&new.url), opts.local)?;
    if let Some(e) = &new.endpoint {
        repo.config.set(&key("endpoint"), Some(e), opts.local)?;
    }
    if opts.default {
        repo.config
            .set("core.remote", Some(&new.name), opts.local)?;
    }
    Ok(())
}

/// The configured remotes: name, URL (as configured: mask it to show it),
/// and whether it is the default.
pub fn list(repo: &Repo) -> Result<Vec<(String, String, bool)>> {
    let default = repo.config.get("core.remote")?;
    Ok(remote::configured(&repo.config)?
        .into_iter()
        .map(|(name, url)| {
            let is_default = default.as_deref() == Some(name.as_str());
            (name, url, is_default)
        })
        .collect())
}

/// Removes every key of the remote `name`, from both config files, and
/// `core.remote` where it names it.
pub fn remove(repo: &Repo, name: &str) -> Result<()> {
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
            name: name.to_owned(),
        });
    }
    for local in [false, true] {
        for k in &keys {
            repo.config.set(k, None, local)?;
        }
    }
    // The local file wins: it is the first to name the default.
    for local in [true, false] {
        if repo.config.get("core.remote")?.as_deref() == Some(name) {
            repo.config.set("core.remote", None, local)?;
        }
    }
    Ok(())
}

//! A remote as configured: its name, URL and S3 settings read from
//! `remote.NAME.*` (or `core.remote` for the default), each value checked.

use crate::config::ConfigFiles;
use crate::error::{Error, Result};
use crate::url::{DEFAULT_RETRIES, RemoteUrl, check_endpoint, is_name, redacted};

/// A remote as configured.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub url: String,
    pub location: RemoteUrl,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub retries: u32,
}

/// The configured remotes, name and URL, sorted by name.
pub fn configured(config: &ConfigFiles) -> Result<Vec<(String, String)>> {
    Ok(config
        .list()?
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("remote.")?.strip_suffix(".url")?;
            (!name.contains('.')).then(|| (name.to_owned(), v))
        })
        .collect())
}

/// The remote `name`, or the default one (`core.remote`).
pub fn spec(config: &ConfigFiles, name: Option<&str>) -> Result<Spec> {
    let known =
        || -> Result<Vec<String>> { Ok(configured(config)?.into_iter().map(|(n, _)| n).collect()) };
    let name = match name {
        Some(n) => n.to_owned(),
        None => match config.get("core.remote")? {
            Some(n) => n,
            None => return Err(Error::NoDefaultRemote { known: known()? }),
        },
    };
    let key = |k: &str| format!("remote.{name}.{k}");
    if !is_name(&name) {
        return Err(Error::UnknownRemote {
            name,
            known: known()?,
        });
    }
    let Some(url) = config.get(&key("url"))? else {
        return Err(Error::UnknownRemote {
            name,
            known: known()?,
        });
    };
    let location = RemoteUrl::parse(&url).map_err(|reason| Error::BadRemoteUrl {
        url: redacted(&url),
        reason,
    })?;
    let endpoint = config.get(&key("endpoint"))?;
    if let Some(e) = &endpoint {
        check_endpoint(e).map_err(|reason| Error::InvalidConfigValue {
            key: key("endpoint"),
            value: redacted(e),
            reason,
        })?;
    }
    let retries = match config.get(&key("retries"))? {
        None => DEFAULT_RETRIES,
        Some(v) => v.parse().map_err(|_| Error::InvalidConfigValue {
            key: key("retries"),
            value: v.clone(),
            reason: "expected a whole number of retries, such as 5".into(),
        })?,
    };
    Ok(Spec {
        region: config.get(&key("region"))?,
        profile: config.get(&key("profile"))?,
        name,
        url,
        location,
        endpoint,
        retries,
    })
}

//! config: a key's effective value (what is set, else the default), and
//! writing one, with the relink hint a change of `cache.type` calls for.

use crate::error::{Error, IoContext, Result};
use crate::repo::Repo;
use crate::workspace::link::{Linker, relink_advised};

/// What `key` is: its value where set, else its default (for `cache.dir`,
/// the cache in use).
pub fn get(repo: &Repo, key: &str) -> Result<String> {
    Ok(match (repo.config.get(key)?, key) {
        (Some(v), _) => v,
        (None, "cache.dir") => repo.cache.dir().display().to_string(),
        (None, _) => match crate::config::default_of(key) {
            Some(v) => v,
            None => return Err(Error::ConfigUnset(key.to_owned())),
        },
    })
}

/// What a write of a key did.
pub struct ConfigSet {
    /// The key's effective value now (`None`: unset, with no default).
    pub after: Option<String>,
    /// Outs linked under another `cache.type` than the new one.
    pub relink_hint: Option<String>,
}

/// Sets `key` to `value` (`None`: unsets it) in `config.yaml`, or in
/// `config.local.yaml` with `local`.
pub fn set(repo: &Repo, key: &str, value: Option<&str>, local: bool) -> Result<ConfigSet> {
    if key == "cache.dir"
        && let Some(dir) = value
    {
        // A new cache folder is made here, on purpose; a configured one that
        // goes missing later is an error, never made anew silently.
        let abs = repo.root.join(dir);
        std::fs::create_dir_all(&abs).at("create the cache folder", &abs)?;
    }
    let before = get(repo, key).ok();
    repo.config.set(key, value, local)?;
    let after = get(repo, key).ok();
    let mut relink_hint = None;
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
            relink_hint = Some(super::checkout::relink_hint(&stale, &linker));
        }
    }
    Ok(ConfigSet { after, relink_hint })
}

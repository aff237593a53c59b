//! Configuration: `.bale/config.yaml` (committed) and `.bale/config.local.yaml`
//! (not committed; wins over the first). Keys are dotted paths into nested
//! YAML mappings: `cache.type` is `cache: {type: ...}`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::pointer::write_atomic;
use crate::workspace::link::LinkType;

pub const DEFAULT_CACHE_TYPE: &str = "reflink,copy";

/// The keys bale knows, with what they mean (for `bale config` errors).
pub const KEYS: [&str; 2] = ["cache.type", "cache.dir"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub cache_types: Vec<LinkType>,
    /// As written; a relative path is relative to the repository root.
    pub cache_dir: Option<String>,
}

pub struct ConfigFiles {
    pub shared: PathBuf,
    pub local: PathBuf,
}

impl ConfigFiles {
    pub fn in_dir(bale_dir: &Path) -> ConfigFiles {
        ConfigFiles {
            shared: bale_dir.join("config.yaml"),
            local: bale_dir.join("config.local.yaml"),
        }
    }

    /// The effective value of `key`: the local file wins.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        check_key(key)?;
        for file in [&self.local, &self.shared] {
            if let Some(v) = lookup(&read_mapping(file)?, key) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Sets (`Some`) or unsets (`None`) `key` in one of the files, after
    /// checking the value. Other keys and comments-free content are kept.
    pub fn set(&self, key: &str, value: Option<&str>, local: bool) -> Result<()> {
        check_key(key)?;
        if let Some(v) = value {
            check_value(key, v)?;
        }
        let file = if local { &self.local } else { &self.shared };
        let mut map = read_mapping(file)?;
        let (section, name) = key.split_once('.').unwrap_or((key, ""));
        let section_key = Value::String(section.into());
        let mut inner = match map.get(&section_key) {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        match value {
            Some(v) => {
                inner.insert(Value::String(name.into()), Value::String(v.into()));
            }
            None => {
                inner.remove(name);
            }
        }
        if inner.is_empty() {
            map.remove(&section_key);
        } else {
            map.insert(section_key, Value::Mapping(inner));
        }
        let text = if map.is_empty() {
            String::new()
        } else {
            serde_yaml::to_string(&map).map_err(|e| Error::MalformedConfig {
                path: file.clone(),
                message: e.to_string(),
            })?
        };
        write_atomic(file, text.as_bytes())
    }

    pub fn settings(&self) -> Result<Settings> {
        let types = self
            .get("cache.type")?
            .unwrap_or_else(|| DEFAULT_CACHE_TYPE.into());
        let cache_types =
            LinkType::parse_list(&types).map_err(|reason| Error::InvalidConfigValue {
                key: "cache.type".into(),
                value: types.clone(),
                reason,
            })?;
        Ok(Settings {
            cache_types,
            cache_dir: self.get("cache.dir")?,
        })
    }
}

fn check_key(key: &str) -> Result<()> {
    if KEYS.contains(&key) {
        Ok(())
    } else {
        Err(Error::UnknownConfigKey(key.into()))
    }
}

fn check_value(key: &str, value: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidConfigValue {
        key: key.into(),
        value: value.into(),
        reason,
    };
    match key {
        "cache.type" => LinkType::parse_list(value).map(|_| ()).map_err(invalid),
        "cache.dir" if value.trim().is_empty() => Err(invalid("the path is empty".into())),
        _ => Ok(()),
    }
}

fn read_mapping(path: &Path) -> Result<Mapping> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Mapping::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let bad = |message: String| Error::MalformedConfig {
        path: path.to_path_buf(),
        message,
    };
    match serde_yaml::from_str::<Value>(&text).map_err(|e| bad(e.to_string()))? {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        _ => Err(bad("expected a mapping of sections such as `cache:`".into())),
    }
}

fn lookup(map: &Mapping, key: &str) -> Option<String> {
    let (section, name) = key.split_once('.')?;
    match map.get(section)?.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_wins_and_unset_removes() {
        let t = tempfile::tempdir().unwrap();
        let c = ConfigFiles::in_dir(t.path());
        assert_eq!(
            c.settings().unwrap().cache_types,
            [LinkType::Reflink, LinkType::Copy]
        );
        c.set("cache.type", Some("hardlink"), false).unwrap();
        c.set("cache.type", Some("symlink,copy"), true).unwrap();
        assert_eq!(
            c.get("cache.type").unwrap().as_deref(),
            Some("symlink,copy")
        );
        c.set("cache.type", None, true).unwrap();
        assert_eq!(c.get("cache.type").unwrap().as_deref(), Some("hardlink"));
        assert_eq!(fs::read_to_string(&c.local).unwrap(), "");
    }

    #[test]
    fn bad_keys_values_and_files_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let c = ConfigFiles::in_dir(t.path());
        assert!(matches!(
            c.get("cache.typo"),
            Err(Error::UnknownConfigKey(_))
        ));
        assert!(matches!(
            c.set("cache.type", Some("teleport"), false),
            Err(Error::InvalidConfigValue { .. })
        ));
        fs::write(&c.shared, "cache: [\n").unwrap();
        assert!(matches!(c.settings(), Err(Error::MalformedConfig { .. })));
        fs::write(&c.shared, "cache:\n  type: ftp\n").unwrap();
        assert!(matches!(
            c.settings(),
            Err(Error::InvalidConfigValue { .. })
        ));
    }
}

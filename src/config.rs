//! Configuration: `.bale/config.yaml` (committed) and `.bale/config.local.yaml`
//! (not committed; wins over the first). Keys are dotted paths of any depth
//! into nested YAML mappings: `cache.type` is `cache: {type: ...}`, and a
//! key pattern may hold a `*` segment for a name the user picks
//! (`remote.*.url`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::fsutil::{LinkType, write_atomic};

pub const DEFAULT_CACHE_TYPE: &str = "reflink,copy";

/// The key patterns bale knows (a `*` segment matches any one name).
pub const KEYS: [&str; 12] = [
    "cache.type",
    "cache.dir",
    "pack.threshold",
    "pack.compression",
    "import.batch_entries",
    "import.batch_bytes",
    "core.remote",
    "remote.*.url",
    "remote.*.endpoint",
    "remote.*.region",
    "remote.*.profile",
    "remote.*.retries",
];

/// Objects smaller than this may be packed (`pack.threshold`).
pub const DEFAULT_PACK_THRESHOLD: u64 = 1 << 20;
/// An import batch holds at most this many entries (`import.batch_entries`)
/// and this many bytes (`import.batch_bytes`).
pub const DEFAULT_BATCH_ENTRIES: u64 = 10_000;
pub const DEFAULT_BATCH_BYTES: u64 = 4 << 20;

/// The value a key has when no file sets it, for the keys that have one.
pub fn default_of(key: &str) -> Option<String> {
    Some(match key {
        "cache.type" => DEFAULT_CACHE_TYPE.to_owned(),
        "pack.threshold" => DEFAULT_PACK_THRESHOLD.to_string(),
        "pack.compression" => "zstd".to_owned(),
        "import.batch_entries" => DEFAULT_BATCH_ENTRIES.to_string(),
        "import.batch_bytes" => DEFAULT_BATCH_BYTES.to_string(),
        _ if key.starts_with("remote.") && key.ends_with(".retries") => {
            crate::url::DEFAULT_RETRIES.to_string()
        }
        _ => return None,
    })
}

/// Whether `key` is one bale knows.
pub fn is_known(key: &str) -> bool {
    let segs: Vec<&str> = key.split('.').collect();
    KEYS.iter().any(|pattern| {
        let pat: Vec<&str> = pattern.split('.').collect();
        pat.len() == segs.len()
            && pat
                .iter()
                .zip(&segs)
                .all(|(p, s)| !s.is_empty() && (*p == "*" || p == s))
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub cache_types: Vec<LinkType>,
    /// As written; a relative path is relative to the repository root.
    pub cache_dir: Option<String>,
    pub pack_threshold: u64,
    /// Whether pack records may be compressed (`pack.compression`: zstd or
    /// none).
    pub pack_compression: bool,
    pub batch_entries: u64,
    pub batch_bytes: u64,
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

    /// Every key set in either file with its effective value, sorted.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        let mut all = std::collections::BTreeMap::new();
        for file in [&self.shared, &self.local] {
            flatten(&read_mapping(file)?, "", &mut all);
        }
        Ok(all.into_iter().collect())
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
        let segs: Vec<&str> = key.split('.').collect();
        set_in(&mut map, &segs, value);
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
        let size = |key: &str, default: u64| -> Result<u64> {
            match self.get(key)? {
                None => Ok(default),
                Some(v) => parse_size(&v).map_err(|reason| Error::InvalidConfigValue {
                    key: key.into(),
                    value: v.clone(),
                    reason,
                }),
            }
        };
        Ok(Settings {
            cache_types,
            cache_dir: self.get("cache.dir")?,
            pack_threshold: size("pack.threshold", DEFAULT_PACK_THRESHOLD)?,
            pack_compression: match self.get("pack.compression")?.as_deref() {
                None | Some("zstd") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(Error::InvalidConfigValue {
                        key: "pack.compression".into(),
                        value: other.into(),
                        reason: "expected zstd or none".into(),
                    });
                }
            },
            batch_entries: size("import.batch_entries", DEFAULT_BATCH_ENTRIES)?.max(1),
            batch_bytes: size("import.batch_bytes", DEFAULT_BATCH_BYTES)?.max(1),
        })
    }
}

/// Sets or removes `segs` under `map`, dropping mappings left empty.
fn set_in(map: &mut Mapping, segs: &[&str], value: Option<&str>) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    let k = Value::String((*first).into());
    if rest.is_empty() {
        match value {
            Some(v) => {
                map.insert(k, Value::String(v.into()));
            }
            None => {
                map.remove(&k);
            }
        }
        return;
    }
    let mut inner = match map.get(&k) {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Mapping::new(),
    };
    set_in(&mut inner, rest, value);
    if inner.is_empty() {
        map.remove(&k);
    } else {
        map.insert(k, Value::Mapping(inner));
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten(map: &Mapping, prefix: &str, out: &mut std::collections::BTreeMap<String, String>) {
    for (k, v) in map {
        let Some(k) = scalar(k) else { continue };
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Mapping(m) => flatten(m, &key, out),
            v => {
                if let Some(s) = scalar(v) {
                    out.insert(key, s);
                }
            }
        }
    }
}

fn check_key(key: &str) -> Result<()> {
    if is_known(key) {
        Ok(())
    } else {
        Err(Error::UnknownConfigKey {
            key: key.into(),
            known: KEYS.join(", "),
        })
    }
}

/// `value` of `key` as output shows it: a remote's URL or endpoint without
/// anything secret a hand-edited file may hold (see `url::redacted`).
pub fn shown(key: &str, value: &str) -> String {
    if key.starts_with("remote.") && (key.ends_with(".url") || key.ends_with(".endpoint")) {
        crate::url::redacted(value)
    } else {
        value.to_owned()
    }
}

fn check_value(key: &str, value: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidConfigValue {
        key: key.into(),
        // A URL with credentials in it is refused without repeating them.
        value: crate::url::redacted(value),
        reason,
    };
    match key {
        "cache.type" => LinkType::parse_list(value).map(|_| ()).map_err(invalid),
        "cache.dir" if value.trim().is_empty() => Err(invalid("the path is empty".into())),
        "pack.compression" if value != "zstd" && value != "none" => {
            Err(invalid("expected zstd or none".into()))
        }
        "pack.threshold" | "import.batch_entries" | "import.batch_bytes" => {
            parse_size(value).map(|_| ()).map_err(invalid)
        }
        _ if key.starts_with("remote.") && key.ends_with(".url") => {
            crate::url::RemoteUrl::parse(value)
                .map(|_| ())
                .map_err(invalid)
        }
        _ if key.starts_with("remote.") && key.ends_with(".endpoint") => {
            crate::url::check_endpoint(value).map_err(invalid)
        }
        _ if key.starts_with("remote.") && key.ends_with(".retries") => value
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| invalid("expected a whole number of retries, such as 5".into())),
        _ => Ok(()),
    }
}

/// A count or a size in bytes: digits, optionally followed by `k`, `M` or
/// `G` (powers of 1024; `KiB`, `MB` and the like are read the same way).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let digits = v.len() - v.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = v.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err("expected a number, optionally with k, M or G (e.g. 1M)".into()),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| "expected a number, optionally with k, M or G (e.g. 1M)".to_string())?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| "the number is too large".into())
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
    let mut v: Option<&Value> = None;
    for seg in key.split('.') {
        v = match v {
            None => map.get(seg),
            Some(inner) => inner.get(seg),
        };
        v?;
    }
    scalar(v?)
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
    fn keys_of_any_depth_are_set_listed_and_unset() {
        let t = tempfile::tempdir().unwrap();
        let c = ConfigFiles::in_dir(t.path());
        let mut map = Mapping::new();
        set_in(&mut map, &["remote", "origin", "url"], Some("s3://b/p"));
        set_in(&mut map, &["remote", "origin", "region"], Some("eu"));
        assert_eq!(
            lookup(&map, "remote.origin.url").as_deref(),
            Some("s3://b/p")
        );
        assert_eq!(lookup(&map, "remote.origin"), None);
        set_in(&mut map, &["remote", "origin", "url"], None);
        set_in(&mut map, &["remote", "origin", "region"], None);
        assert!(map.is_empty(), "{map:?}");
        c.set("cache.dir", Some("/x"), false).unwrap();
        c.set("cache.type", Some("copy"), true).unwrap();
        assert_eq!(
            c.list().unwrap(),
            [
                ("cache.dir".to_owned(), "/x".to_owned()),
                ("cache.type".to_owned(), "copy".to_owned())
            ]
        );
        assert!(!is_known("cache"));
        assert!(!is_known("cache.type.x"));
    }

    #[test]
    fn bad_keys_values_and_files_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let c = ConfigFiles::in_dir(t.path());
        assert!(matches!(
            c.get("cache.typo"),
            Err(Error::UnknownConfigKey { .. })
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

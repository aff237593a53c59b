//! S3 credentials and region, found where the AWS tools look for them: the
//! `AWS_*` environment variables, then a profile of the shared credentials
//! file (`~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`), with the
//! region from the config file (`~/.aws/config`, or `AWS_CONFIG_FILE`).
//! Nothing here is ever printed.

use std::env;
use std::path::PathBuf;

use ini::Ini;

/// Keys to sign requests with.
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// Where credentials come from.
pub enum Found {
    Keys(Credentials),
    /// The environment names another provider object_store knows (web
    /// identity, a container's credentials endpoint): it is left to it.
    Provider,
}

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

fn home_file(override_var: &str, name: &str) -> Option<PathBuf> {
    var(override_var)
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".aws").join(name)))
}

fn credentials_file() -> Option<PathBuf> {
    home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
}

fn config_file() -> Option<PathBuf> {
    home_file("AWS_CONFIG_FILE", "config")
}

/// Reads an INI file that may be absent; a file that cannot be parsed is
/// an error naming it.
fn load(path: &PathBuf) -> Result<Option<Ini>, String> {
    if !path.exists() {
        return Ok(None);
    }
    Ini::load_from_file(path)
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn from_profile(profile: &str) -> Result<Option<Credentials>, String> {
    let Some(path) = credentials_file() else {
        return Ok(None);
    };
    let Some(ini) = load(&path)? else {
        return Ok(None);
    };
    let Some(section) = ini.section(Some(profile)) else {
        return Ok(None);
    };
    let get = |k: &str| section.get(k).map(str::trim).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            key_id: id.into(),
            secret: secret.into(),
            token: get("aws_session_token").map(Into::into),
        })),
        _ => Err(format!(
            "the profile [{profile}] of {} has no aws_access_key_id and aws_secret_access_key",
            path.display()
        )),
    }
}

/// The credentials for a remote whose `profile` key is as given: that
/// profile if one is named, else the environment's keys, else the profile
/// `AWS_PROFILE` (or `default`) of the credentials file. `Ok(None)`: none
/// anywhere.
pub fn find(profile: Option<&str>) -> Result<Option<Found>, String> {
    if let Some(p) = profile {
        return match from_profile(p)? {
            Some(c) => Ok(Some(Found::Keys(c))),
            None => Err(format!(
                "the profile [{p}] is not in {}",
                credentials_file().map_or("~/.aws/credentials".into(), |f| f.display().to_string())
            )),
        };
    }
    if let (Some(key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some(Found::Keys(Credentials {
            key_id,
            secret,
            token: var("AWS_SESSION_TOKEN"),
        })));
    }
    let p = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some(c) = from_profile(&p)? {
        return Ok(Some(Found::Keys(c)));
    }
    let provider = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|v| var(v).is_some());
    Ok(provider.then_some(Found::Provider))
}

/// The region when the remote's config does not name one: the environment,
/// then the profile's `region` in the AWS config file.
pub fn region(profile: Option<&str>) -> Option<String> {
    if let Some(r) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        return Some(r);
    }
    let ini = load(&config_file()?).ok()??;
    let p = profile
        .map(str::to_owned)
        .or_else(|| var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let section = if p == "default" {
        "default".to_owned()
    } else {
        format!("profile {p}")
    };
    ini.section(Some(section))?
        .get("region")
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
}

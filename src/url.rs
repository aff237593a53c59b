//! Remote URLs, a leaf of the module graph: what a remote's URL says
//! (`RemoteUrl`), the checks a URL or an S3 endpoint must pass before it is
//! kept in the configuration, and the masked form every message shows
//! (`redacted`). `config` checks its values with these; `remote` reaches
//! what they name.

use std::path::PathBuf;

/// Retries of a request that failed for a passing reason (timeouts, 5xx,
/// throttling), unless `remote.NAME.retries` says otherwise.
pub const DEFAULT_RETRIES: u32 = 5;

/// Where a remote is, as its URL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteUrl {
    /// A folder; a relative path is relative to the repository's root.
    Folder(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
    },
}

impl RemoteUrl {
    /// Reads a remote URL: `s3://bucket[/prefix]`, `file:///path`, or a
    /// plain path. A URL carrying credentials (user info, or a query or
    /// fragment such as a signature) is refused: it would end up in a
    /// config file, and none of these schemes takes one.
    pub fn parse(url: &str) -> Result<RemoteUrl, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the URL is empty".into());
        }
        let no_query = |scheme: &str| {
            format!(
                "{scheme} URL takes no query string or fragment: signatures and tokens are never kept in the configuration (S3 keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile of ~/.aws/credentials)"
            )
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            if rest.contains(['?', '#']) {
                return Err(no_query("an s3://"));
            }
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') || bucket.contains(':') {
                return Err(CREDENTIALS_IN_URL.into());
            }
            if bucket.is_empty()
                || !bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
            {
                return Err("expected s3://BUCKET/PREFIX, with a bucket name of lowercase letters, digits, '-' and '.'".into());
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                return Err("the prefix may not hold empty, '.' or '..' segments".into());
            }
            return Ok(RemoteUrl::S3 {
                bucket: bucket.into(),
                prefix: prefix.into(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.contains(['?', '#']) {
                return Err(no_query("a file://"));
            }
            if !path.starts_with('/') {
                return Err("expected file:///ABSOLUTE/PATH".into());
            }
            return Ok(RemoteUrl::Folder(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "bale cannot reach {scheme}:// remotes; use a folder path, file:///PATH or s3://BUCKET/PREFIX (any S3-compatible store, with remote.NAME.endpoint)"
            ));
        }
        Ok(RemoteUrl::Folder(PathBuf::from(url)))
    }
}

const CREDENTIALS_IN_URL: &str = "credentials do not belong in a URL: give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or in a profile of ~/.aws/credentials";

/// `url` as messages show it: user info (`scheme://USER:SECRET@host`), a
/// query string and a fragment (where signatures and tokens travel) masked,
/// whatever the scheme. A plain path is shown as it is.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, tail) = match rest.find(['?', '#']) {
        Some(i) => (&rest[..i], format!("{}***", &rest[i..i + 1])),
        None => (rest, String::new()),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("***{}", &rest[at..]),
        None => rest.to_owned(),
    };
    format!("{scheme}://{rest}{tail}")
}

/// Checks an S3 endpoint URL: http or https, and no credentials in it.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL, such as http://127.0.0.1:9000")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(CREDENTIALS_IN_URL.into());
    }
    if rest.contains(['?', '#']) {
        return Err("an endpoint takes no query string or fragment: credentials and signatures are never kept in the configuration".into());
    }
    if authority.is_empty() {
        return Err("the URL names no host".into());
    }
    Ok(())
}

/// Whether `name` can name a remote: it is one segment of a config key.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_credentials_in_them_refused() {
        assert_eq!(
            RemoteUrl::parse("s3://my-bucket/data/sets/").unwrap(),
            RemoteUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "data/sets".into()
            }
        );
        assert_eq!(
            RemoteUrl::parse("s3://b").unwrap(),
            RemoteUrl::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            RemoteUrl::parse("file:///mnt/x").unwrap(),
            RemoteUrl::Folder("/mnt/x".into())
        );
        assert_eq!(
            RemoteUrl::parse("../store").unwrap(),
            RemoteUrl::Folder("../store".into())
        );
        for bad in [
            "s3://AKIA:secret@bucket/p",
            "s3://",
            "s3://Bucket/p",
            "s3://b/../p",
            "gs://b/p",
            "file://relative",
            "",
        ] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://127.0.0.1:9000").is_ok());
        assert!(check_endpoint("https://user:pw@s3.example.com").is_err());
        assert!(check_endpoint("127.0.0.1:9000").is_err());
        assert_eq!(redacted("s3://AK:SK@bucket/p"), "s3://***@bucket/p");
        assert_eq!(redacted("http://h:9/a@b"), "http://h:9/a@b");
        assert_eq!(redacted("azure://c/p?sv=1&sig=xyzzy"), "azure://c/p?***");
        assert_eq!(
            redacted("https://u:xyzzy@host/p?x=1#y"),
            "https://***@host/p?***"
        );
        assert_eq!(redacted("s3://b/p#xyzzy"), "s3://b/p#***");
        assert_eq!(redacted("https://host?a=u@xyzzy"), "https://host?***");
        assert_eq!(redacted("/plain/path?x"), "/plain/path?x");
        for bad in [
            "s3://b/p?X-Amz-Signature=xyzzy",
            "file:///p?token=xyzzy",
            "s3://b/p#xyzzy",
        ] {
            let e = RemoteUrl::parse(bad).unwrap_err();
            assert!(!e.contains("xyzzy"), "{e}");
        }
        assert!(check_endpoint("http://host:9000/?sig=xyzzy").is_err());
    }
}

//! The four ways of making a workspace file from a cache object.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    Reflink,
    Hardlink,
    Symlink,
    Copy,
}

impl LinkType {
    pub const ALL: [LinkType; 4] = [
        LinkType::Reflink,
        LinkType::Hardlink,
        LinkType::Symlink,
        LinkType::Copy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkType::Reflink => "reflink",
            LinkType::Hardlink => "hardlink",
            LinkType::Symlink => "symlink",
            LinkType::Copy => "copy",
        }
    }

    /// Hardlinked and symlinked files are the cache object itself, so they
    /// are read-only and cannot carry their own executable bit.
    pub fn shares_object(self) -> bool {
        matches!(self, LinkType::Hardlink | LinkType::Symlink)
    }

    /// Parses a `cache.type` value: a comma list such as `reflink,copy`.
    pub fn parse_list(s: &str) -> Result<Vec<LinkType>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let t: LinkType = part.parse()?;
            if out.contains(&t) {
                return Err(format!("{part} is listed twice"));
            }
            out.push(t);
        }
        Ok(out)
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LinkType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LinkType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("unknown link type {s:?}; use reflink, hardlink, symlink or copy")
            })
    }
}

/// The permission bits of a private (copy or reflink) workspace file.
pub fn private_mode(executable: bool) -> u32 {
    if executable { 0o755 } else { 0o644 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_unknown_or_repeated_types() {
        assert_eq!(
            LinkType::parse_list("reflink, copy"),
            Ok(vec![LinkType::Reflink, LinkType::Copy])
        );
        assert!(LinkType::parse_list("reflink,ftp").is_err());
        assert!(LinkType::parse_list("copy,copy").is_err());
        assert!(LinkType::parse_list("").is_err());
    }
}

//! The nats-server Baton needs, and refusing an older one at start.
//!
//! Baton relies on, by the version that brought each:
//! - `Nats-Expected-Last-Subject-Sequence-Subject` (2.11): an append is
//!   conditional on the last event of the hand-off across all its subjects
//!   ([`crate::events`]). An older server ignores the header and checks the
//!   append's own subject only, so after a reassignment (a new subject) a
//!   stale replica's append would land beside another's.
//! - stream metadata (the subject scheme, [`crate::streams`]) and subject
//!   transforms with `partition()` in stream sources ([`crate::partitions`]),
//!   both 2.10;
//! - direct gets (`allow_direct`, history reads by subject), 2.9.
//!
//! So the minimum is 2.11.0, and a pre-release of it (`2.11.0-RC.1`) is
//! older than that. Nothing Baton does needs 2.12; the tests run 2.12.8.

use std::{cmp::Ordering, fmt, time::Duration};

use crate::LogError;

/// The oldest nats-server Baton runs against.
pub const MINIMUM: Version = Version {
    major: 2,
    minor: 11,
    patch: 0,
    pre: None,
};

/// What [`MINIMUM`] is for, as a refusal names it.
pub const NEEDED_FOR: &str = "Nats-Expected-Last-Subject-Sequence-Subject, the condition that keeps two ingest replicas from both appending to one hand-off";

/// A nats-server version: `major.minor.patch`, maybe with a pre-release
/// (`-RC.1`); build metadata (`+...`) is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
}

impl Version {
    /// Reads `2.11.0`, `v2.11.0`, `2.12.0-RC.3`, `2.10.22+abc`; `None` for
    /// anything else (two or four parts, letters, empty).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = text
            .split_once('+')
            .map_or(text, |(version, _build)| version);
        let (numbers, pre) = match text.split_once('-') {
            Some((numbers, pre)) if !pre.is_empty() => (numbers, Some(pre.to_owned())),
            Some(_) => return None,
            None => (text, None),
        };
        let mut parts = numbers.split('.').map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                part.parse::<u64>().ok()
            }
        });
        let (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl Ord for Version {
    /// Semantic versioning's order, but for pre-releases of one version,
    /// which compare by their text: each is older than the release.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// Why Baton will not run against the server it reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("nats-server {found} is older than {MINIMUM}, which Baton needs for {NEEDED_FOR}")]
    TooOld { found: String },
    #[error("nats-server reports version {found:?}, which Baton cannot read; it needs {MINIMUM} or later, for {NEEDED_FOR}")]
    Unreadable { found: String },
}

/// Whether a server that reports `found` is one Baton runs against.
pub fn check(found: &str) -> Result<Version, Unsupported> {
    let Some(version) = Version::parse(found) else {
        return Err(Unsupported::Unreadable {
            found: found.to_owned(),
        });
    };
    if version < MINIMUM {
        return Err(Unsupported::TooOld {
            found: found.trim().to_owned(),
        });
    }
    Ok(version)
}

/// Waits until `client` has reached a server (it connects in the
/// background, see [`crate::connect`]) and checks the version that server
/// reports. Waits as long as NATS stays away: a caller bounds it by its own
/// shutdown.
pub async fn supported(client: &async_nats::Client) -> Result<Version, LogError> {
    loop {
        if let Some(info) = client.try_server_info() {
            return check(&info.version).map_err(LogError::from);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text:?} parses"))
    }

    #[test]
    fn reads_releases_prereleases_and_build_metadata() {
        assert_eq!(v("2.11.0"), MINIMUM);
        assert_eq!(v(" v2.11.0\n"), MINIMUM);
        assert_eq!(v("2.10.22+a1b2").to_string(), "2.10.22");
        assert_eq!(v("2.12.0-RC.3").pre.as_deref(), Some("RC.3"));
        assert_eq!(v("2.12.0-RC.3+build").to_string(), "2.12.0-RC.3");
        assert_eq!(v("10.0.0").major, 10);
    }

    #[test]
    fn odd_strings_are_no_version() {
        for odd in [
            "",
            "v",
            "2",
            "2.11",
            "2.11.0.1",
            "2.11.x",
            "2..0",
            "two.eleven.zero",
            "2.11.0-",
            "-2.11.0",
            "2.+11.0",
            "2.11.99999999999999999999",
            "nats-server: v2.12.8",
        ] {
            assert_eq!(Version::parse(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn orders_by_number_then_a_prerelease_before_its_release() {
        assert!(v("2.9.10") < v("2.11.0"));
        assert!(v("2.10.99") < v("2.11.0"));
        assert!(v("2.11.0-RC.1") < v("2.11.0"));
        assert!(v("2.11.0-RC.1") < v("2.11.0-RC.2"));
        assert!(v("2.11.0") < v("2.11.1-beta"));
        assert!(v("2.11.1") > v("2.11.1-beta"));
        assert!(v("3.0.0") > v("2.99.99"));
        assert_eq!(v("2.11.0+x").cmp(&v("2.11.0")), Ordering::Equal);
    }

    #[test]
    fn refuses_older_servers_naming_both_versions() {
        assert_eq!(check("2.11.0"), Ok(MINIMUM));
        assert!(check("2.12.8").is_ok());
        assert!(check("2.12.0-RC.3").is_ok());
        assert!(check("3.0.0").is_ok());
        let refused = check("2.9.10").expect_err("2.9.10 is too old");
        assert_eq!(
            refused,
            Unsupported::TooOld {
                found: "2.9.10".into()
            }
        );
        let message = refused.to_string();
        assert!(
            message.starts_with("nats-server 2.9.10 is older than 2.11.0, which Baton needs for Nats-Expected-Last-Subject-Sequence-Subject"),
            "{message}"
        );
        assert!(matches!(
            check("2.11.0-RC.7"),
            Err(Unsupported::TooOld { .. })
        ));
        assert!(matches!(check("2.10.29"), Err(Unsupported::TooOld { .. })));
        let unreadable = check("").expect_err("no version");
        assert!(matches!(unreadable, Unsupported::Unreadable { .. }));
        assert!(unreadable.to_string().contains("2.11.0 or later"));
    }
}

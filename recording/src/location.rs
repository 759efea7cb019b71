//! Where a recording goes: a local folder, a network folder (mounted on this server), or an FTP /
//! HTTP(S) server. Credentials may sit in the URL; [`Location`]'s `Display` and `Debug` never show
//! the password, and [`Location::redacted`] is what may be stored or returned.

use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("the recording location is empty")]
    Empty,
    #[error("unsupported scheme `{0}` (use ftp, http or https)")]
    Scheme(String),
    #[error("not a valid URL: {0}")]
    Url(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("a local path must be absolute and must not contain `..`")]
    Path,
    #[error("a Windows drive path cannot be used on this server (use an absolute path)")]
    WindowsPath,
    #[error(
        "network paths (\\\\host\\share) need recording.network_mount_root: the folder where \
         shares are mounted on this server"
    )]
    NoNetworkRoot,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on this server (for a network path: where the share is mounted).
    Folder {
        path: PathBuf,
        network: bool,
    },
    Ftp(Url),
    Http(Url),
}

impl Location {
    /// Parses a group's "Screen recording location". `\\host\share\dir` becomes
    /// `<network_root>/host/share/dir` (the share mounted on this server).
    pub fn parse(s: &str, network_root: Option<&Path>) -> Result<Location, LocationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(LocationError::Empty);
        }
        if let Some((scheme, _)) = s.split_once("://") {
            let url = Url::parse(s).map_err(|e| LocationError::Url(e.to_string()))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(LocationError::NoHost);
            }
            return match scheme.to_ascii_lowercase().as_str() {
                "ftp" => Ok(Location::Ftp(url)),
                "http" | "https" => Ok(Location::Http(url)),
                other => Err(LocationError::Scheme(other.to_owned())),
            };
        }
        if let Some(unc) = s.strip_prefix("\\\\") {
            let root = network_root.ok_or(LocationError::NoNetworkRoot)?;
            let parts: Vec<&str> = unc.split('\\').filter(|p| !p.is_empty()).collect();
            if parts.len() < 2 || parts.iter().any(|p| *p == ".." || *p == ".") {
                return Err(LocationError::Path);
            }
            let mut path = root.to_path_buf();
            path.extend(parts);
            return Ok(Location::Folder {
                path,
                network: true,
            });
        }
        let b = s.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return Err(LocationError::WindowsPath);
        }
        let path = PathBuf::from(s);
        if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
            return Err(LocationError::Path);
        }
        Ok(Location::Folder {
            path,
            network: false,
        })
    }

    /// Reads a location for what it says, without resolving it on this server: a network path
    /// stands for itself (under `/`) whether or not shares are mounted here. For classifying and
    /// checking settings; [`Location::parse`] with the server's mount root is what records.
    pub fn parse_form(s: &str) -> Result<Location, LocationError> {
        Location::parse(s, Some(Path::new("/")))
    }

    /// FTP and HTTP(S) always go through the spool (the guide: deferred upload is forced).
    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Folder { .. })
    }

    /// The location with its password replaced by `********` (safe to log, store and return).
    pub fn redacted(&self) -> String {
        self.to_string()
    }

    /// The full location, credentials included (for the spool's job file only).
    pub(crate) fn secret_string(&self) -> String {
        match self {
            Location::Folder { path, .. } => path.display().to_string(),
            Location::Ftp(u) | Location::Http(u) => u.to_string(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Folder { path, .. } => write!(f, "{}", path.display()),
            Location::Ftp(u) | Location::Http(u) => {
                let mut u = u.clone();
                if u.password().is_some() {
                    let _ = u.set_password(Some("********"));
                }
                write!(f, "{u}")
            }
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let l =
            Location::parse("ftp://rec:s3cr%40t@files.example.com:2121/recordings", None).unwrap();
        assert!(l.is_remote());
        let shown = format!("{l} {l:?} {}", l.redacted());
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("rec:********@files.example.com:2121/recordings"));
        assert!(l.secret_string().contains("s3cr%40t"));
        let h = Location::parse("https://files.example.com/up", None).unwrap();
        assert_eq!(h.to_string(), "https://files.example.com/up");
    }

    #[test]
    fn folders_and_network_paths() {
        assert_eq!(
            Location::parse("/srv/rec", None).unwrap(),
            Location::Folder {
                path: "/srv/rec".into(),
                network: false
            }
        );
        assert_eq!(
            Location::parse("\\\\support\\recordings\\lens", Some(Path::new("/mnt"))).unwrap(),
            Location::Folder {
                path: "/mnt/support/recordings/lens".into(),
                network: true
            }
        );
        assert_eq!(
            Location::parse("\\\\support\\recordings", None),
            Err(LocationError::NoNetworkRoot)
        );
        for bad in [
            "",
            "rec",
            "/srv/../etc",
            "C:\\recordings",
            "gopher://x/y",
            "ftp://",
        ] {
            assert!(
                Location::parse(bad, Some(Path::new("/mnt"))).is_err(),
                "{bad}"
            );
        }
        assert!(Location::parse("\\\\host\\..\\x", Some(Path::new("/mnt"))).is_err());
    }
}

//! The technician's tools on the live picture: annotation (pen and arrow strokes), freeze-frame
//! and sending a URL. This module holds what the server holds a console to — the shape of a
//! stroke, the URLs a customer may be shown, and how many strokes a session may take and how
//! fast. Pure, like the rest of the crate: time is passed in.
//!
//! Strokes are relayed, never stored: a session keeps only counts (see `ToolCounts`).

use crate::session::Millis;

/// Points a pen stroke may carry (an arrow carries exactly two: tail, then head).
pub const MAX_POINTS_PER_STROKE: usize = 1000;
/// Sustained rate of tool messages (strokes, clears, freezes, URLs) per session.
pub const ACTIONS_PER_SECOND: i64 = 10;
/// Tool messages a session may send at once before the sustained rate applies.
pub const ACTION_BURST: i64 = 20;
/// Strokes one session may take in all (a drawing is cleared long before; this bounds a runaway
/// client, not a technician).
pub const MAX_STROKES_PER_SESSION: u32 = 5000;
/// A sent URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// Why a tool message was refused by the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Faster than [`ACTIONS_PER_SECOND`]: try again after this many milliseconds.
    Rate { retry_after_ms: i64 },
    /// The session has had [`MAX_STROKES_PER_SESSION`] strokes.
    SessionTotal,
}

/// A token bucket per session (rate and burst above) plus the session's stroke total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Tokens × 1000, so that refills stay in integers.
    milli_tokens: i64,
    last: Millis,
    strokes: u32,
}

impl Budget {
    /// A full bucket at `now`.
    pub fn new(now: Millis) -> Self {
        Self {
            milli_tokens: ACTION_BURST * 1000,
            last: now,
            strokes: 0,
        }
    }

    fn take(&mut self, now: Millis) -> Result<(), Exceeded> {
        let elapsed = (now - self.last).max(0);
        self.last = self.last.max(now);
        self.milli_tokens =
            (self.milli_tokens + elapsed * ACTIONS_PER_SECOND).min(ACTION_BURST * 1000);
        if self.milli_tokens < 1000 {
            let missing = 1000 - self.milli_tokens;
            return Err(Exceeded::Rate {
                retry_after_ms: (missing + ACTIONS_PER_SECOND - 1) / ACTIONS_PER_SECOND,
            });
        }
        self.milli_tokens -= 1000;
        Ok(())
    }

    /// One stroke at `now`: within the rate and the session's total.
    pub fn admit_stroke(&mut self, now: Millis) -> Result<(), Exceeded> {
        if self.strokes >= MAX_STROKES_PER_SESSION {
            return Err(Exceeded::SessionTotal);
        }
        self.take(now)?;
        self.strokes += 1;
        Ok(())
    }

    /// A clear, a freeze or a URL at `now`: within the rate.
    pub fn admit_action(&mut self, now: Millis) -> Result<(), Exceeded> {
        self.take(now)
    }
}

/// What a session's tools were used for, as counted on the session (`GET /api/v1/sessions/{id}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolCounts {
    pub annotation_strokes: i64,
    pub annotation_clears: i64,
    pub freezes: i64,
    pub urls_sent: i64,
}

/// One use of a tool, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolUse {
    Stroke,
    Clear,
    Freeze,
    Url,
}

/// The host to show for a URL the technician sends: `Ok(host)` when it is an absolute `http` or
/// `https` URL of at most [`MAX_URL_CHARS`] characters with a host and no user name or password
/// (`https://bank.example@evil.example/` reads as the wrong site), and no spaces or control
/// characters. Everything else (`javascript:`, `data:`, `file:`, relative URLs) is refused with a
/// message saying why.
pub fn url_host(url: &str) -> Result<String, String> {
    if url.chars().nth(MAX_URL_CHARS).is_some() {
        return Err(format!("`url` is longer than {MAX_URL_CHARS} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`url` must not contain spaces or control characters".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("`url` must be an absolute http or https URL".into());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("`url` must be an http or https URL".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("`url` must not carry a user name or password".into());
    }
    // The host without the port; an IPv6 literal keeps its brackets.
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => return Err("`url` has a malformed host".into()),
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || host.starts_with('.') || host.contains("..") {
        return Err("`url` must have a host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return Err("`url` has a malformed host".into());
    }
    Ok(host.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_sustained_rate() {
        let mut b = Budget::new(0);
        for _ in 0..ACTION_BURST {
            b.admit_stroke(0).unwrap();
        }
        assert_eq!(
            b.admit_stroke(0),
            Err(Exceeded::Rate {
                retry_after_ms: 100
            })
        );
        // 100 ms later one more token is there, and only one.
        b.admit_stroke(100).unwrap();
        assert!(matches!(b.admit_action(100), Err(Exceeded::Rate { .. })));
        // 1,000 strokes in one second: the burst and ten a second, nothing more.
        let mut b = Budget::new(0);
        let taken = (0..1000)
            .filter(|i| b.admit_stroke(i64::from(*i)).is_ok())
            .count();
        assert_eq!(taken, 20 + 9);
        // A clock that goes back does not mint tokens.
        let mut b = Budget::new(1000);
        for _ in 0..ACTION_BURST {
            b.admit_action(1000).unwrap();
        }
        assert!(b.admit_action(0).is_err());
        assert!(b.admit_action(1000).is_err());
    }

    #[test]
    fn a_session_takes_at_most_its_total_of_strokes() {
        let mut b = Budget::new(0);
        let mut now = 0;
        for _ in 0..MAX_STROKES_PER_SESSION {
            now += 100;
            b.admit_stroke(now).unwrap();
        }
        now += 10_000;
        assert_eq!(b.admit_stroke(now), Err(Exceeded::SessionTotal));
        // Other tools go on.
        b.admit_action(now).unwrap();
    }

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert_eq!(
            url_host("https://Support.Example.com:8443/manual?x=1#p").unwrap(),
            "support.example.com"
        );
        assert_eq!(url_host("HTTP://example.org").unwrap(), "example.org");
        assert_eq!(url_host("http://[::1]:8080/").unwrap(), "[::1]");
        for bad in [
            "javascript:alert(1)",
            "JavaScript://example.com/%0Aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://example.com/x",
            "//example.com/x",
            "/relative",
            "https://",
            "https:///path",
            "https://bank.example@evil.example/",
            "https://exa mple.com/",
            "https://example.com/\n",
            "https://a..b/",
            "https://exa<mple.com/",
        ] {
            assert!(url_host(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048 - 20));
        assert_eq!(long.chars().count(), 2048);
        assert!(url_host(&long).is_ok());
        assert!(url_host(&format!("{long}a")).is_err());
    }
}

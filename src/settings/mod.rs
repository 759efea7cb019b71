//! Administrator-editable settings: per technician group ([`group`]) and organization-wide ([`global`]).
//!
//! Everything here is pure: values arrive as JSON bodies, are checked with `validate`, stored as JSON,
//! and compared with `diff` to feed the audit log. Secrets (passwords inside URLs, the master SSO
//! password) never appear in API output or in audit rows.

pub mod global;
pub mod group;

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What replaces a password in API output. A PUT that sends this back unchanged keeps the stored secret.
pub const SECRET_MASK: &str = "********";

/// Longest URL accepted anywhere in settings.
pub const MAX_URL_LEN: usize = 2048;

/// A validation failure, naming the offending field by its JSON path (`timeouts.waiting_minutes`,
/// `custom_fields[2].choices`) so the API can point the administrator at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Nests an error from a sub-document under `prefix` (`exceptions[0].network_id` becomes
    /// `console_ip_restrictions.exceptions[0].network_id`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SettingsError {}

/// One audit-log row per changed field, with the columns of the guide's Audit report
/// (Section, Field, Old Value, Old Action, New Value, New Action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub section: String,
    pub field: String,
    pub old_value: Option<String>,
    pub old_action: Option<String>,
    pub new_value: Option<String>,
    pub new_action: Option<String>,
}

/// Replaces the password of a `scheme://user:pass@host/...` URL with [`SECRET_MASK`]. Anything that is
/// not such a URL (local paths, UNC paths, URLs without a password) comes back unchanged.
///
/// Works on the text rather than re-serializing through `url::Url` so the rest of the string is
/// byte-for-byte what the administrator typed (a PUT of the masked form must compare equal).
pub fn mask_url_credentials(s: &str) -> String {
    match password_range(s) {
        Some((start, end)) => format!("{}{SECRET_MASK}{}", &s[..start], &s[end..]),
        None => s.to_owned(),
    }
}

/// The password of a URL, if it has a non-empty one.
pub(crate) fn url_password(s: &str) -> Option<&str> {
    password_range(s).map(|(start, end)| &s[start..end])
}

/// Byte range of the password, following the WHATWG authority rules the `url` crate uses: the
/// authority ends at the first `/ ? # \`, and the last `@` inside it ends the userinfo.
fn password_range(s: &str) -> Option<(usize, usize)> {
    let scheme_end = s.find("://")?;
    let scheme = &s[..scheme_end];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let auth_start = scheme_end + 3;
    let rest = &s[auth_start..];
    let auth_len = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let at = rest[..auth_len].rfind('@')?;
    let colon = rest[..at].find(':')?;
    let (start, end) = (auth_start + colon + 1, auth_start + at);
    (start < end).then_some((start, end))
}

/// Keeps the stored URL when the incoming one is exactly its masked form, i.e. the client sent back
/// what GET showed it. A masked URL with any other change is left alone, and validation then
/// rejects it: re-using a hidden password for a different host would hand it to that host.
pub(crate) fn merge_url_secret(incoming: &mut Option<String>, stored: &Option<String>) {
    if let (Some(new), Some(old)) = (incoming.as_ref(), stored.as_ref())
        && new != old
        && *new == mask_url_credentials(old)
    {
        *incoming = Some(old.clone());
    }
}

pub(crate) fn mask_opt_url(s: &Option<String>) -> Option<String> {
    s.as_deref().map(mask_url_credentials)
}

/// Length in characters (what an administrator counts), not bytes.
fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Bounded single-line text: `min..=max` characters, no control characters.
pub(crate) fn check_line(
    field: &str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), SettingsError> {
    check_len(field, s, min, max)?;
    if s.chars().any(char::is_control) {
        return Err(SettingsError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Bounded multi-line text: like [`check_line`] but line breaks and tabs are allowed.
pub(crate) fn check_multiline(
    field: &str,
    s: &str,
    min: usize,
    max: usize,
) -> Result<(), SettingsError> {
    check_len(field, s, min, max)?;
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(SettingsError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<(), SettingsError> {
    let n = char_len(s);
    if n < min {
        return Err(SettingsError::new(
            field,
            if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(SettingsError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Checks a URL against the allowed schemes; also rejects a literal masked password (the client
/// changed a masked URL without re-entering its password) and URLs whose password our text-based
/// masker would not find (so masking can never miss a password the parser sees).
pub(crate) fn check_url(field: &str, s: &str, schemes: &[&str]) -> Result<url::Url, SettingsError> {
    check_line(field, s, 1, MAX_URL_LEN)?;
    if s.chars().any(char::is_whitespace) {
        return Err(SettingsError::new(field, "must not contain spaces"));
    }
    let parsed = url::Url::parse(s)
        .map_err(|e| SettingsError::new(field, format!("not a valid URL: {e}")))?;
    if !schemes.contains(&parsed.scheme()) || !s.contains("://") {
        return Err(SettingsError::new(
            field,
            format!("URL scheme must be one of: {}", schemes.join(", ")),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(SettingsError::new(field, "URL must name a host"));
    }
    if let Some(pw) = parsed.password() {
        if pw == SECRET_MASK {
            return Err(SettingsError::new(
                field,
                "the password must be re-entered when the URL changes",
            ));
        }
        let masked = url::Url::parse(&mask_url_credentials(s)).ok();
        if masked.as_ref().and_then(url::Url::password) != Some(SECRET_MASK) {
            return Err(SettingsError::new(
                field,
                "credentials in the URL are malformed",
            ));
        }
    }
    Ok(parsed)
}

/// Which audit "action" words a boolean uses: features are Enabled/Disabled, options are
/// Selected/Unselected (the guide's Audit report uses both).
#[derive(Clone, Copy)]
pub(crate) enum BoolWords {
    Enabled,
    Selected,
}

impl BoolWords {
    fn word(self, b: bool) -> &'static str {
        match (self, b) {
            (BoolWords::Enabled, true) => "Enabled",
            (BoolWords::Enabled, false) => "Disabled",
            (BoolWords::Selected, true) => "Selected",
            (BoolWords::Selected, false) => "Unselected",
        }
    }
}

/// Collects [`FieldChange`]s. Each settings type walks its fields explicitly so every field has a
/// guide label and secrets go through [`Diff::secret`] / [`Diff::url`] only.
pub(crate) struct Diff {
    section: String,
    out: Vec<FieldChange>,
}

impl Diff {
    pub(crate) fn new() -> Self {
        Self {
            section: String::new(),
            out: Vec::new(),
        }
    }

    pub(crate) fn section(&mut self, section: impl Into<String>) -> &mut Self {
        self.section = section.into();
        self
    }

    fn push(
        &mut self,
        field: impl Into<String>,
        old: (Option<String>, Option<&str>),
        new: (Option<String>, Option<&str>),
    ) {
        self.out.push(FieldChange {
            section: self.section.clone(),
            field: field.into(),
            old_value: old.0,
            old_action: old.1.map(str::to_owned),
            new_value: new.0,
            new_action: new.1.map(str::to_owned),
        });
    }

    pub(crate) fn boolean(
        &mut self,
        field: &str,
        words: BoolWords,
        old: bool,
        new: bool,
    ) -> &mut Self {
        if old != new {
            self.push(
                field,
                (None, Some(words.word(old))),
                (None, Some(words.word(new))),
            );
        }
        self
    }

    pub(crate) fn toggle(&mut self, field: &str, old: bool, new: bool) -> &mut Self {
        self.boolean(field, BoolWords::Enabled, old, new)
    }

    pub(crate) fn checkbox(&mut self, field: &str, old: bool, new: bool) -> &mut Self {
        self.boolean(field, BoolWords::Selected, old, new)
    }

    pub(crate) fn value(&mut self, field: &str, old: String, new: String) -> &mut Self {
        if old != new {
            self.push(field, (Some(old), None), (Some(new), None));
        }
        self
    }

    pub(crate) fn opt_value(
        &mut self,
        field: &str,
        old: Option<String>,
        new: Option<String>,
    ) -> &mut Self {
        if old != new {
            self.push(field, (old, None), (new, None));
        }
        self
    }

    /// A secret is only ever reported as Set / Not set; `changed` covers Set → Set (a new password).
    pub(crate) fn secret(
        &mut self,
        field: &str,
        old: Option<&str>,
        new: Option<&str>,
    ) -> &mut Self {
        if old != new {
            let word = |s: Option<&str>| if s.is_some() { "Set" } else { "Not set" };
            self.push(field, (None, Some(word(old))), (None, Some(word(new))));
        }
        self
    }

    /// A URL that may carry credentials: the masked URL as the value, plus a "password" row when the
    /// password itself changed.
    pub(crate) fn url(&mut self, field: &str, old: Option<&str>, new: Option<&str>) -> &mut Self {
        self.opt_value(
            field,
            old.map(mask_url_credentials),
            new.map(mask_url_credentials),
        );
        self.secret(
            &format!("{field}: password"),
            old.and_then(url_password),
            new.and_then(url_password),
        )
    }

    /// One row per added or removed item (multiset difference, so duplicates count).
    pub(crate) fn list(&mut self, field: &str, old: &[String], new: &[String]) -> &mut Self {
        let mut remaining: Vec<&String> = new.iter().collect();
        let mut removed = Vec::new();
        for item in old {
            match remaining.iter().position(|n| *n == item) {
                Some(i) => {
                    remaining.remove(i);
                }
                None => removed.push(item),
            }
        }
        for item in removed {
            self.push(field, (Some(item.clone()), None), (None, Some("Removed")));
        }
        for item in remaining {
            self.push(field, (None, None), (Some(item.clone()), Some("Added")));
        }
        self
    }

    pub(crate) fn finish(self) -> Vec<FieldChange> {
        self.out
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Checks that a diff function notices a change to every leaf of a fully populated sample, so a
    //! field added to a settings type without a diff entry fails the tests.

    use serde_json::Value;

    use super::FieldChange;

    /// Every variant name used by settings enums, tried in turn when a string leaf is an enum.
    const ENUM_WORDS: &[&str] = &[
        "granted",
        "starting_technician",
        "closing_technician",
        "denied",
        "keep_alive",
        "notify_by_email",
        "abort_and_show_url",
        "connecting",
        "waiting",
        "open_text",
        "drop_down",
        "none",
        "built_in",
        "self_hosted",
        "open",
        "html_form",
        "xml",
        "good",
        "strong",
        "excellent",
        "standard_or_sso",
        "sso_only",
        "sso_only_with_standard_for_users_without_sso_id",
    ];

    fn leaves(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(Value::String(k.clone()));
                    leaves(child, path, out);
                    path.pop();
                }
            }
            // Empty arrays have no leaves; the sample must fill each list somewhere else.
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(Value::from(i));
                    leaves(child, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }

    fn at<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
        path.iter().fold(v, |v, seg| match seg {
            Value::String(k) => &mut v[k.as_str()],
            other => &mut v[other.as_u64().unwrap_or_default() as usize],
        })
    }

    fn candidates(leaf: &Value) -> Vec<Value> {
        match leaf {
            Value::Bool(b) => vec![Value::Bool(!b)],
            Value::Number(n) => vec![Value::from(n.as_u64().unwrap_or_default() + 1)],
            Value::String(s) => std::iter::once(Value::String(format!("{s}x")))
                .chain(
                    ENUM_WORDS
                        .iter()
                        .filter(|w| *w != s)
                        .map(|w| Value::from(*w)),
                )
                .collect(),
            _ => std::iter::once(Value::from("x"))
                .chain(ENUM_WORDS.iter().map(|w| Value::from(*w)))
                .collect(),
        }
    }

    pub(crate) fn assert_every_leaf_diffed<T>(
        sample: &T,
        to_json: impl Fn(&T) -> Value,
        from_json: impl Fn(Value) -> Option<T>,
        diff: impl Fn(&T, &T) -> Vec<FieldChange>,
    ) {
        let base = to_json(sample);
        let mut paths = Vec::new();
        leaves(&base, &mut Vec::new(), &mut paths);
        for path in paths {
            let original = at(&mut base.clone(), &path).clone();
            let mutated = candidates(&original).into_iter().find_map(|c| {
                let mut v = base.clone();
                *at(&mut v, &path) = c;
                from_json(v)
            });
            let Some(mutated) = mutated else {
                panic!("could not mutate leaf {path:?}");
            };
            assert!(
                !diff(sample, &mutated).is_empty(),
                "changing {path:?} produced no audit row"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_only() {
        assert_eq!(
            mask_url_credentials("ftp://user:pass@host/x"),
            "ftp://user:********@host/x"
        );
        assert_eq!(
            mask_url_credentials("https://u:p%40ss@Host.example:8443/a?b=c@d"),
            "https://u:********@Host.example:8443/a?b=c@d"
        );
        // Last '@' in the authority ends the userinfo, as URL parsers do.
        assert_eq!(
            mask_url_credentials("ftp://u:p@q@h/"),
            "ftp://u:********@h/"
        );
    }

    #[test]
    fn leaves_non_secret_strings_alone() {
        for s in [
            "C:\\recordings",
            "\\\\support\\recordings",
            "/var/rec",
            "https://host/path",
            "ftp://user@host/x",
            "ftp://user:@host/x",
            "https://host/a@b:c",
            "not a url",
            "",
            "://x:y@z",
        ] {
            assert_eq!(mask_url_credentials(s), s);
        }
    }

    #[test]
    fn masker_agrees_with_url_parser() {
        for s in [
            "ftp://user:pass@host/x",
            "https://a:b@h:1/",
            "http://a:b@h?x",
            "http://a:b@h#f",
        ] {
            let masked = url::Url::parse(&mask_url_credentials(s)).unwrap();
            assert_eq!(masked.password(), Some(SECRET_MASK), "{s}");
        }
    }

    #[test]
    fn merge_keeps_stored_only_for_exact_mask() {
        let stored = Some("ftp://u:secret@h/x".to_owned());
        let mut incoming = Some("ftp://u:********@h/x".to_owned());
        merge_url_secret(&mut incoming, &stored);
        assert_eq!(incoming, stored);

        let mut moved = Some("ftp://u:********@evil/x".to_owned());
        merge_url_secret(&mut moved, &stored);
        assert_eq!(moved.as_deref(), Some("ftp://u:********@evil/x"));
        assert!(check_url("f", moved.as_deref().unwrap(), &["ftp"]).is_err());

        let mut fresh = Some("ftp://u:new@h/x".to_owned());
        merge_url_secret(&mut fresh, &stored);
        assert_eq!(fresh.as_deref(), Some("ftp://u:new@h/x"));

        let mut cleared = None;
        merge_url_secret(&mut cleared, &stored);
        assert_eq!(cleared, None);
    }

    #[test]
    fn check_url_rules() {
        assert!(check_url("u", "https://example.com/x?y=1", &["http", "https"]).is_ok());
        assert!(check_url("u", "ftp://example.com/x", &["http", "https"]).is_err());
        assert!(check_url("u", "javascript:alert(1)", &["http", "https"]).is_err());
        assert!(check_url("u", "https:example.com", &["http", "https"]).is_err());
        assert!(check_url("u", "https://exa mple.com", &["http", "https"]).is_err());
        assert!(check_url("u", "", &["http", "https"]).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url("u", &long, &["https"]).is_err());
    }

    #[test]
    fn error_prefixing() {
        let e = SettingsError::new("exceptions[2].subnet_mask", "bad");
        assert_eq!(
            e.clone().prefixed("console_ip_restrictions").field,
            "console_ip_restrictions.exceptions[2].subnet_mask"
        );
        assert_eq!(
            SettingsError::new("[1].choices", "x")
                .prefixed("custom_fields")
                .field,
            "custom_fields[1].choices"
        );
        assert_eq!(SettingsError::new("", "x").prefixed("audio").field, "audio");
        assert_eq!(e.to_string(), "exceptions[2].subnet_mask: bad");
    }

    #[test]
    fn text_checks() {
        assert!(check_line("f", "ok", 1, 5).is_ok());
        assert!(check_line("f", "", 1, 5).is_err());
        assert!(check_line("f", "éééééé", 1, 5).is_err());
        assert!(check_line("f", "ééééé", 1, 5).is_ok());
        assert!(check_line("f", "a\r\nBcc: x", 1, 50).is_err());
        assert!(check_multiline("f", "a\r\nb\tc", 1, 50).is_ok());
        assert!(check_multiline("f", "a\u{0}", 1, 50).is_err());
    }

    #[test]
    fn list_diff_is_multiset() {
        let mut d = Diff::new();
        d.section("S").list(
            "L",
            &["a".into(), "b".into(), "b".into()],
            &["b".into(), "c".into()],
        );
        let rows = d.finish();
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter().any(|r| r.old_value.as_deref() == Some("a")
                && r.new_action.as_deref() == Some("Removed"))
        );
        assert!(
            rows.iter().any(|r| r.old_value.as_deref() == Some("b")
                && r.new_action.as_deref() == Some("Removed"))
        );
        assert!(rows.iter().any(
            |r| r.new_value.as_deref() == Some("c") && r.new_action.as_deref() == Some("Added")
        ));
    }

    #[test]
    fn url_diff_never_shows_password() {
        let mut d = Diff::new();
        d.section("S").url(
            "U",
            Some("ftp://u:old-secret@h/x"),
            Some("ftp://u:new-secret@h/x"),
        );
        let rows = d.finish();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].field, "U: password");
        assert_eq!(rows[0].old_action.as_deref(), Some("Set"));
        assert_eq!(rows[0].new_action.as_deref(), Some("Set"));
        assert_eq!(rows[0].old_value, None);
    }
}

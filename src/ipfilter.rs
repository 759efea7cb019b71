//! IP restrictions as the guide's "IP restrictions (Global)" and "IP restrictions (Technician Console)"
//! sections describe: a default (Granted or Denied access) plus exceptions, each a network ID and a
//! subnet mask. An address inside any exception gets the opposite of the default.
//!
//! Stored as typed by the administrator (so GET shows what was entered); checked on every request
//! through [`CompiledIpRestrictions`], which holds parsed, merged and sorted networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::settings::{Diff, SettingsError};

/// Most exceptions in one restriction list; bounds request-time work and storage.
pub const MAX_EXCEPTIONS: usize = 500;

/// Longest accepted network ID or mask text (a full IPv6 address with a prefix is under 50).
const MAX_ADDR_TEXT: usize = 64;

/// "By default, all users will be: Granted access / Denied access".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAccess {
    #[default]
    Granted,
    Denied,
}

impl DefaultAccess {
    /// The guide's wording, for audit rows.
    pub fn label(self) -> &'static str {
        match self {
            DefaultAccess::Granted => "Granted access",
            DefaultAccess::Denied => "Denied access",
        }
    }
}

/// One "Add new exception" entry. Accepted forms:
/// - `network_id: "10.1.0.0", subnet_mask: "255.255.0.0"` (the guide's form, IPv4 only),
/// - `network_id: "10.1.0.0/16"` or `"2001:db8::/32"` with no mask,
/// - a prefix length as the mask: `subnet_mask: "16"` or `"/64"` (the only mask form sensible for IPv6,
///   though an IPv6 mask address such as `ffff:ffff::` is accepted too),
/// - a bare address, meaning that single host (/32 or /128).
///
/// Host bits beyond the mask are ignored (`10.1.2.3` + `255.255.0.0` is `10.1.0.0/16`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpException {
    #[schema(example = "10.1.0.0")]
    pub network_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "255.255.0.0")]
    pub subnet_mask: Option<String>,
}

impl IpException {
    pub fn new(network_id: impl Into<String>, subnet_mask: Option<&str>) -> Self {
        Self {
            network_id: network_id.into(),
            subnet_mask: subnet_mask.map(str::to_owned),
        }
    }

    /// The exception as a network. Errors name `network_id` or `subnet_mask`.
    pub fn net(&self) -> Result<IpNet, SettingsError> {
        parse_exception(&self.network_id, self.subnet_mask.as_deref())
    }

    /// The guide's "IP address (Subnet mask)" column: `5.5.5.5 (255.255.255.255)` for IPv4,
    /// CIDR for IPv6; the raw text if it does not parse.
    pub fn display(&self) -> String {
        match self.net() {
            Ok(IpNet::V4(n)) => format!("{} ({})", n.network(), n.netmask()),
            Ok(IpNet::V6(n)) => n.to_string(),
            Err(_) => match &self.subnet_mask {
                Some(m) => format!("{} ({m})", self.network_id),
                None => self.network_id.clone(),
            },
        }
    }
}

/// A complete restriction list. `Default` grants everyone, as the guide says is the initial state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRestrictions {
    pub default_access: DefaultAccess,
    #[schema(max_items = 500)]
    pub exceptions: Vec<IpException>,
}

impl IpRestrictions {
    /// Checks every exception; field paths are relative (`exceptions[2].subnet_mask`).
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.compiled().map(|_| ())
    }

    /// Parses and merges the exceptions once, for fast per-request checks. Rejects too many
    /// exceptions, unparseable ones and duplicates (a duplicate is almost surely a mistake and would
    /// make "Removed" audit rows ambiguous).
    pub fn compiled(&self) -> Result<CompiledIpRestrictions, SettingsError> {
        if self.exceptions.len() > MAX_EXCEPTIONS {
            return Err(SettingsError::new(
                "exceptions",
                format!("at most {MAX_EXCEPTIONS} exceptions are allowed"),
            ));
        }
        let mut nets: Vec<IpNet> = Vec::with_capacity(self.exceptions.len());
        for (i, e) in self.exceptions.iter().enumerate() {
            let net = e
                .net()
                .map_err(|err| err.prefixed(&format!("exceptions[{i}]")))?;
            if let Some(j) = nets.iter().position(|n| *n == net) {
                return Err(SettingsError::new(
                    format!("exceptions[{i}].network_id"),
                    format!("duplicates exceptions[{j}]"),
                ));
            }
            nets.push(net);
        }
        Ok(CompiledIpRestrictions::new(self.default_access, &nets))
    }

    /// Convenience for one-off checks; request paths should keep a [`CompiledIpRestrictions`].
    /// An invalid list (never stored, since every PUT validates) fails closed: access denied.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.compiled().is_ok_and(|c| c.allows(addr))
    }

    /// Audit rows for this section: the default as a value, exceptions as Added/Removed items.
    pub(crate) fn diff_into(&self, new: &Self, d: &mut Diff, default_label: &str) {
        d.value(
            default_label,
            self.default_access.label().to_owned(),
            new.default_access.label().to_owned(),
        );
        let show = |r: &Self| {
            r.exceptions
                .iter()
                .map(IpException::display)
                .collect::<Vec<_>>()
        };
        d.list("Except the following", &show(self), &show(new));
    }
}

/// Parsed form of [`IpRestrictions`]: merged, sorted, disjoint networks per family, so a lookup is a
/// binary search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledIpRestrictions {
    default_access: DefaultAccess,
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl CompiledIpRestrictions {
    fn new(default_access: DefaultAccess, nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match *net {
                IpNet::V4(n) => v4.push(n),
                // An exception written as ::ffff:a.b.c.d/n is meant for IPv4 clients, whose addresses
                // we compare as IPv4 (see `allows`).
                IpNet::V6(n) => match (n.network().to_ipv4_mapped(), n.prefix_len()) {
                    (Some(a), len) if len >= 96 => {
                        v4.extend(Ipv4Net::new(a, len - 96).ok());
                    }
                    _ => v6.push(n),
                },
            }
        }
        let mut v4 = Ipv4Net::aggregate(&v4);
        let mut v6 = Ipv6Net::aggregate(&v6);
        v4.sort_unstable_by_key(Ipv4Net::network);
        v6.sort_unstable_by_key(Ipv6Net::network);
        Self {
            default_access,
            v4,
            v6,
        }
    }

    /// Whether a client at `addr` may connect. IPv4-mapped IPv6 addresses (from dual-stack sockets)
    /// are matched as the IPv4 address they carry.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let hit = match addr {
            IpAddr::V4(a) => contains_v4(&self.v4, a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a4) => contains_v4(&self.v4, a4),
                None => contains_v6(&self.v6, a),
            },
        };
        match self.default_access {
            DefaultAccess::Granted => !hit,
            DefaultAccess::Denied => hit,
        }
    }

    pub fn default_access(&self) -> DefaultAccess {
        self.default_access
    }
}

fn contains_v4(nets: &[Ipv4Net], a: Ipv4Addr) -> bool {
    // Disjoint and sorted: only the last network starting at or before `a` can contain it.
    let i = nets.partition_point(|n| n.network() <= a);
    i > 0 && nets[i - 1].contains(&a)
}

fn contains_v6(nets: &[Ipv6Net], a: Ipv6Addr) -> bool {
    let i = nets.partition_point(|n| n.network() <= a);
    i > 0 && nets[i - 1].contains(&a)
}

fn parse_exception(network_id: &str, subnet_mask: Option<&str>) -> Result<IpNet, SettingsError> {
    let id = network_id.trim();
    let mask = subnet_mask.map(str::trim).filter(|m| !m.is_empty());
    if id.is_empty() {
        return Err(SettingsError::new("network_id", "must not be empty"));
    }
    if id.len() > MAX_ADDR_TEXT {
        return Err(SettingsError::new(
            "network_id",
            "too long for an IP address",
        ));
    }
    if mask.is_some_and(|m| m.len() > MAX_ADDR_TEXT) {
        return Err(SettingsError::new(
            "subnet_mask",
            "too long for a subnet mask",
        ));
    }
    let (addr_text, prefix_text) = match id.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (id, None),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| SettingsError::new("network_id", "not an IPv4 or IPv6 address"))?;
    let prefix = match (prefix_text, mask) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::new(
                "subnet_mask",
                "give either a network ID in CIDR form or a subnet mask, not both",
            ));
        }
        (Some(p), None) => {
            parse_prefix_len(addr, p).map_err(|m| SettingsError::new("network_id", m))?
        }
        (None, Some(m)) => parse_mask(addr, m).map_err(|m| SettingsError::new("subnet_mask", m))?,
        (None, None) => max_prefix(addr),
    };
    IpNet::new(addr, prefix)
        .map(|n| n.trunc())
        .map_err(|_| SettingsError::new("subnet_mask", "prefix length out of range"))
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn parse_prefix_len(addr: IpAddr, text: &str) -> Result<u8, String> {
    let max = max_prefix(addr);
    // Digits only: `u8::from_str` would also take a leading '+'.
    match text
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u8>())
    {
        Some(Ok(n)) if n <= max => Ok(n),
        _ => Err(format!("prefix length must be a number from 0 to {max}")),
    }
}

fn parse_mask(addr: IpAddr, text: &str) -> Result<u8, String> {
    if let Some(len) = text.strip_prefix('/') {
        return parse_prefix_len(addr, len);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return parse_prefix_len(addr, text);
    }
    let not_contiguous = |_| "not a valid subnet mask (the one bits must be contiguous)".to_owned();
    match (addr, text.parse::<IpAddr>()) {
        (IpAddr::V4(_), Ok(IpAddr::V4(m))) => ipnet::ipv4_mask_to_prefix(m).map_err(not_contiguous),
        (IpAddr::V6(_), Ok(IpAddr::V6(m))) => ipnet::ipv6_mask_to_prefix(m).map_err(not_contiguous),
        (IpAddr::V4(_), Ok(IpAddr::V6(_))) => {
            Err("an IPv6 subnet mask cannot apply to an IPv4 network ID".to_owned())
        }
        (IpAddr::V6(_), Ok(IpAddr::V4(_))) => {
            Err("an IPv4 subnet mask cannot apply to an IPv6 network ID".to_owned())
        }
        (_, Err(_)) => Err("not a subnet mask or prefix length".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rules(default_access: DefaultAccess, ex: &[(&str, Option<&str>)]) -> IpRestrictions {
        IpRestrictions {
            default_access,
            exceptions: ex.iter().map(|(n, m)| IpException::new(*n, *m)).collect(),
        }
    }

    #[test]
    fn default_allows_everyone() {
        let r = IpRestrictions::default();
        assert_eq!(r.default_access, DefaultAccess::Granted);
        assert!(r.allows(ip("1.2.3.4")));
        assert!(r.allows(ip("2001:db8::1")));
    }

    #[test]
    fn granted_with_denied_host() {
        let r = rules(
            DefaultAccess::Granted,
            &[("5.5.5.5", Some("255.255.255.255"))],
        );
        let c = r.compiled().unwrap();
        assert!(!c.allows(ip("5.5.5.5")));
        assert!(c.allows(ip("5.5.5.6")));
        // Bare address means that host only.
        let bare = rules(DefaultAccess::Granted, &[("5.5.5.5", None)])
            .compiled()
            .unwrap();
        assert_eq!(bare, c);
    }

    #[test]
    fn denied_with_granted_range_mask_and_cidr() {
        for r in [
            rules(DefaultAccess::Denied, &[("10.1.0.0", Some("255.255.0.0"))]),
            rules(DefaultAccess::Denied, &[("10.1.0.0/16", None)]),
            rules(DefaultAccess::Denied, &[("10.1.0.0", Some("16"))]),
            rules(DefaultAccess::Denied, &[("10.1.0.0", Some("/16"))]),
            rules(DefaultAccess::Denied, &[("10.1.2.3", Some("255.255.0.0"))]),
        ] {
            let c = r.compiled().unwrap();
            assert!(c.allows(ip("10.1.0.1")));
            assert!(c.allows(ip("10.1.255.255")));
            assert!(!c.allows(ip("10.2.0.1")));
            assert!(!c.allows(ip("2001:db8::1")));
        }
    }

    #[test]
    fn ipv6_ranges() {
        let r = rules(
            DefaultAccess::Denied,
            &[("2001:db8::/32", None), ("fd00::", Some("8"))],
        );
        let c = r.compiled().unwrap();
        assert!(c.allows(ip("2001:db8:1::5")));
        assert!(c.allows(ip("fd12::1")));
        assert!(!c.allows(ip("2001:db9::1")));
        assert!(!c.allows(ip("10.0.0.1")));
        let m = rules(
            DefaultAccess::Denied,
            &[("2001:db8::", Some("ffff:ffff::"))],
        );
        assert!(m.allows(ip("2001:db8::9")));
    }

    #[test]
    fn ipv4_mapped_matches_as_ipv4() {
        let r = rules(DefaultAccess::Granted, &[("1.2.3.0/24", None)]);
        assert!(!r.allows(ip("::ffff:1.2.3.4")));
        assert!(r.allows(ip("::ffff:1.2.4.4")));
        let d = rules(DefaultAccess::Denied, &[("1.2.3.4", None)]);
        assert!(d.allows(ip("::ffff:1.2.3.4")));
        // A mapped-form exception applies to IPv4 clients.
        let m = rules(DefaultAccess::Granted, &[("::ffff:9.9.9.0/120", None)]);
        assert!(!m.allows(ip("9.9.9.9")));
        assert!(!m.allows(ip("::ffff:9.9.9.1")));
        assert!(m.allows(ip("9.9.8.1")));
    }

    #[test]
    fn overlapping_and_many_exceptions() {
        let mut ex: Vec<(String, Option<&str>)> = (0..=255)
            .map(|i| (format!("10.0.{i}.0/24"), None))
            .collect();
        ex.push(("10.0.0.0/8".to_owned(), None));
        ex.push(("192.168.1.7".to_owned(), None));
        let r = IpRestrictions {
            default_access: DefaultAccess::Denied,
            exceptions: ex
                .iter()
                .map(|(n, m)| IpException::new(n.as_str(), *m))
                .collect(),
        };
        let c = r.compiled().unwrap();
        assert!(c.allows(ip("10.200.0.1")));
        assert!(c.allows(ip("192.168.1.7")));
        assert!(!c.allows(ip("192.168.1.8")));
        assert!(!c.allows(ip("11.0.0.0")));
        assert!(!c.allows(ip("9.255.255.255")));
    }

    fn err_field(r: &IpRestrictions) -> String {
        r.validate().unwrap_err().field
    }

    #[test]
    fn bad_masks_and_garbage() {
        let ok = ("1.1.1.1", None);
        let r = rules(
            DefaultAccess::Granted,
            &[ok, ok, ("10.0.0.0", Some("255.0.255.0"))],
        );
        // Duplicates are caught first, at index 1.
        assert_eq!(err_field(&r), "exceptions[1].network_id");
        let r = rules(
            DefaultAccess::Granted,
            &[ok, ("2.2.2.2", None), ("10.0.0.0", Some("255.0.255.0"))],
        );
        assert_eq!(err_field(&r), "exceptions[2].subnet_mask");
        for (n, m, field) in [
            ("10.0.0.0", Some("255.255.255.1"), "subnet_mask"),
            ("10.0.0.0", Some("33"), "subnet_mask"),
            ("10.0.0.0", Some("+8"), "subnet_mask"),
            ("10.0.0.0", Some("banana"), "subnet_mask"),
            ("10.0.0.0", Some("ffff::"), "subnet_mask"),
            ("2001:db8::", Some("255.255.0.0"), "subnet_mask"),
            ("2001:db8::", Some("129"), "subnet_mask"),
            ("2001:db8::", Some("ffff:0:ffff::"), "subnet_mask"),
            ("10.0.0.0/16", Some("255.255.0.0"), "subnet_mask"),
            ("10.0.0.0/33", None, "network_id"),
            ("10.0.0.0/", None, "network_id"),
            ("10.0.0.0/-1", None, "network_id"),
            ("10.0.0", None, "network_id"),
            ("999.1.1.1", None, "network_id"),
            ("not-an-ip", None, "network_id"),
            ("", None, "network_id"),
            ("fe80::1%eth0", None, "network_id"),
            ("1.2.3.4\u{0}", None, "network_id"),
        ] {
            let r = rules(DefaultAccess::Granted, &[(n, m)]);
            let e = r.validate().unwrap_err();
            assert_eq!(e.field, format!("exceptions[0].{field}"), "{n} {m:?}: {e}");
            assert!(!r.allows(ip("8.8.8.8")), "invalid lists fail closed");
        }
        let long = "1".repeat(10_000);
        assert!(
            rules(DefaultAccess::Granted, &[(long.as_str(), None)])
                .validate()
                .is_err()
        );
        assert!(
            rules(DefaultAccess::Granted, &[("1.1.1.1", Some(long.as_str()))])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn limit_on_exception_count() {
        let exceptions: Vec<IpException> = (0..=MAX_EXCEPTIONS)
            .map(|i| IpException::new(format!("10.{}.{}.0/24", i / 256, i % 256), None))
            .collect();
        let mut r = IpRestrictions {
            default_access: DefaultAccess::Granted,
            exceptions,
        };
        assert_eq!(err_field(&r), "exceptions");
        r.exceptions.pop();
        assert!(r.validate().is_ok());
    }

    #[test]
    fn whitespace_and_empty_mask_tolerated() {
        let r = rules(DefaultAccess::Granted, &[(" 5.5.5.5 ", Some(""))]);
        assert!(!r.allows(ip("5.5.5.5")));
    }

    #[test]
    fn display_and_json() {
        let e = IpException::new("10.1.2.3", Some("255.255.0.0"));
        assert_eq!(e.display(), "10.1.0.0 (255.255.0.0)");
        assert_eq!(
            IpException::new("2001:db8::1/32", None).display(),
            "2001:db8::/32"
        );
        assert_eq!(IpException::new("x", Some("y")).display(), "x (y)");
        let r = rules(
            DefaultAccess::Denied,
            &[("5.5.5.5", Some("255.255.255.255")), ("10.0.0.0/8", None)],
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "default_access": "denied",
                "exceptions": [
                    {"network_id": "5.5.5.5", "subnet_mask": "255.255.255.255"},
                    {"network_id": "10.0.0.0/8"}
                ]
            })
        );
        assert_eq!(serde_json::from_value::<IpRestrictions>(json).unwrap(), r);
        assert!(
            serde_json::from_str::<IpRestrictions>(r#"{"default_access":"maybe","exceptions":[]}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<IpRestrictions>(
                r#"{"default_access":"granted","exceptions":[],"extra":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn diff_rows() {
        let old = rules(DefaultAccess::Granted, &[("5.5.5.5", None)]);
        let new = rules(DefaultAccess::Denied, &[("6.6.6.0/24", None)]);
        let mut d = Diff::new();
        d.section("IP restrictions (Global)");
        old.diff_into(&new, &mut d, "By default, all users will be");
        let rows = d.finish();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].new_value.as_deref(), Some("Denied access"));
        assert_eq!(
            rows[1].old_value.as_deref(),
            Some("5.5.5.5 (255.255.255.255)")
        );
        assert_eq!(rows[1].new_action.as_deref(), Some("Removed"));
        assert_eq!(
            rows[2].new_value.as_deref(),
            Some("6.6.6.0 (255.255.255.0)")
        );
        assert_eq!(rows[2].new_action.as_deref(), Some("Added"));
    }
}

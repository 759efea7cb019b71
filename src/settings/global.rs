//! Organization-wide settings: the guide's Global Settings tab (master administrators only).
//!
//! The master SSO password makes this document different from group settings: the server keeps only
//! an Argon2 hash of it, the API may set it but never read it back. Three types keep that hard to
//! get wrong:
//!
//! - [`GlobalSettings`] is the stored form. It carries the hash in a private field, implements
//!   neither `Serialize` nor `ToSchema` (so it cannot be returned from a handler by accident), and
//!   redacts the hash from `Debug`. Persist it with [`GlobalSettings::to_storage_json`] /
//!   [`GlobalSettings::from_storage_json`].
//! - [`GlobalSettingsView`] is the GET body: `single_sign_on.master_sso_password_set: bool` instead
//!   of any password material.
//! - [`GlobalSettingsUpdate`] is the PUT body: `single_sign_on.master_sso_password` is write-only
//!   (absent = keep the stored one). [`GlobalSettingsUpdate::apply`] validates it against the stored
//!   settings and hashes a new password through a callback, so this module stays pure.
//!
//! Because the password is never sent out, there is no masked round trip to merge: `apply` is
//! this type's `merge_secrets`.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Diff, FieldChange, SECRET_MASK, SettingsError, check_line};
use crate::ipfilter::IpRestrictions;

/// Longest custom field name (the guide's reports show them as column headers).
pub const MAX_FIELD_NAME: usize = 64;
/// Upper bound for the password-age settings, days (the guide: 0 = no limit / no notification).
pub const MAX_PASSWORD_DAYS: u32 = 999;
pub const MIN_SSO_PASSWORD: usize = 8;
pub const MAX_SSO_PASSWORD: usize = 128;

/// "Minimum password strength". Ordered: `Good < Strong < Excellent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PasswordStrength {
    /// 3 character types, repeats allowed ("Sampla12").
    Good,
    /// 3 types without repeated characters ("Sample12"), or 4 types with repeats ("Sampla1%").
    Strong,
    /// 4 types without repeated characters ("Sample1%").
    Excellent,
}

impl PasswordStrength {
    /// Minimum length of any password, whatever the policy.
    pub const MIN_LEN: usize = 8;

    /// Strength of `pw` by the guide's rules; `None` if it meets none (too short or < 3 types).
    /// Character types: lowercase, uppercase, numeric, special (anything else).
    pub fn of(pw: &str) -> Option<Self> {
        if pw.chars().count() < Self::MIN_LEN {
            return None;
        }
        let (mut lower, mut upper, mut digit, mut special) = (false, false, false, false);
        for c in pw.chars() {
            if c.is_lowercase() {
                lower = true;
            } else if c.is_uppercase() {
                upper = true;
            } else if c.is_numeric() {
                digit = true;
            } else {
                special = true;
            }
        }
        let types = [lower, upper, digit, special]
            .iter()
            .filter(|t| **t)
            .count();
        let mut seen: Vec<char> = Vec::new();
        let repeats = pw.chars().any(|c| {
            let dup = seen.contains(&c);
            seen.push(c);
            dup
        });
        match (types, repeats) {
            (4, false) => Some(Self::Excellent),
            (4, true) | (3, false) => Some(Self::Strong),
            (3, true) => Some(Self::Good),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Good => "Good",
            Self::Strong => "Strong",
            Self::Excellent => "Excellent",
        }
    }
}

/// "Password Policies" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    pub minimum_strength: PasswordStrength,
    /// 0 = no limit, else 1..=999 days.
    pub maximum_age_days: u32,
    /// 0 = no notification, else 1..=999 days before expiry.
    pub notify_days_before_expiry: u32,
    /// "Admin password changes force user to change password at next logon".
    pub admin_change_forces_password_change: bool,
}

impl PasswordPolicy {
    fn validate(&self) -> Result<(), SettingsError> {
        for (field, v) in [
            ("maximum_age_days", self.maximum_age_days),
            ("notify_days_before_expiry", self.notify_days_before_expiry),
        ] {
            if v > MAX_PASSWORD_DAYS {
                return Err(SettingsError::new(
                    field,
                    format!("must be 0 to {MAX_PASSWORD_DAYS} days"),
                ));
            }
        }
        Ok(())
    }
}

/// "Custom Fields" section: the names shown in the console and in reports. The name field is
/// CField0, the others CField1..CField5; which of 1..5 a group shows is set per group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldNames {
    /// "Name for name field", 1..=64 characters.
    pub name_field: String,
    /// "Name for custom fields", 1..=64 characters each.
    #[schema(min_items = 5, max_items = 5)]
    pub custom_fields: [String; 5],
}

impl CustomFieldNames {
    /// CField0..CField5 in order.
    pub fn all(&self) -> [&str; 6] {
        let c = &self.custom_fields;
        [&self.name_field, &c[0], &c[1], &c[2], &c[3], &c[4]]
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let fields: [String; 6] = std::array::from_fn(|i| match i {
            0 => "name_field".to_owned(),
            n => format!("custom_fields[{}]", n - 1),
        });
        let names = self.all();
        for (i, (field, name)) in fields.iter().zip(names).enumerate() {
            check_line(field, name, 1, MAX_FIELD_NAME)?;
            if name.trim().is_empty() {
                return Err(SettingsError::new(field, "must not be blank"));
            }
            // Names become report column headers; two alike would be indistinguishable.
            if names[..i]
                .iter()
                .any(|o| o.trim().eq_ignore_ascii_case(name.trim()))
            {
                return Err(SettingsError::new(
                    field,
                    "another custom field already has this name",
                ));
            }
        }
        Ok(())
    }
}

/// "Allowed login method".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllowedLoginMethod {
    /// Standard email/password or SSO ID.
    StandardOrSso,
    /// SSO ID only; users without one cannot log in.
    SsoOnly,
    /// SSO ID only for users who have one; standard login for users who do not.
    SsoOnlyWithStandardForUsersWithoutSsoId,
}

impl AllowedLoginMethod {
    fn label(self) -> &'static str {
        match self {
            Self::StandardOrSso => "Standard or SSO",
            Self::SsoOnly => "SSO only",
            Self::SsoOnlyWithStandardForUsersWithoutSsoId => {
                "SSO only plus Allow users without an SSO ID to use standard login"
            }
        }
    }

    /// Whether some users can only log in through SSO, which then needs a master SSO password.
    fn requires_sso_password(self) -> bool {
        !matches!(self, Self::StandardOrSso)
    }
}

/// "Customer Survey Issuance > Survey issued by": which technician a customer survey is credited to
/// when the session changed hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyIssuer {
    /// The technician who first picked the session up.
    StartingTechnician,
    /// The session's technician when it ended. The Customer Survey Issuance report exists only
    /// with this choice, as in the guide.
    #[default]
    ClosingTechnician,
}

impl SurveyIssuer {
    fn label(self) -> &'static str {
        match self {
            Self::StartingTechnician => "Starting technician",
            Self::ClosingTechnician => "Closing technician",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerSurveyIssuance {
    pub survey_issued_by: SurveyIssuer,
}

/// Stored settings. See the module docs for why this is neither `Serialize` nor `ToSchema`.
#[derive(Clone, PartialEq, Eq)]
pub struct GlobalSettings {
    pub password_policy: PasswordPolicy,
    pub ip_restrictions: IpRestrictions,
    pub custom_field_names: CustomFieldNames,
    /// "Do not store customer IP address".
    pub do_not_store_customer_ip: bool,
    pub allowed_login_method: AllowedLoginMethod,
    /// Argon2 PHC string of the master SSO password, produced by the server.
    master_sso_password_hash: Option<String>,
    pub customer_survey_issuance: CustomerSurveyIssuance,
}

impl fmt::Debug for GlobalSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalSettings")
            .field("password_policy", &self.password_policy)
            .field("ip_restrictions", &self.ip_restrictions)
            .field("custom_field_names", &self.custom_field_names)
            .field("do_not_store_customer_ip", &self.do_not_store_customer_ip)
            .field("allowed_login_method", &self.allowed_login_method)
            .field(
                "master_sso_password_set",
                &self.master_sso_password_hash.is_some(),
            )
            .field("customer_survey_issuance", &self.customer_survey_issuance)
            .finish()
    }
}

impl Default for GlobalSettings {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy {
                minimum_strength: PasswordStrength::Good,
                maximum_age_days: 0,
                notify_days_before_expiry: 0,
                admin_change_forces_password_change: true,
            },
            ip_restrictions: IpRestrictions::default(),
            custom_field_names: CustomFieldNames {
                name_field: "Name".to_owned(),
                custom_fields: std::array::from_fn(|i| format!("Custom Field {}", i + 1)),
            },
            do_not_store_customer_ip: false,
            allowed_login_method: AllowedLoginMethod::StandardOrSso,
            master_sso_password_hash: None,
            customer_survey_issuance: CustomerSurveyIssuance::default(),
        }
    }
}

/// Storage layout. Lenient (`default`, unknown fields ignored) so a document written by an older or
/// newer server still loads; the API types are the strict ones.
#[derive(Serialize, Deserialize)]
#[serde(default)]
struct Stored {
    password_policy: PasswordPolicy,
    ip_restrictions: IpRestrictions,
    custom_field_names: CustomFieldNames,
    do_not_store_customer_ip: bool,
    single_sign_on: StoredSso,
    customer_survey_issuance: CustomerSurveyIssuance,
}

#[derive(Serialize, Deserialize)]
#[serde(default)]
struct StoredSso {
    allowed_login_method: AllowedLoginMethod,
    master_sso_password_hash: Option<String>,
}

impl Default for Stored {
    fn default() -> Self {
        GlobalSettings::default().into_stored()
    }
}

impl Default for StoredSso {
    fn default() -> Self {
        GlobalSettings::default().into_stored().single_sign_on
    }
}

impl GlobalSettings {
    fn into_stored(self) -> Stored {
        Stored {
            password_policy: self.password_policy,
            ip_restrictions: self.ip_restrictions,
            custom_field_names: self.custom_field_names,
            do_not_store_customer_ip: self.do_not_store_customer_ip,
            single_sign_on: StoredSso {
                allowed_login_method: self.allowed_login_method,
                master_sso_password_hash: self.master_sso_password_hash,
            },
            customer_survey_issuance: self.customer_survey_issuance,
        }
    }

    /// The document to persist (includes the password hash; never send it to a client).
    pub fn to_storage_json(&self) -> serde_json::Value {
        // Serializing plain structs and strings to a Value cannot fail.
        serde_json::to_value(self.clone().into_stored()).unwrap_or_default()
    }

    pub fn from_storage_json(v: serde_json::Value) -> Result<Self, serde_json::Error> {
        let s: Stored = serde_json::from_value(v)?;
        Ok(Self {
            password_policy: s.password_policy,
            ip_restrictions: s.ip_restrictions,
            custom_field_names: s.custom_field_names,
            do_not_store_customer_ip: s.do_not_store_customer_ip,
            allowed_login_method: s.single_sign_on.allowed_login_method,
            master_sso_password_hash: s.single_sign_on.master_sso_password_hash,
            customer_survey_issuance: s.customer_survey_issuance,
        })
    }

    /// The hash to verify an SSO request's password against.
    pub fn master_sso_password_hash(&self) -> Option<&str> {
        self.master_sso_password_hash.as_deref()
    }

    /// The GET body.
    pub fn view(&self) -> GlobalSettingsView {
        GlobalSettingsView {
            password_policy: self.password_policy.clone(),
            ip_restrictions: self.ip_restrictions.clone(),
            custom_field_names: self.custom_field_names.clone(),
            do_not_store_customer_ip: self.do_not_store_customer_ip,
            single_sign_on: SingleSignOnView {
                allowed_login_method: self.allowed_login_method,
                master_sso_password_set: self.master_sso_password_hash.is_some(),
            },
            customer_survey_issuance: self.customer_survey_issuance,
            api: None,
        }
    }

    /// Checks everything except the password itself (only its hash is here).
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.password_policy
            .validate()
            .map_err(|e| e.prefixed("password_policy"))?;
        self.ip_restrictions
            .validate()
            .map_err(|e| e.prefixed("ip_restrictions"))?;
        self.custom_field_names
            .validate()
            .map_err(|e| e.prefixed("custom_field_names"))?;
        if self.allowed_login_method.requires_sso_password()
            && self.master_sso_password_hash.is_none()
        {
            return Err(SettingsError::new(
                "single_sign_on.master_sso_password",
                "a master SSO password must be set for this login method",
            ));
        }
        Ok(())
    }

    /// Audit rows; the SSO password appears only as Set / Not set (Set -> Set when replaced).
    pub fn diff(&self, new: &Self) -> Vec<FieldChange> {
        let mut d = Diff::new();
        let (op, np) = (&self.password_policy, &new.password_policy);
        let days = |v: u32, zero: &str| {
            if v == 0 {
                zero.to_owned()
            } else {
                format!("{v} days")
            }
        };
        d.section("Password Policies")
            .value(
                "Minimum password strength",
                op.minimum_strength.label().to_owned(),
                np.minimum_strength.label().to_owned(),
            )
            .value(
                "Maximum password age",
                days(op.maximum_age_days, "No limit"),
                days(np.maximum_age_days, "No limit"),
            )
            .value(
                "Notification before password expires",
                days(op.notify_days_before_expiry, "No notification"),
                days(np.notify_days_before_expiry, "No notification"),
            )
            .checkbox(
                "Admin password changes force user to change password at next logon",
                op.admin_change_forces_password_change,
                np.admin_change_forces_password_change,
            );

        d.section("IP restrictions (Global)");
        self.ip_restrictions.diff_into(
            &new.ip_restrictions,
            &mut d,
            "By default, all users will be",
        );

        let (oc, nc) = (&self.custom_field_names, &new.custom_field_names);
        d.section("Custom Fields").value(
            "Name for name field",
            oc.name_field.clone(),
            nc.name_field.clone(),
        );
        for (i, (o, n)) in oc.custom_fields.iter().zip(&nc.custom_fields).enumerate() {
            d.value(
                &format!("Name for Custom Field {}", i + 1),
                o.clone(),
                n.clone(),
            );
        }

        d.section("Global Settings").checkbox(
            "Do not store customer IP address",
            self.do_not_store_customer_ip,
            new.do_not_store_customer_ip,
        );

        d.section("Single Sign-On")
            .value(
                "Allowed login method",
                self.allowed_login_method.label().to_owned(),
                new.allowed_login_method.label().to_owned(),
            )
            .secret(
                "Master SSO password",
                self.master_sso_password_hash.as_deref(),
                new.master_sso_password_hash.as_deref(),
            );

        d.section("Customer Survey Issuance").value(
            "Survey issued by",
            self.customer_survey_issuance
                .survey_issued_by
                .label()
                .to_owned(),
            new.customer_survey_issuance
                .survey_issued_by
                .label()
                .to_owned(),
        );
        d.finish()
    }
}

/// GET `/api/v1/global-settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GlobalSettingsView {
    pub password_policy: PasswordPolicy,
    pub ip_restrictions: IpRestrictions,
    pub custom_field_names: CustomFieldNames,
    pub do_not_store_customer_ip: bool,
    pub single_sign_on: SingleSignOnView,
    pub customer_survey_issuance: CustomerSurveyIssuance,
    /// Read-only: what an integration needs (the company ID and a sample SSO request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSection>,
}

/// The "API" part of Global Settings: read-only, filled by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"company_id": 654321,
    "sso_url": "https://lens.example.com/SSO/GetLoginTicket.aspx",
    "sample_request": "https://lens.example.com/SSO/GetLoginTicket.aspx?ssoid=123456&Password=secretPassword&CompanyID=654321"}))]
pub struct ApiSection {
    /// The `CompanyID` of single sign-on requests.
    pub company_id: i64,
    /// Where the company's script asks for a login ticket (GET or POST).
    pub sso_url: String,
    /// A sample request, as the guide shows it.
    pub sample_request: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SingleSignOnView {
    pub allowed_login_method: AllowedLoginMethod,
    /// Whether a master SSO password has been set (the password itself is never returned).
    pub master_sso_password_set: bool,
}

/// PUT `/api/v1/global-settings`: the whole document, strict.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalSettingsUpdate {
    pub password_policy: PasswordPolicy,
    pub ip_restrictions: IpRestrictions,
    pub custom_field_names: CustomFieldNames,
    pub do_not_store_customer_ip: bool,
    pub single_sign_on: SingleSignOnUpdate,
    /// Absent keeps the stored choice (clients written before the option existed).
    #[serde(default)]
    pub customer_survey_issuance: Option<CustomerSurveyIssuance>,
    /// The GET's read-only `api` part may be sent back as it was; it is ignored (but, as the
    /// document says, it must be an object or null).
    #[serde(default)]
    #[schema(value_type = Option<Object>, read_only)]
    pub api: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SingleSignOnUpdate {
    pub allowed_login_method: AllowedLoginMethod,
    /// Write-only. A new master SSO password (8..=128 characters); absent, null or `********`
    /// keeps the stored one.
    #[serde(default)]
    #[schema(write_only, format = Password)]
    pub master_sso_password: Option<String>,
    /// Removes the stored master SSO password (only with `standard_or_sso`).
    #[serde(default)]
    pub clear_master_sso_password: bool,
}

impl fmt::Debug for GlobalSettingsUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalSettingsUpdate")
            .field("password_policy", &self.password_policy)
            .field("ip_restrictions", &self.ip_restrictions)
            .field("custom_field_names", &self.custom_field_names)
            .field("do_not_store_customer_ip", &self.do_not_store_customer_ip)
            .field("single_sign_on", &self.single_sign_on)
            .field("customer_survey_issuance", &self.customer_survey_issuance)
            .finish()
    }
}

impl fmt::Debug for SingleSignOnUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleSignOnUpdate")
            .field("allowed_login_method", &self.allowed_login_method)
            .field(
                "master_sso_password",
                &self.new_password().map(|_| SECRET_MASK),
            )
            .field("clear_master_sso_password", &self.clear_master_sso_password)
            .finish()
    }
}

impl SingleSignOnUpdate {
    /// The password to set, if any (the mask a UI may echo back means "keep").
    pub fn new_password(&self) -> Option<&str> {
        self.master_sso_password
            .as_deref()
            .filter(|p| *p != SECRET_MASK)
    }
}

impl GlobalSettingsUpdate {
    /// Validates against the stored settings and builds the new stored value. `hash` turns a new
    /// clear-text master SSO password into the stored hash (the server's Argon2id); it is called at
    /// most once, and only after everything else validated.
    pub fn apply(
        self,
        stored: &GlobalSettings,
        hash: impl FnOnce(&str) -> String,
    ) -> Result<GlobalSettings, SettingsError> {
        let sso = &self.single_sign_on;
        let new_password = sso.new_password();
        if let Some(pw) = new_password {
            const FIELD: &str = "single_sign_on.master_sso_password";
            check_line(FIELD, pw, MIN_SSO_PASSWORD, MAX_SSO_PASSWORD)?;
            if pw.trim() != pw {
                return Err(SettingsError::new(
                    FIELD,
                    "must not start or end with spaces",
                ));
            }
            if sso.clear_master_sso_password {
                return Err(SettingsError::new(
                    "single_sign_on.clear_master_sso_password",
                    "cannot both set and clear the master SSO password",
                ));
            }
        }
        let mut next = GlobalSettings {
            password_policy: self.password_policy,
            ip_restrictions: self.ip_restrictions,
            custom_field_names: self.custom_field_names,
            do_not_store_customer_ip: self.do_not_store_customer_ip,
            allowed_login_method: sso.allowed_login_method,
            master_sso_password_hash: if sso.clear_master_sso_password {
                None
            } else {
                stored.master_sso_password_hash.clone()
            },
            customer_survey_issuance: self
                .customer_survey_issuance
                .unwrap_or(stored.customer_survey_issuance),
        };
        if new_password.is_some() {
            // Placeholder so `validate` sees a password; replaced by the real hash below.
            next.master_sso_password_hash = Some(String::new());
        }
        next.validate()?;
        if let Some(pw) = self.single_sign_on.new_password() {
            next.master_sso_password_hash = Some(hash(pw));
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfilter::{DefaultAccess, IpException};
    use crate::settings::testutil::assert_every_leaf_diffed;
    use serde_json::json;

    fn fake_hash(pw: &str) -> String {
        format!("$argon2id$fake${}", pw.len())
    }

    fn update_json(sso: serde_json::Value) -> serde_json::Value {
        let view = serde_json::to_value(GlobalSettings::default().view()).unwrap();
        let mut v = view.clone();
        v["single_sign_on"] = sso;
        v
    }

    fn update(sso: serde_json::Value) -> GlobalSettingsUpdate {
        serde_json::from_value(update_json(sso)).unwrap()
    }

    fn with_password() -> GlobalSettings {
        update(json!({"allowed_login_method": "sso_only", "master_sso_password": "Sso-Secret-123"}))
            .apply(&GlobalSettings::default(), fake_hash)
            .unwrap()
    }

    #[test]
    fn defaults() {
        let d = GlobalSettings::default();
        d.validate().unwrap();
        assert_eq!(
            d.custom_field_names.all(),
            [
                "Name",
                "Custom Field 1",
                "Custom Field 2",
                "Custom Field 3",
                "Custom Field 4",
                "Custom Field 5"
            ]
        );
        assert_eq!(d.password_policy.minimum_strength, PasswordStrength::Good);
        assert_eq!(d.ip_restrictions.default_access, DefaultAccess::Granted);
        assert!(!d.view().single_sign_on.master_sso_password_set);
    }

    #[test]
    fn validation_rules() {
        let fails = |f: &dyn Fn(&mut GlobalSettings), field: &str| {
            let mut s = GlobalSettings::default();
            f(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        };
        fails(
            &|s| s.password_policy.maximum_age_days = 1000,
            "password_policy.maximum_age_days",
        );
        fails(
            &|s| s.password_policy.notify_days_before_expiry = 1000,
            "password_policy.notify_days_before_expiry",
        );
        fails(
            &|s| s.custom_field_names.name_field.clear(),
            "custom_field_names.name_field",
        );
        fails(
            &|s| s.custom_field_names.name_field = " ".to_owned(),
            "custom_field_names.name_field",
        );
        fails(
            &|s| s.custom_field_names.custom_fields[3] = "x".repeat(65),
            "custom_field_names.custom_fields[3]",
        );
        fails(
            &|s| s.custom_field_names.custom_fields[1] = "a\nb".to_owned(),
            "custom_field_names.custom_fields[1]",
        );
        fails(
            &|s| s.custom_field_names.custom_fields[4] = "name".to_owned(),
            "custom_field_names.custom_fields[4]",
        );
        fails(
            &|s| {
                s.ip_restrictions.exceptions =
                    vec![IpException::new("1.2.3.4", Some("255.0.255.0"))]
            },
            "ip_restrictions.exceptions[0].subnet_mask",
        );
        fails(
            &|s| s.allowed_login_method = AllowedLoginMethod::SsoOnly,
            "single_sign_on.master_sso_password",
        );
        let mut ok = GlobalSettings::default();
        ok.password_policy.maximum_age_days = 999;
        ok.custom_field_names.custom_fields[0] = "é".repeat(64);
        ok.validate().unwrap();
    }

    #[test]
    fn update_sets_keeps_and_clears_password() {
        let stored = with_password();
        assert_eq!(stored.master_sso_password_hash(), Some("$argon2id$fake$14"));
        assert!(stored.view().single_sign_on.master_sso_password_set);

        // Absent, null and the mask all keep it, without calling the hasher.
        for sso in [
            json!({"allowed_login_method": "sso_only"}),
            json!({"allowed_login_method": "sso_only", "master_sso_password": null}),
            json!({"allowed_login_method": "sso_only", "master_sso_password": "********"}),
        ] {
            let next = update(sso)
                .apply(&stored, |_| panic!("must not hash"))
                .unwrap();
            assert_eq!(
                next.master_sso_password_hash(),
                stored.master_sso_password_hash()
            );
        }

        let cleared = update(
            json!({"allowed_login_method": "standard_or_sso", "clear_master_sso_password": true}),
        )
        .apply(&stored, fake_hash)
        .unwrap();
        assert_eq!(cleared.master_sso_password_hash(), None);

        let err =
            update(json!({"allowed_login_method": "sso_only", "clear_master_sso_password": true}))
                .apply(&stored, fake_hash)
                .unwrap_err();
        assert_eq!(err.field, "single_sign_on.master_sso_password");
        let err = update(json!({"allowed_login_method": "standard_or_sso", "master_sso_password": "Another-123", "clear_master_sso_password": true}))
            .apply(&stored, fake_hash)
            .unwrap_err();
        assert_eq!(err.field, "single_sign_on.clear_master_sso_password");
    }

    #[test]
    fn update_rejects_bad_passwords_and_bodies() {
        for pw in [
            "short",
            " leading-space",
            "trailing-space ",
            "tab\tinside",
            &"x".repeat(129),
        ] {
            let err = update(
                json!({"allowed_login_method": "standard_or_sso", "master_sso_password": pw}),
            )
            .apply(&GlobalSettings::default(), fake_hash)
            .unwrap_err();
            assert_eq!(err.field, "single_sign_on.master_sso_password", "{pw:?}");
        }
        // Other errors are reported before any hashing.
        let mut body = update_json(
            json!({"allowed_login_method": "standard_or_sso", "master_sso_password": "Good-Pass-1"}),
        );
        body["password_policy"]["maximum_age_days"] = 5000.into();
        let u: GlobalSettingsUpdate = serde_json::from_value(body).unwrap();
        assert_eq!(
            u.apply(&GlobalSettings::default(), |_| panic!("no hash"))
                .unwrap_err()
                .field,
            "password_policy.maximum_age_days"
        );

        let mut extra = update_json(json!({"allowed_login_method": "sso_only"}));
        extra["single_sign_on"]["master_sso_password_hash"] = "$argon2id$evil".into();
        assert!(serde_json::from_value::<GlobalSettingsUpdate>(extra).is_err());
        let mut view_back = update_json(
            json!({"allowed_login_method": "sso_only", "master_sso_password_set": true}),
        );
        assert!(serde_json::from_value::<GlobalSettingsUpdate>(view_back.clone()).is_err());
        view_back.as_object_mut().unwrap().remove("password_policy");
        assert!(serde_json::from_value::<GlobalSettingsUpdate>(view_back).is_err());
        assert!(
            serde_json::from_value::<GlobalSettingsUpdate>(
                json!({"single_sign_on": {"allowed_login_method": "sometimes"}})
            )
            .is_err()
        );
    }

    #[test]
    fn secrets_never_leave() {
        let stored = with_password();
        let out = serde_json::to_string(&stored.view()).unwrap();
        assert!(!out.contains("argon2") && !out.contains("Sso-Secret"));
        assert!(out.contains("\"master_sso_password_set\":true"));
        assert!(!format!("{stored:?}").contains("argon2"));
        let u = update(
            json!({"allowed_login_method": "sso_only", "master_sso_password": "Sso-Secret-123"}),
        );
        assert!(!format!("{u:?}").contains("Sso-Secret"));

        let rows = GlobalSettings::default().diff(&stored);
        let text = serde_json::to_string(&rows).unwrap();
        assert!(!text.contains("argon2") && !text.contains("Sso-Secret"));
        let pw = rows
            .iter()
            .find(|r| r.field == "Master SSO password")
            .unwrap();
        assert_eq!(pw.section, "Single Sign-On");
        assert_eq!(
            (pw.old_action.as_deref(), pw.new_action.as_deref()),
            (Some("Not set"), Some("Set"))
        );
        assert_eq!((pw.old_value.as_ref(), pw.new_value.as_ref()), (None, None));

        let rotated = update(json!({"allowed_login_method": "sso_only", "master_sso_password": "Other-Secret-12345"}))
            .apply(&stored, fake_hash)
            .unwrap();
        let rows = stored.diff(&rotated);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].old_action.as_deref(), rows[0].new_action.as_deref()),
            (Some("Set"), Some("Set"))
        );
    }

    #[test]
    fn storage_round_trip() {
        let mut s = with_password();
        s.ip_restrictions
            .exceptions
            .push(IpException::new("10.0.0.0/8", None));
        let json = s.to_storage_json();
        assert_eq!(
            json["single_sign_on"]["master_sso_password_hash"],
            "$argon2id$fake$14"
        );
        assert_eq!(GlobalSettings::from_storage_json(json).unwrap(), s);
        // Older documents missing sections load with defaults.
        let old =
            GlobalSettings::from_storage_json(json!({"do_not_store_customer_ip": true})).unwrap();
        assert!(old.do_not_store_customer_ip);
        assert_eq!(
            old.custom_field_names,
            GlobalSettings::default().custom_field_names
        );
        assert!(GlobalSettings::from_storage_json(json!([1])).is_err());
    }

    #[test]
    fn diff_words_and_coverage() {
        let old = GlobalSettings::default();
        assert!(old.diff(&old).is_empty());
        let mut new = old.clone();
        new.password_policy.maximum_age_days = 90;
        new.do_not_store_customer_ip = true;
        new.custom_field_names.custom_fields[0] = "Employee ID".to_owned();
        let rows = old.diff(&new);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].field, "Maximum password age");
        assert_eq!(
            (rows[0].old_value.as_deref(), rows[0].new_value.as_deref()),
            (Some("No limit"), Some("90 days"))
        );
        assert_eq!(rows[1].field, "Name for Custom Field 1");
        assert_eq!(rows[2].new_action.as_deref(), Some("Selected"));

        let mut full = with_password();
        full.customer_survey_issuance.survey_issued_by = SurveyIssuer::StartingTechnician;
        full.ip_restrictions = crate::ipfilter::IpRestrictions {
            default_access: DefaultAccess::Denied,
            exceptions: vec![IpException::new("10.0.0.0", Some("255.0.0.0"))],
        };
        assert_every_leaf_diffed(
            &full,
            GlobalSettings::to_storage_json,
            |v| GlobalSettings::from_storage_json(v).ok(),
            GlobalSettings::diff,
        );
    }

    #[test]
    fn survey_issuer_is_kept_when_an_update_leaves_it_out() {
        let mut stored = GlobalSettings::default();
        stored.customer_survey_issuance.survey_issued_by = SurveyIssuer::StartingTechnician;
        let mut body = update_json(json!({"allowed_login_method": "standard_or_sso"}));
        body.as_object_mut()
            .unwrap()
            .remove("customer_survey_issuance");
        let kept = serde_json::from_value::<GlobalSettingsUpdate>(body.clone())
            .unwrap()
            .apply(&stored, fake_hash)
            .unwrap();
        assert_eq!(
            kept.customer_survey_issuance.survey_issued_by,
            SurveyIssuer::StartingTechnician
        );
        body["customer_survey_issuance"] = json!({"survey_issued_by": "closing_technician"});
        let changed = serde_json::from_value::<GlobalSettingsUpdate>(body)
            .unwrap()
            .apply(&stored, fake_hash)
            .unwrap();
        assert_eq!(
            changed.customer_survey_issuance.survey_issued_by,
            SurveyIssuer::ClosingTechnician
        );
        assert_eq!(stored.diff(&changed).len(), 1);
    }
}

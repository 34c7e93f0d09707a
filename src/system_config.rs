//! The engine's system configuration (`/config`): keys an administrator stores in the
//! database, which win over the settings file and the environment from the next request on.

use crate::domain::{Invalid, Vendor, check_label};
use crate::settings::{Settings, check_url};

pub const API_USER_CREATE_SCOPE: &str = "API_USER_CREATE_SCOPE";
pub const DEFAULT_USER_VENDOR: &str = "DEFAULT_USER_VENDOR";
pub const WEBHOOK_USER_CREATED: &str = "WEBHOOK_USER_CREATED";
pub const WEBHOOK_USER_FORGOT_PASSWORD: &str = "WEBHOOK_USER_FORGOT_PASSWORD";
pub const APPMIXER_FE_URL: &str = "APPMIXER_FE_URL";
pub const RESET_PASSWORD_FE_URL_SUFFIX: &str = "RESET_PASSWORD_FE_URL_SUFFIX";
pub const FORGOT_PASSWORD_MAIL_SUBJECT: &str = "FORGOT_PASSWORD_MAIL_SUBJECT";
pub const FORGOT_PASSWORD_MAIL_BODY: &str = "FORGOT_PASSWORD_MAIL_BODY";

/// The keys this server reads; any other key is stored and listed as given.
pub const KNOWN: &[&str] = &[
    API_USER_CREATE_SCOPE,
    DEFAULT_USER_VENDOR,
    WEBHOOK_USER_CREATED,
    WEBHOOK_USER_FORGOT_PASSWORD,
    APPMIXER_FE_URL,
    RESET_PASSWORD_FE_URL_SUFFIX,
    FORGOT_PASSWORD_MAIL_SUBJECT,
    FORGOT_PASSWORD_MAIL_BODY,
];

/// Never read or written through `/config`: the token secret stays in the settings or the
/// database's own place.
pub const REFUSED: &[&str] = &["JWTSecret"];

/// The longest key, and the longest value, stored.
pub const KEY_MAX: usize = 128;
pub const VALUE_MAX: usize = 16 * 1024;

/// Checks a key and its value before they are stored; the error names the key.
pub fn check(key: &str, value: &str) -> Result<(), Invalid> {
    if key.is_empty()
        || key.len() > KEY_MAX
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Invalid::field(
            "key",
            format!("\"key\" must be 1 to {KEY_MAX} letters, digits, '_', '-' or '.'"),
        ));
    }
    if REFUSED.iter().any(|r| r.eq_ignore_ascii_case(key)) {
        return Err(Invalid::field(
            "key",
            format!("{key} cannot be read or written through /config"),
        ));
    }
    if value.len() > VALUE_MAX {
        return Err(Invalid::field(
            "value",
            format!("{key}: the value must be at most {VALUE_MAX} bytes"),
        ));
    }
    let bad = |why: String| Err(Invalid::field("value", format!("{key}: {why}")));
    match key {
        API_USER_CREATE_SCOPE => {
            for scope in split_list(value) {
                if let Err(e) = check_label("scope", scope) {
                    return bad(e.message);
                }
            }
        }
        DEFAULT_USER_VENDOR | RESET_PASSWORD_FE_URL_SUFFIX | FORGOT_PASSWORD_MAIL_SUBJECT => {
            if value.chars().any(char::is_control) {
                return bad("must not contain control characters".into());
            }
            if key == DEFAULT_USER_VENDOR
                && !value.is_empty()
                && let Err(e) = Vendor::from_config(value).check("vendor")
            {
                return bad(e.message);
            }
        }
        WEBHOOK_USER_CREATED | WEBHOOK_USER_FORGOT_PASSWORD | APPMIXER_FE_URL => {
            if !value.is_empty()
                && let Err(e) = check_url(value)
            {
                return bad(e);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A comma-separated list, trimmed, empty entries dropped.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// What the server goes by now: the settings, with the stored keys over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    pub api_user_create_scope: Vec<String>,
    pub default_user_vendor: Option<Vendor>,
    pub webhook_user_created: Option<String>,
    pub webhook_user_forgot_password: Option<String>,
    /// Where the reset page is: `APPMIXER_FE_URL` + `/` + `RESET_PASSWORD_FE_URL_SUFFIX`.
    pub reset_page: Option<String>,
    pub mail_subject: String,
    pub mail_body: String,
}

/// The forgot-password mail when no `FORGOT_PASSWORD_MAIL_*` key says otherwise.
pub const DEFAULT_MAIL_SUBJECT: &str = "Reset your password";
pub const DEFAULT_MAIL_BODY: &str = "<p>Someone asked to reset the password of your account. \
If it was you, <a href=\"{{link}}\">choose a new password</a> within the hour \
(or enter the code {{code}}).</p><p>If it was not you, ignore this message.</p>";

impl Effective {
    pub fn new(settings: &Settings, stored: &[(String, String)]) -> Self {
        let get = |key: &str| {
            stored
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        // An empty stored value means "none" for the optional ones (it still overrides).
        let optional = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        Self {
            api_user_create_scope: match get(API_USER_CREATE_SCOPE) {
                Some(v) => split_list(v).map(str::to_owned).collect(),
                None => settings.tenant.api_user_create_scope.clone(),
            },
            default_user_vendor: match get(DEFAULT_USER_VENDOR) {
                Some(v) => (!v.is_empty()).then(|| Vendor::from_config(v)),
                None => settings.tenant.default_user_vendor.clone(),
            },
            webhook_user_created: match get(WEBHOOK_USER_CREATED) {
                Some(v) => optional(v),
                None => settings.webhooks.user_created.clone(),
            },
            webhook_user_forgot_password: match get(WEBHOOK_USER_FORGOT_PASSWORD) {
                Some(v) => optional(v),
                None => settings.webhooks.user_forgot_password.clone(),
            },
            reset_page: get(APPMIXER_FE_URL).and_then(optional).map(|fe| {
                let suffix = get(RESET_PASSWORD_FE_URL_SUFFIX).unwrap_or("reset-password");
                format!(
                    "{}/{}",
                    fe.trim_end_matches('/'),
                    suffix.trim_start_matches('/')
                )
            }),
            mail_subject: get(FORGOT_PASSWORD_MAIL_SUBJECT)
                .and_then(optional)
                .unwrap_or_else(|| DEFAULT_MAIL_SUBJECT.to_owned()),
            mail_body: get(FORGOT_PASSWORD_MAIL_BODY)
                .and_then(optional)
                .unwrap_or_else(|| DEFAULT_MAIL_BODY.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_win_over_the_settings_and_an_empty_one_means_none() {
        let mut settings = Settings::default();
        settings.tenant.default_user_vendor = Some(Vendor::One("file".into()));
        settings.webhooks.user_created = Some("http://file.example/hook".into());
        let e = Effective::new(&settings, &[]);
        assert_eq!(e.default_user_vendor, Some(Vendor::One("file".into())));
        let stored = vec![
            (DEFAULT_USER_VENDOR.to_owned(), "db".to_owned()),
            (WEBHOOK_USER_CREATED.to_owned(), String::new()),
            (API_USER_CREATE_SCOPE.to_owned(), "admin, ops".to_owned()),
        ];
        let e = Effective::new(&settings, &stored);
        assert_eq!(e.default_user_vendor, Some(Vendor::One("db".into())));
        assert_eq!(e.webhook_user_created, None);
        assert_eq!(e.api_user_create_scope, ["admin", "ops"]);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let e = check(WEBHOOK_USER_CREATED, "ftp://x").expect_err("not http");
        assert!(e.message.starts_with("WEBHOOK_USER_CREATED"), "{e}");
        assert!(check("JWTSecret", "x").is_err());
        assert!(check("jwtsecret", "x").is_err());
        assert!(check("bad key", "x").is_err());
        assert!(check(API_USER_CREATE_SCOPE, "admin,\u{202e}x").is_err());
        assert!(check("ANYTHING_ELSE", "any value").is_ok());
        assert!(check(WEBHOOK_USER_CREATED, "").is_ok());
    }
}

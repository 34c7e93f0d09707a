//! Validated values: a handler never sees an unchecked username, email, password or id.
//!
//! Error messages follow Joi's wording, as the real engine (hapi + Joi) answers.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut.
pub const PASSWORD_MAX_BYTES: usize = 72;
pub const PASSWORD_MIN_CHARS: usize = 5;
const NAME_MAX_CHARS: usize = 254;

/// A JSON object body, from which fields are taken one by one.
pub type Object = Map<String, Value>;

/// A value that is not what it must be: the message (Joi's wording) and the field at fault,
/// if one is. The HTTP edge answers it with 400 (`crate::error`), the CLI with exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub field: Option<String>,
}

impl Invalid {
    /// A value of one named field is wrong.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// The request as a whole is wrong (no one field to name).
    pub fn request(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field: None,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

/// A user's vendor: one name or several (the engine's docs: "One or more vendors"), kept and
/// answered exactly as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Vendor {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for Vendor {
    fn from(name: &str) -> Self {
        Vendor::One(name.to_owned())
    }
}

impl Vendor {
    /// A body's `vendor`: `null` (not given), a string, or an array of strings, each a label.
    pub fn parse(field: &str, value: &Value) -> Result<Option<Self>, Invalid> {
        let vendor = match value {
            Value::Null => return Ok(None),
            Value::String(s) => Vendor::One(s.clone()),
            Value::Array(items) => Vendor::Many(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(Invalid::field(
                            field,
                            format!("\"{field}\" must be a string or an array of strings"),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(Invalid::field(
                    field,
                    format!("\"{field}\" must be a string or an array of strings"),
                ));
            }
        };
        vendor.check(field)?;
        Ok(Some(vendor))
    }

    /// Every name a label (not blank, no control or invisible characters).
    pub fn check(&self, field: &str) -> Result<(), Invalid> {
        self.names().try_for_each(|n| check_label(field, n))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&String>, &[String]) = match self {
            Vendor::One(s) => (Some(s), &[]),
            Vendor::Many(v) => (None, v),
        };
        one.into_iter().chain(many).map(String::as_str)
    }

    /// The names joined with commas, for a table.
    pub fn display(&self) -> String {
        self.names().collect::<Vec<_>>().join(",")
    }

    /// A `DEFAULT_USER_VENDOR` value: a JSON array of strings is several names, anything else
    /// is one.
    pub fn from_config(value: &str) -> Self {
        match serde_json::from_str::<Vec<String>>(value) {
            Ok(names) if value.trim_start().starts_with('[') => Vendor::Many(names),
            _ => Vendor::One(value.to_owned()),
        }
    }
}

/// Milliseconds since the epoch as ISO-8601 UTC with milliseconds, as MongoDB dates serialise
/// (`2026-12-02T15:04:05.123Z`).
pub fn iso8601(ms: i64) -> String {
    let (date, (h, m, s)) = civil(ms);
    format!("{date}T{h:02}:{m:02}:{s:02}.{:03}Z", ms.rem_euclid(1000))
}

/// The UTC date (`YYYY-MM-DD`) and time of day of a time in milliseconds since the epoch.
pub fn civil(ms: i64) -> (String, (i64, i64, i64)) {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        (rest / 3600, rest % 3600 / 60, rest % 60),
    )
}

/// A secret string (a password in the settings file, a key): its `Debug` and `Serialize`
/// never show the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// An optional string field: absent or `null` is `None` (Go clients send `null` for what they
/// leave out); present it must be a non-empty string.
pub fn optional_str<'a>(body: &'a Object, field: &str) -> Result<Option<&'a str>, Invalid> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(Invalid::field(
            field,
            format!("\"{field}\" is not allowed to be empty"),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid::field(
            field,
            format!("\"{field}\" must be a string"),
        )),
    }
}

/// A required, non-empty string field.
pub fn required_str<'a>(body: &'a Object, field: &str) -> Result<&'a str, Invalid> {
    optional_str(body, field)?
        .ok_or_else(|| Invalid::field(field, format!("\"{field}\" is required")))
}

/// Code points that show nothing, or change the direction or the lines of the text around
/// them: zero-width spaces and joiners, the byte-order mark, bidi embeddings, overrides and
/// isolates, the line and paragraph separators, variation selectors, Hangul fillers, tags.
/// In a name they make look-alikes of another account (`root` and `ro\u{200B}ot`).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Any stored text (scope entries, plan, vendor): not blank, and nothing that would rewrite
/// an operator's terminal or hide in a listing (control, invisible, bidi characters).
pub fn check_label(field: &str, value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(Invalid::field(
            field,
            format!("\"{field}\" is not allowed to be empty"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::field(
            field,
            format!("\"{field}\" must not contain control characters"),
        ));
    }
    if value.chars().any(is_invisible) {
        return Err(Invalid::field(
            field,
            format!("\"{field}\" must not contain invisible or direction-changing characters"),
        ));
    }
    Ok(())
}

/// A name longer than any stored one can be (a sign-in that names it can match nobody).
pub fn check_name_length(field: &str, value: &str) -> Result<(), Invalid> {
    if value.chars().count() > NAME_MAX_CHARS {
        return Err(Invalid::field(
            field,
            format!(
                "\"{field}\" length must be less than or equal to {NAME_MAX_CHARS} characters long"
            ),
        ));
    }
    Ok(())
}

fn check_name(field: &str, value: &str) -> Result<(), Invalid> {
    if value.trim() != value {
        return Err(Invalid::field(
            field,
            format!("\"{field}\" must not have leading or trailing whitespace"),
        ));
    }
    check_label(field, value)?;
    // Compatibility forms (full-width `ｒｏｏｔ`, ligatures, superscripts) look like the plain
    // letters: refused rather than silently rewritten, since names are matched exactly.
    if !unicode_normalization::is_nfkc(value) {
        return Err(Invalid::field(
            field,
            format!(
                "\"{field}\" must be in Unicode NFKC form (no full-width or other compatibility characters)"
            ),
        ));
    }
    check_name_length(field, value)?;
    Ok(())
}

/// A username: any non-empty text without surrounding whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.is_empty() {
            return Err(Invalid::field(
                "username",
                "\"username\" is not allowed to be empty",
            ));
        }
        check_name("username", value)?;
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of the plain `local@domain.tld` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        check_name("email", value)?;
        if !looks_like_email(value) {
            return Err(Invalid::field("email", "\"email\" must be a valid email"));
        }
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// What emails are compared by: the address in lower case, so `ROOT@example.com` is the
    /// account of `root@example.com` (stored as first given).
    pub fn key_of(email: &str) -> String {
        email.to_lowercase()
    }
}

fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(|c: char| c.is_whitespace() || c == '@')
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// A plain-text password on its way to bcrypt. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    /// A new password: at least 5 characters and at most 72 bytes.
    pub fn parse_new(field: &str, value: &str) -> Result<Self, Invalid> {
        if value.chars().count() < PASSWORD_MIN_CHARS {
            return Err(Invalid::field(
                field,
                format!("\"{field}\" length must be at least {PASSWORD_MIN_CHARS} characters long"),
            ));
        }
        Self::parse_existing(field, value)
    }

    /// A password offered at sign-in: only the bcrypt limit applies (older or imported
    /// passwords may be shorter than today's minimum).
    pub fn parse_existing(field: &str, value: &str) -> Result<Self, Invalid> {
        if value.len() > PASSWORD_MAX_BYTES {
            return Err(Invalid::field(
                field,
                format!(
                    "\"{field}\" must be at most {PASSWORD_MAX_BYTES} bytes long (the bcrypt limit)"
                ),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A user id: 24 lowercase hex characters laid out as a MongoDB ObjectId.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Parses an id; upper-case hex is accepted and kept in lower case.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(Invalid::request(
                "Invalid id: expected 24 hexadecimal characters",
            ))
        }
    }

    /// A fresh ObjectId: 4-byte big-endian seconds, 5 random bytes fixed per process,
    /// 3-byte counter starting at a random value.
    pub fn generate() -> Self {
        static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
        static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
        let process = PROCESS.get_or_init(rand::random);
        let counter = COUNTER
            .get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
            .fetch_add(1, Ordering::Relaxed)
            & 0x00ff_ffff;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as u32;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(process);
        bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_24_lowercase_hex_and_distinct() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.as_str().len(), 24);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            );
        }
        // The first four bytes are the creation time in seconds.
        let secs = u32::from_str_radix(&a.as_str()[..8], 16).expect("hex");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as u32;
        assert!(now.abs_diff(secs) <= 2);
        // Consecutive ids share the process bytes and differ in the counter.
        assert_eq!(a.as_str()[8..18], b.as_str()[8..18]);
    }

    #[test]
    fn ids_parse_only_from_24_hex_characters() {
        assert!(UserId::parse("5c88c7cc04a917256c726c3d").is_ok());
        assert_eq!(
            UserId::parse("5C88C7CC04A917256C726C3D")
                .expect("upper case")
                .as_str(),
            "5c88c7cc04a917256c726c3d"
        );
        assert!(UserId::parse("5c88c7cc04a917256c726c3").is_err());
        assert!(UserId::parse("5c88c7cc04a917256c726c3g").is_err());
        assert!(UserId::parse("../../etc/passwd00000000").is_err());
    }

    #[test]
    fn emails_must_look_like_emails() {
        for ok in ["abc@example.com", "a.b+c@sub.example.co", "x@b-c.io"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "abc",
            "abc@",
            "@example.com",
            "a@localhost",
            "a b@example.com",
            " a@example.com",
            "a@example..com",
            "a@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_bounded_by_characters_and_bcrypt_bytes() {
        assert!(Password::parse_new("password", "abcd").is_err());
        assert!(Password::parse_new("password", "abc321").is_ok());
        assert!(Password::parse_new("password", &"x".repeat(72)).is_ok());
        assert!(Password::parse_new("password", &"x".repeat(73)).is_err());
        // 25 three-byte characters are 75 bytes: over bcrypt's limit though only 25 chars.
        assert!(Password::parse_new("password", &"€".repeat(25)).is_err());
        assert!(
            !format!(
                "{:?}",
                Password::parse_new("password", "sekret-pw").expect("ok")
            )
            .contains("sekret")
        );
    }

    #[test]
    fn usernames_refuse_surrounding_whitespace_and_control_characters() {
        assert!(Username::parse("abc@example.com").is_ok());
        assert!(Username::parse(" abc").is_err());
        assert!(Username::parse("abc\n").is_err());
        assert!(Username::parse("a\u{0}b").is_err());
        assert!(Username::parse("").is_err());
    }

    #[test]
    fn fields_must_be_present_non_empty_strings() {
        let body: Object =
            serde_json::from_str(r#"{"a": "x", "b": "", "c": 5, "d": null}"#).expect("json");
        assert_eq!(required_str(&body, "a").expect("a"), "x");
        let msg = |r: Result<&str, Invalid>| r.expect_err("must fail").to_string();
        assert_eq!(
            msg(required_str(&body, "b")),
            "\"b\" is not allowed to be empty"
        );
        assert_eq!(msg(required_str(&body, "c")), "\"c\" must be a string");
        // `null` is "not given" (the second round's rule for Go clients).
        assert_eq!(msg(required_str(&body, "d")), "\"d\" is required");
        assert_eq!(optional_str(&body, "d").expect("null"), None);
        assert_eq!(msg(required_str(&body, "e")), "\"e\" is required");
    }
}

//! Property tests of everything that reads untrusted text: the domain parsers, timespans,
//! bcrypt-hash recognition, request bodies and tokens. Any input gives a value or a clean 4xx
//! error, never a panic, and what is accepted is what the rules say.

// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::http::StatusCode;
use actix_web::{FromRequest, ResponseError};
use appmixer_auth::auth::token::{MAX_TOKEN_BYTES, TokenService};
use appmixer_auth::body::{JsonObject, MAX_BODY_BYTES};
use appmixer_auth::domain::{Email, PASSWORD_MAX_BYTES, Password, UserId, Username};
use appmixer_auth::error::ApiError;
use appmixer_auth::fixtures::is_bcrypt_hash;
use appmixer_auth::settings::Timespan;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &[u8] = b"a-property-test-secret";
const ID: &str = "5c88c7cc04a917256c726c3d";

/// Enough cases to find the edges, few enough that the binary runs in seconds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A parser's refusal is a 400 naming the problem, never a 5xx, once at the HTTP edge.
fn assert_clean_400(e: &(impl Clone + Into<ApiError>)) {
    let e: ApiError = e.clone().into();
    assert_eq!(e.status_code(), StatusCode::BAD_REQUEST, "{e:?}");
    assert!(!e.to_string().is_empty());
}

/// Text that stresses the parsers: any Unicode, plus the characters the rules are about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t\n\r\u{0}\u{7f}\u{85}\u{a0}\u{2028}a-zA-Z0-9@.\\-_+€😀]{0,80}",
        "[a-z0-9._%+\\-]{1,70}@[a-z0-9\\-]{0,20}(\\.[a-z0-9\\-]{0,10}){0,4}",
        ".{250,260}",
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn usernames_are_accepted_exactly_by_the_rules(s in text()) {
        let expected = !s.is_empty()
            && s.trim() == s
            && !s.chars().any(char::is_control)
            && !s.chars().any(appmixer_auth::domain::is_invisible)
            && unicode_normalization::is_nfkc(&s)
            && s.chars().count() <= 254;
        match Username::parse(&s) {
            Ok(u) => {
                prop_assert!(expected, "accepted {s:?}");
                prop_assert_eq!(u.as_str(), s.as_str());
            }
            Err(e) => {
                prop_assert!(!expected, "refused {s:?}: {e}");
                assert_clean_400(&e);
            }
        }
    }

    #[test]
    fn emails_parse_or_refuse_cleanly_and_keep_what_was_sent(s in text()) {
        match Email::parse(&s) {
            Ok(e) => {
                prop_assert_eq!(e.as_str(), s.as_str());
                let (local, domain) = s.rsplit_once('@').expect("an @");
                prop_assert!(!local.is_empty() && domain.contains('.'));
                prop_assert_eq!(s.trim(), s.as_str());
                prop_assert!(!s.chars().any(char::is_control));
            }
            Err(e) => assert_clean_400(&e),
        }
    }

    #[test]
    fn passwords_are_bounded_by_characters_and_bytes(s in text()) {
        match Password::parse_new("password", &s) {
            Ok(p) => {
                prop_assert!(s.chars().count() >= 5 && s.len() <= PASSWORD_MAX_BYTES);
                prop_assert_eq!(p.expose(), s.as_str());
                prop_assert_eq!(format!("{p:?}"), "Password([redacted])");
            }
            Err(e) => {
                prop_assert!(s.chars().count() < 5 || s.len() > PASSWORD_MAX_BYTES);
                assert_clean_400(&e);
            }
        }
        match Password::parse_existing("password", &s) {
            Ok(_) => prop_assert!(s.len() <= PASSWORD_MAX_BYTES),
            Err(e) => {
                prop_assert!(s.len() > PASSWORD_MAX_BYTES);
                assert_clean_400(&e);
            }
        }
    }

    #[test]
    fn user_ids_are_24_hex_characters_kept_in_lower_case(
        s in prop_oneof![any::<String>(), "[0-9a-fA-FgG]{22,26}", "[0-9a-f]{24}"]
    ) {
        match UserId::parse(&s) {
            Ok(id) => {
                prop_assert_eq!(s.len(), 24);
                prop_assert_eq!(id.as_str(), s.to_ascii_lowercase());
                prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            }
            Err(e) => {
                prop_assert!(s.len() != 24 || !s.bytes().all(|b| b.is_ascii_hexdigit()));
                assert_clean_400(&e);
            }
        }
    }

    #[test]
    fn timespans_parse_or_explain_and_never_overflow(
        s in prop_oneof![
            any::<String>(),
            "[ ]?[0-9]{0,22}[ ]?(s|sec|m|min|h|hr|d|day|days|w|y|years|x|ms|)[ ]?",
            "[+\\-]?[0-9]{1,5}[.,]?[0-9]{0,3}[a-zA-Z]{0,3}",
        ]
    ) {
        match Timespan::parse(&s) {
            Ok(Timespan(secs)) => {
                let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
                let n: u64 = digits.parse().expect("accepted text starts with digits");
                prop_assert!(secs >= n, "{s:?} -> {secs}");
                prop_assert_eq!(secs % n.max(1), 0);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn every_number_with_a_unit_is_that_many_seconds(n in 0u64..=u64::MAX, unit in 0usize..6) {
        let (suffix, per) = [("", 1u64), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)][unit];
        let parsed = Timespan::parse(&format!("{n}{suffix}"));
        match n.checked_mul(per) {
            Some(secs) => prop_assert_eq!(parsed, Ok(Timespan(secs))),
            None => prop_assert!(parsed.is_err()),
        }
    }

    #[test]
    fn bcrypt_hash_recognition_never_panics_and_is_strict(
        s in prop_oneof![
            any::<String>(),
            "\\$2[abxy]\\$[0-9]{2}\\$[./A-Za-z0-9]{53}",
            "\\$2[aby]\\$[0-9]{2}\\$.{53}",
            "\\$.{59}",
        ]
    ) {
        if is_bcrypt_hash(&s) {
            prop_assert_eq!(s.len(), 60);
            prop_assert!(s.is_ascii());
            prop_assert!(["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)));
        }
    }
}

fn sign(header: &str, payload: &str) -> String {
    let head = URL_SAFE_NO_PAD.encode(header);
    let body = URL_SAFE_NO_PAD.encode(payload);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("key");
    mac.update(format!("{head}.{body}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{head}.{body}.{sig}")
}

/// A JSON number, string or other value where the claims expect a timestamp.
fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1e300)),
        Just(Value::from(-1)),
        Just(Value::Null),
        any::<String>().prop_map(Value::from),
        Just(json!([1, 2])),
        Just(json!({})),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
    SwapParts(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let ch = prop_oneof![
        proptest::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into()),
        Just('-'),
        Just('_'),
        Just('.'),
        Just('='),
        Just('+'),
        Just('/'),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<usize>(), ch).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::SwapParts(a, b)),
    ]
}

fn apply(token: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let len = chars.len();
    if len == 0 {
        return String::new();
    }
    match *m {
        Mutation::Replace(i, c) => chars[i % len] = c,
        Mutation::Insert(i, c) => chars.insert(i % (len + 1), c),
        Mutation::Remove(i) => {
            chars.remove(i % len);
        }
        Mutation::Truncate(i) => chars.truncate(i % len),
        Mutation::SwapParts(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            let n = parts.len();
            parts.swap(a % n, b % n);
            return parts.join(".");
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn any_string_is_refused_as_a_token_without_panicking(
        s in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_\\-]{0,40}\\.[A-Za-z0-9_\\-]{0,80}\\.[A-Za-z0-9_\\-]{0,50}",
            "[A-Za-z0-9_\\-.=+/]{0,200}",
        ]
    ) {
        let service = TokenService::new(SECRET, 3600);
        prop_assert!(service.verify(&s).is_err());
    }

    #[test]
    fn a_mutated_valid_token_is_refused_or_still_says_the_same(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let service = TokenService::new(SECRET, 3600);
        let token = service.issue(ID, &["user".into(), "admin".into()]).expect("issue");
        let mut forged = token.clone();
        for m in &mutations {
            forged = apply(&forged, m);
        }
        if let Ok(claims) = service.verify(&forged) {
            // Only a change base64 cannot see (spare bits of the last character) may pass,
            // and then the claims are the original ones.
            prop_assert_eq!(claims.custom.id.as_str(), ID);
            prop_assert_eq!(claims.custom.scope, vec!["user".to_owned(), "admin".to_owned()]);
            prop_assert_eq!(forged.len(), token.len());
        }
    }

    #[test]
    fn correctly_signed_odd_claims_are_refused_or_carry_an_expiry(
        exp in claim_value(),
        iat in claim_value(),
        nbf in claim_value(),
        id in prop_oneof![Just(json!(ID)), any::<String>().prop_map(Value::from), Just(json!(null)), Just(json!(7))],
        scope in prop_oneof![Just(json!(["user"])), Just(json!("user")), Just(json!([1])), Just(json!(null))],
        alg in prop_oneof![Just("HS256"), Just("none"), Just("HS512"), Just("RS256"), Just("hs256")],
        drop_key in 0usize..6,
    ) {
        let service = TokenService::new(SECRET, 3600);
        let mut claims = json!({"id": id, "scope": scope, "exp": exp, "iat": iat, "nbf": nbf});
        let key = ["id", "scope", "exp", "iat", "nbf", "-"][drop_key];
        claims.as_object_mut().unwrap().remove(key);
        let token = sign(&json!({"alg": alg, "typ": "JWT"}).to_string(), &claims.to_string());
        if let Ok(verified) = service.verify(&token) {
            prop_assert_eq!(alg, "HS256");
            prop_assert!(verified.expires_at.is_some());
            prop_assert!(claims.get("exp").is_some_and(Value::is_number));
        }
    }
}

#[test]
fn the_forging_helper_signs_as_the_server_does() {
    // So the odd-claims property above is not vacuous: sane claims signed this way verify.
    let service = TokenService::new(SECRET, 3600);
    let token = sign(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &json!({"id": ID, "scope": ["user"], "exp": 4_000_000_000u64}).to_string(),
    );
    assert_eq!(service.verify(&token).unwrap().custom.id, ID);
}

#[test]
fn a_token_just_over_the_length_limit_is_refused_before_parsing() {
    let service = TokenService::new(SECRET, 3600);
    let long = sign(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &json!({"id": ID, "scope": ["user"], "exp": 4_000_000_000u64, "pad": "x".repeat(MAX_TOKEN_BYTES)})
            .to_string(),
    );
    assert!(long.len() > MAX_TOKEN_BYTES);
    assert!(service.verify(&long).is_err());
}

/// Reads `bytes` as a request body with this content type, through the real extractor.
fn read_body(
    sys: &actix_web::rt::SystemRunner,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> Result<JsonObject, ApiError> {
    let mut req = actix_web::test::TestRequest::post().uri("/user");
    if let Some(ct) = content_type {
        req = req.insert_header(("content-type", ct));
    }
    let (req, mut payload) = req.set_payload(bytes).to_http_parts();
    sys.block_on(JsonObject::from_request(&req, &mut payload))
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<String>().prop_map(String::into_bytes),
        "[{}\\[\\]\":,0-9a-z \\\\ntrue]{0,120}".prop_map(String::into_bytes),
        "[a-z%=&+0-9]{0,80}".prop_map(String::into_bytes),
        (0usize..40).prop_map(|depth| format!(
            "{}{}",
            "{\"a\":".repeat(depth * 5),
            "}".repeat(depth * 5)
        )
        .into_bytes()),
        Just(vec![b'['; 10_000]),
    ]
}

#[test]
fn any_body_is_an_object_or_a_clean_4xx() {
    let sys = actix_web::rt::System::new();
    let content_types = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("application/vnd.api+json".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        "[ -~]{0,30}".prop_map(Some),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(config(1000));
    runner
        .run(&(content_types, body_bytes()), |(ct, bytes)| {
            match read_body(&sys, ct.as_deref(), bytes) {
                Ok(JsonObject(map)) => prop_assert!(map.len() <= MAX_BODY_BYTES),
                Err(e) => {
                    let status = e.status_code();
                    prop_assert!([400, 413, 415].contains(&status.as_u16()), "{status} {e:?}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_body_over_the_limit_is_413_not_read_whole() {
    let sys = actix_web::rt::System::new();
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let e = read_body(&sys, Some("application/json"), big).unwrap_err();
    assert_eq!(e.status_code(), StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly at the limit the body is read.
    let fits = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES - 8)).into_bytes();
    assert_eq!(fits.len(), MAX_BODY_BYTES);
    assert!(read_body(&sys, None, fits).is_ok());
}

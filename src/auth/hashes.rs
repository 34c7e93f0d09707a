//! The password hashes this server checks: its own bcrypt, and the PHC strings of the systems
//! users move in from (argon2id/argon2i, scrypt, PBKDF2-SHA256/SHA512). A hash is checked
//! before it is stored, so none can make one sign-in cost more than a bounded amount of memory
//! and time; after a sign-in that matched a foreign or cheaper hash, the caller replaces it
//! with bcrypt at the configured cost ([`upgrade_from`]).
//!
//! In the PHC strings of scrypt and PBKDF2 the salt and hash fields are the standard base64,
//! unpadded, of the raw bytes (as passlib and argon2-cffi write them); they are decoded here
//! rather than handed to the crates' own PHC readers, some of which take the salt's text itself
//! as the salt.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Sha256, Sha512};

/// The most memory one check may take (argon2 `m`, scrypt `128·r·2^ln`): 64 MiB.
pub const MAX_MEMORY_BYTES: u64 = 64 << 20;
/// argon2 passes (`t`) and lanes (`p`), scrypt parallelism (`p`): at most.
pub const MAX_ARGON2_PASSES: u32 = 10;
pub const MAX_LANES: u32 = 8;
/// PBKDF2 iterations at most (about a second of SHA-512 on one core).
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// bcrypt costs an imported hash may have (31 would take days). This server's own hashes, at
/// `auth.bcrypt_cost`, are checked whatever their cost.
pub const MAX_BCRYPT_COST: u32 = 18;

/// What kind of hash a stored one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bcrypt {
        cost: u32,
    },
    Argon2,
    Scrypt,
    Pbkdf2Sha256,
    Pbkdf2Sha512,
    /// Firebase's modified scrypt, with the project's parameters in the string.
    FirebaseScrypt,
    /// [`UNUSABLE`]: no password signs in (a user imported without one sets it through
    /// forgot-password).
    Unusable,
}

/// The stored hash of a user who has no password yet.
pub const UNUSABLE: &str = "$unusable$";

impl Scheme {
    /// The name in metrics (`appmixer_auth_password_rehashes_total{from}`).
    pub fn label(self) -> &'static str {
        match self {
            Scheme::Bcrypt { .. } => "bcrypt",
            Scheme::Argon2 => "argon2",
            Scheme::Scrypt => "scrypt",
            Scheme::Pbkdf2Sha256 => "pbkdf2-sha256",
            Scheme::Pbkdf2Sha512 => "pbkdf2-sha512",
            Scheme::FirebaseScrypt => "firebase-scrypt",
            Scheme::Unusable => "unusable",
        }
    }
}

/// The scheme of a hash whose form and parameters are fine to store and check, or why not.
pub fn check(hash: &str) -> Result<Scheme, String> {
    if hash.len() > 1024 {
        return Err("too long to be a password hash".into());
    }
    if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        let cost = bcrypt_cost(hash).ok_or("not a bcrypt hash ($2b$NN$ and 53 characters)")?;
        if !(4..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(format!(
                "bcrypt cost {cost} is outside 4 to {MAX_BCRYPT_COST}"
            ));
        }
        return Ok(Scheme::Bcrypt { cost });
    }
    if hash.starts_with("$argon2id$") || hash.starts_with("$argon2i$") {
        check_argon2(hash)?;
        return Ok(Scheme::Argon2);
    }
    if hash.starts_with("$argon2d$") {
        return Err("argon2d is not accepted for passwords (use argon2id or argon2i)".into());
    }
    if hash.starts_with("$scrypt$") {
        scrypt_parts(hash)?;
        return Ok(Scheme::Scrypt);
    }
    if hash.starts_with("$pbkdf2-sha256$") {
        pbkdf2_parts(hash, "pbkdf2-sha256")?;
        return Ok(Scheme::Pbkdf2Sha256);
    }
    if hash == UNUSABLE {
        return Ok(Scheme::Unusable);
    }
    if hash.starts_with("$firebase-scrypt$") {
        firebase_parts(hash)?;
        return Ok(Scheme::FirebaseScrypt);
    }
    if hash.starts_with("$pbkdf2-sha512$") {
        pbkdf2_parts(hash, "pbkdf2-sha512")?;
        return Ok(Scheme::Pbkdf2Sha512);
    }
    Err("not a hash this server reads: bcrypt ($2a$, $2b$, $2y$), or a PHC string of argon2id, argon2i, scrypt, pbkdf2-sha256 or pbkdf2-sha512".into())
}

/// Whether `password` matches `hash`; false for a wrong password and for any foreign hash
/// [`check`] refuses (so one put in the database by other means cannot cost more either).
/// bcrypt is checked at any cost: this server's own `auth.bcrypt_cost` may be above the
/// import limit.
pub fn verify(password: &str, hash: &str) -> bool {
    if bcrypt_cost(hash).is_some() && hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    match check(hash) {
        Ok(Scheme::Bcrypt { .. }) => bcrypt::verify(password, hash).unwrap_or(false),
        Ok(Scheme::Argon2) => verify_argon2(password, hash),
        Ok(Scheme::Scrypt) => verify_scrypt(password, hash),
        Ok(Scheme::Pbkdf2Sha256 | Scheme::Pbkdf2Sha512) => verify_pbkdf2(password, hash),
        Ok(Scheme::FirebaseScrypt) => verify_firebase(password, hash),
        Ok(Scheme::Unusable) => false,
        Err(_) => {
            log::warn!("a stored password hash could not be read; sign-in refused");
            false
        }
    }
}

/// After a sign-in matched `hash`: the scheme to count when it should be replaced by bcrypt at
/// `cost` (a foreign hash, or bcrypt of a lower cost), else `None`.
pub fn upgrade_from(hash: &str, cost: u32) -> Option<Scheme> {
    match check(hash).ok()? {
        Scheme::Bcrypt { cost: have } if have >= cost => None,
        Scheme::Unusable => None,
        scheme => Some(scheme),
    }
}

fn bcrypt_cost(h: &str) -> Option<u32> {
    let b = h.as_bytes();
    let form = h.len() == 60
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && h[7..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/');
    form.then(|| h[4..6].parse().ok()).flatten()
}

/// Standard base64 of raw bytes, unpadded as the PHC format writes it (padding tolerated).
fn b64(field: &str, what: &str) -> Result<Vec<u8>, String> {
    STANDARD_NO_PAD
        .decode(field)
        .or_else(|_| STANDARD.decode(field))
        .map_err(|_| format!("the {what} is not base64"))
}

/// `k=v,k=v` parameters.
fn params(text: &str) -> Result<Vec<(&str, u64)>, String> {
    text.split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("parameter `{kv}` is not key=value"))?;
            let v = v
                .parse::<u64>()
                .map_err(|_| format!("parameter `{k}` is not a whole number"))?;
            Ok((k, v))
        })
        .collect()
}

fn param(list: &[(&str, u64)], key: &str) -> Result<u64, String> {
    list.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("parameter `{key}` is missing"))
}

fn check_argon2(hash: &str) -> Result<(), String> {
    let parsed =
        argon2::PasswordHash::new(hash).map_err(|e| format!("not a readable argon2 hash: {e}"))?;
    let get = |k: &str| parsed.params.get_decimal(k);
    let m = get("m").ok_or("argon2 memory cost `m` is missing")?;
    let t = get("t").ok_or("argon2 passes `t` are missing")?;
    let p = get("p").ok_or("argon2 lanes `p` are missing")?;
    if u64::from(m) * 1024 > MAX_MEMORY_BYTES {
        return Err(format!(
            "argon2 memory cost m={m} KiB is over the limit of {} KiB",
            MAX_MEMORY_BYTES / 1024
        ));
    }
    if t == 0 || t > MAX_ARGON2_PASSES {
        return Err(format!(
            "argon2 passes t={t} are outside 1 to {MAX_ARGON2_PASSES}"
        ));
    }
    if p == 0 || p > MAX_LANES {
        return Err(format!("argon2 lanes p={p} are outside 1 to {MAX_LANES}"));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the argon2 hash has no salt or no hash".into());
    }
    Ok(())
}

fn verify_argon2(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier;
    let Ok(parsed) = argon2::PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// `$scrypt$ln=…,r=…,p=…$SALT$HASH`: the parameters, salt and hash.
fn scrypt_parts(hash: &str) -> Result<(scrypt::Params, Vec<u8>, Vec<u8>), String> {
    let fields: Vec<&str> = hash.split('$').collect();
    let [_, "scrypt", p, salt, out] = fields.as_slice() else {
        return Err("not $scrypt$ln=…,r=…,p=…$SALT$HASH".into());
    };
    let list = params(p)?;
    let (ln, r, par) = (param(&list, "ln")?, param(&list, "r")?, param(&list, "p")?);
    if ln == 0 || ln > 24 || r == 0 || r > 64 {
        return Err(format!("scrypt parameters ln={ln}, r={r} are out of range"));
    }
    let memory = 128u64 * r * (1u64 << ln);
    if memory > MAX_MEMORY_BYTES {
        return Err(format!(
            "scrypt memory 128·r·2^ln = {} MiB is over the limit of {} MiB",
            memory >> 20,
            MAX_MEMORY_BYTES >> 20
        ));
    }
    if par == 0 || par > u64::from(MAX_LANES) {
        return Err(format!(
            "scrypt parallelism p={par} is outside 1 to {MAX_LANES}"
        ));
    }
    let salt = b64(salt, "salt")?;
    let out = b64(out, "hash")?;
    if !(16..=64).contains(&out.len()) {
        return Err(format!(
            "the scrypt hash is {} bytes, not 16 to 64",
            out.len()
        ));
    }
    let params = scrypt::Params::new(ln as u8, r as u32, par as u32, out.len())
        .map_err(|e| format!("scrypt parameters: {e}"))?;
    Ok((params, salt, out))
}

fn verify_scrypt(password: &str, hash: &str) -> bool {
    let Ok((params, salt, expected)) = scrypt_parts(hash) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut out).is_ok() && same(&out, &expected)
}

/// `$pbkdf2-sha256$i=…,l=…$SALT$HASH` (also `$pbkdf2-sha512$`): iterations, salt and hash.
fn pbkdf2_parts(hash: &str, id: &str) -> Result<(u32, Vec<u8>, Vec<u8>), String> {
    let fields: Vec<&str> = hash.split('$').collect();
    let [_, name, p, salt, out] = fields.as_slice() else {
        return Err(format!("not ${id}$i=…,l=…$SALT$HASH"));
    };
    if *name != id {
        return Err(format!("not ${id}$"));
    }
    let list = params(p)?;
    let i = param(&list, "i")?;
    if i == 0 || i > u64::from(MAX_PBKDF2_ITERATIONS) {
        return Err(format!(
            "{id} iterations i={i} are outside 1 to {MAX_PBKDF2_ITERATIONS}"
        ));
    }
    let salt = b64(salt, "salt")?;
    let out = b64(out, "hash")?;
    if let Ok(l) = param(&list, "l")
        && l != out.len() as u64
    {
        return Err(format!("{id}: l={l} but the hash is {} bytes", out.len()));
    }
    if !(16..=64).contains(&out.len()) {
        return Err(format!(
            "the {id} hash is {} bytes, not 16 to 64",
            out.len()
        ));
    }
    Ok((i as u32, salt, out))
}

fn verify_pbkdf2(password: &str, hash: &str) -> bool {
    let sha512 = hash.starts_with("$pbkdf2-sha512$");
    let id = if sha512 {
        "pbkdf2-sha512"
    } else {
        "pbkdf2-sha256"
    };
    let Ok((rounds, salt, expected)) = pbkdf2_parts(hash, id) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if sha512 {
        pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, rounds, &mut out);
    } else {
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, rounds, &mut out);
    }
    same(&out, &expected)
}

/// A Firebase user's hash with its project's parameters, as this server stores it:
/// `$firebase-scrypt$r=ROUNDS,m=MEM_COST$SALT$SALT_SEPARATOR$SIGNER_KEY$HASH` (standard base64,
/// unpadded). `users import --from firebase` writes it from `firebase auth:export` and the
/// project's hash parameters.
pub fn firebase_hash(
    rounds: u32,
    mem_cost: u32,
    salt: &[u8],
    separator: &[u8],
    signer_key: &[u8],
    hash: &[u8],
) -> String {
    let e = |b: &[u8]| STANDARD_NO_PAD.encode(b);
    format!(
        "$firebase-scrypt$r={rounds},m={mem_cost}${}${}${}${}",
        e(salt),
        e(separator),
        e(signer_key),
        e(hash)
    )
}

struct Firebase {
    params: scrypt::Params,
    /// The user's salt, then the project's salt separator.
    salt: Vec<u8>,
    signer_key: Vec<u8>,
    hash: Vec<u8>,
}

fn firebase_parts(hash: &str) -> Result<Firebase, String> {
    let fields: Vec<&str> = hash.split('$').collect();
    let [_, "firebase-scrypt", p, salt, sep, key, out] = fields.as_slice() else {
        return Err("not $firebase-scrypt$r=…,m=…$SALT$SEPARATOR$SIGNER_KEY$HASH".into());
    };
    let list = params(p)?;
    let (r, m) = (param(&list, "r")?, param(&list, "m")?);
    if r == 0 || r > 64 || m == 0 || m > 24 {
        return Err(format!(
            "firebase scrypt rounds={r}, mem_cost={m} are out of range"
        ));
    }
    let memory = 128u64 * r * (1u64 << m);
    if memory > MAX_MEMORY_BYTES {
        return Err(format!(
            "firebase scrypt memory 128·rounds·2^mem_cost = {} MiB is over the limit of {} MiB",
            memory >> 20,
            MAX_MEMORY_BYTES >> 20
        ));
    }
    let mut salt = b64(salt, "salt")?;
    salt.extend(b64(sep, "salt separator")?);
    let signer_key = b64(key, "signer key")?;
    let hash = b64(out, "hash")?;
    if signer_key.is_empty() || signer_key.len() > 128 || hash.len() != signer_key.len() {
        return Err("the firebase hash and signer key must be as long as each other".into());
    }
    let params = scrypt::Params::new(m as u8, r as u32, 1, 64)
        .map_err(|e| format!("firebase scrypt parameters: {e}"))?;
    Ok(Firebase {
        params,
        salt,
        signer_key,
        hash,
    })
}

/// Firebase's scrypt: a 64-byte scrypt key of the password (salt and separator), whose first
/// 32 bytes encrypt the project's signer key with AES-256-CTR from a zero counter.
fn verify_firebase(password: &str, hash: &str) -> bool {
    use aes::cipher::{KeyIvInit, StreamCipher};
    let Ok(f) = firebase_parts(hash) else {
        return false;
    };
    let mut derived = [0u8; 64];
    if scrypt::scrypt(password.as_bytes(), &f.salt, &f.params, &mut derived).is_err() {
        return false;
    }
    let mut block = f.signer_key.clone();
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new((&derived[..32]).into(), &[0u8; 16].into());
    cipher.apply_keystream(&mut block);
    same(&block, &f.hash)
}

/// Compares in time that depends only on the length.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_that_would_cost_too_much_are_refused_naming_the_parameter() {
        let salt = STANDARD_NO_PAD.encode([7u8; 16]);
        let out = STANDARD_NO_PAD.encode([9u8; 32]);
        let big_argon = format!("$argon2id$v=19$m=4194304,t=3,p=4${salt}${out}");
        assert!(check(&big_argon).unwrap_err().contains("m=4194304"));
        let big_scrypt = format!("$scrypt$ln=20,r=8,p=1${salt}${out}");
        assert!(check(&big_scrypt).unwrap_err().contains("MiB"));
        let many = format!("$pbkdf2-sha256$i=100000000,l=32${salt}${out}");
        assert!(check(&many).unwrap_err().contains("i=100000000"));
        assert!(check("$2b$31$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234").is_err());
        assert!(check("plain text").is_err());
        assert!(!verify("x", &big_argon), "refused hashes never match");
    }

    /// Firebase's own published example (firebase/scrypt's README).
    #[test]
    fn firebase_scrypt_matches_firebases_published_vector() {
        let d = |s: &str| STANDARD.decode(s).unwrap();
        let hash = firebase_hash(
            8,
            14,
            &d("42xEC+ixf3L2lw=="),
            &d("Bw=="),
            &d(
                "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
            ),
            &d(
                "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==",
            ),
        );
        assert_eq!(check(&hash), Ok(Scheme::FirebaseScrypt));
        assert!(verify("user1password", &hash));
        assert!(!verify("user1passwore", &hash));
        assert_eq!(upgrade_from(&hash, 10), Some(Scheme::FirebaseScrypt));
    }

    #[test]
    fn the_crates_own_hashes_verify_and_upgrade() {
        use argon2::PasswordHasher as _;
        let salt = argon2::password_hash::SaltString::encode_b64(&[3u8; 16]).unwrap();
        let params = argon2::Params::new(8 * 1024, 2, 1, None).unwrap();
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(b"pass-word", &salt)
                .unwrap()
                .to_string();
        assert_eq!(check(&argon), Ok(Scheme::Argon2));
        assert!(verify("pass-word", &argon));
        assert!(!verify("pass-wore", &argon));
        assert_eq!(upgrade_from(&argon, 10), Some(Scheme::Argon2));

        let bc = bcrypt::hash("pass-word", 4).unwrap();
        assert_eq!(upgrade_from(&bc, 10), Some(Scheme::Bcrypt { cost: 4 }));
        assert_eq!(upgrade_from(&bc, 4), None);
    }
}

//! The credential module: every secret at rest goes through here.
//!
//! Stored form: `enc:v1:<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>`, AES-256-GCM with a
//! random 96-bit nonce. The data key is HKDF-SHA256(`ENCRYPTION_KEY`) and `kid` is a short
//! fingerprint of it, so a value names the key that sealed it. The associated data binds a
//! value to its purpose and owner: a ciphertext copied to another row or user fails to open.
//! `ENCRYPTION_KEY_PREVIOUS` opens values sealed before a rotation; callers re-seal them
//! (`Opened::stale`). The original worker's two formats (no prefix) are still readable.

use std::cell::RefCell;
use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const HKDF_SALT: &[u8] = b"integrations-service/v1";
const INFO_DATA_KEY: &[u8] = b"credential-encryption";
const INFO_KEY_ID: &[u8] = b"credential-key-id";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// PBKDF2 parameters of the original `API_KEYS` Durable Object (PBKDF2-derived keys).
const LEGACY_DO_SALT: &[u8] = b"agent-ops-salt";
const LEGACY_DO_ITERATIONS: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// `ENCRYPTION_KEY` is not set.
    NotConfigured,
    /// `ENCRYPTION_KEY` carries fewer than 256 bits.
    WeakKey,
    /// No key we hold opens this value (wrong key, wrong owner/purpose, or tampered).
    Undecryptable,
}

/// Which pre-versioned format a stored value may be in, depending on where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// D1 columns of the original worker : raw padded key, no KDF.
    D1Column,
    /// Values of the original `API_KEYS` DO : PBKDF2-derived key.
    ApiKeysDo,
}

/// Associated data: what a value is for and whom it belongs to.
pub struct Aad<'a> {
    pub purpose: &'a str,
    pub owner: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        // The purpose is a fixed identifier without newlines; the owner comes last,
        // so the encoding is unambiguous.
        format!("{}\n{}", self.purpose, self.owner).into_bytes()
    }
}

/// The outcome of opening a stored value.
#[derive(Debug)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    /// Sealed with a previous key or a legacy format: re-seal it with [`Keyring::seal`].
    pub stale: bool,
}

struct DataKey {
    kid: String,
    cipher: Aes256Gcm,
    secret: String,
}

impl DataKey {
    fn derive(secret: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_bytes());
        let mut key = [0u8; 32];
        let mut id = [0u8; 4];
        // Both lengths are far below HKDF's 255·32-byte limit.
        hk.expand(INFO_DATA_KEY, &mut key).expect("hkdf length");
        hk.expand(INFO_KEY_ID, &mut id).expect("hkdf length");
        DataKey { kid: hex(&id), cipher: Aes256Gcm::new(&key.into()), secret: secret.to_string() }
    }
}

/// The current key and, during a rotation, the previous one.
pub struct Keyring {
    current: DataKey,
    previous: Option<DataKey>,
    /// `LEGACY_CIPHERTEXT=reject`: the original worker's formats are no longer read.
    reject_legacy: bool,
}

/// Whether a root key carries at least 256 bits: 64+ hex characters, or base64 (standard or
/// URL-safe, padded or not) of at least 32 bytes.
pub fn strong_key(key: &str) -> bool {
    let k = key.trim();
    // Hex carries 4 bits a character: a hex-looking key needs 64 of them.
    if k.bytes().all(|b| b.is_ascii_hexdigit()) {
        return k.len() >= 64;
    }
    use base64::alphabet::{STANDARD as STD_ALPHABET, URL_SAFE};
    use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
    // Lenient: hand-made keys may have stray trailing bits or padding.
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if k.contains(['+', '/']) { &STD_ALPHABET } else { &URL_SAFE };
    GeneralPurpose::new(alphabet, config).decode(k).is_ok_and(|b| b.len() >= 32)
}

impl Keyring {
    /// Builds the keyring from the configured secrets; an empty current key is "not configured".
    pub fn new(current: Option<&str>, previous: Option<&str>) -> Result<Self, CryptoError> {
        let current = current.filter(|s| !s.is_empty()).ok_or(CryptoError::NotConfigured)?;
        Ok(Keyring {
            current: DataKey::derive(current),
            previous: previous.filter(|s| !s.is_empty() && *s != current).map(DataKey::derive),
            reject_legacy: false,
        })
    }

    /// The keyring of a deployment: the current key must be strong; legacy formats can be
    /// turned off once every value has been re-sealed.
    pub fn configured(current: Option<&str>, previous: Option<&str>, reject_legacy: bool) -> Result<Self, CryptoError> {
        let mut keys = Keyring::new(current, previous)?;
        if !current.is_some_and(strong_key) {
            return Err(CryptoError::WeakKey);
        }
        keys.reject_legacy = reject_legacy;
        Ok(keys)
    }

    /// The key id new values are sealed under.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// Seals `plaintext` under the current key.
    pub fn seal(&self, aad: &Aad, plaintext: &[u8]) -> String {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let aad = aad.bytes();
        let ct = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), Payload { msg: plaintext, aad: &aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}:{}", self.current.kid, URL_SAFE_NO_PAD.encode(out))
    }

    /// Seals a UTF-8 string.
    pub fn seal_str(&self, aad: &Aad, plaintext: &str) -> String {
        self.seal(aad, plaintext.as_bytes())
    }

    /// Opens a stored value in the current format, or (for values without our prefix)
    /// in the legacy format of the place it was read from.
    pub fn open(&self, aad: &Aad, stored: &str, legacy: Legacy) -> Result<Opened, CryptoError> {
        if let Some(rest) = stored.strip_prefix(PREFIX) {
            let (kid, body) = rest.split_once(':').ok_or(CryptoError::Undecryptable)?;
            let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Undecryptable)?;
            let key = std::iter::once(&self.current)
                .chain(self.previous.as_ref())
                .find(|k| k.kid == kid)
                .ok_or(CryptoError::Undecryptable)?;
            let plaintext = open_raw(&key.cipher, &raw, &aad.bytes())?;
            return Ok(Opened { plaintext, stale: key.kid != self.current.kid });
        }
        if self.reject_legacy {
            return Err(CryptoError::Undecryptable);
        }
        let raw = STANDARD.decode(stored.trim()).map_err(|_| CryptoError::Undecryptable)?;
        for key in std::iter::once(&self.current).chain(self.previous.as_ref()) {
            let cipher = match legacy {
                Legacy::D1Column => match legacy_d1_key(&key.secret) {
                    Some(k) => Aes256Gcm::new(&k.into()),
                    None => continue,
                },
                Legacy::ApiKeysDo => Aes256Gcm::new(&legacy_do_key(&key.secret).into()),
            };
            if let Ok(plaintext) = open_raw(&cipher, &raw, &[]) {
                return Ok(Opened { plaintext, stale: true });
            }
        }
        Err(CryptoError::Undecryptable)
    }

    /// Opens a value that must be UTF-8 text.
    pub fn open_str(&self, aad: &Aad, stored: &str, legacy: Legacy) -> Result<(String, bool), CryptoError> {
        let opened = self.open(aad, stored, legacy)?;
        let text = String::from_utf8(opened.plaintext).map_err(|_| CryptoError::Undecryptable)?;
        Ok((text, opened.stale))
    }
}

fn open_raw(cipher: &Aes256Gcm, raw: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Undecryptable);
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| CryptoError::Undecryptable)
}

/// The original worker's D1 columns: the secret as UTF-16 code units, right-padded with `'0'` to 32 units and cut
/// to 32, then UTF-8 encoded. Only an ASCII prefix yields the 32 bytes AES-256 needs.
fn legacy_d1_key(secret: &str) -> Option<[u8; 32]> {
    let mut units: Vec<u16> = secret.encode_utf16().take(32).collect();
    units.resize(32, u16::from(b'0'));
    let text = String::from_utf16(&units).ok()?;
    text.as_bytes().try_into().ok()
}

thread_local! {
    // 100k PBKDF2 iterations cost tens of milliseconds in Wasm: derive once per isolate.
    static LEGACY_DO_KEYS: RefCell<HashMap<String, [u8; 32]>> = RefCell::new(HashMap::new());
}

/// The original worker's `API_KEYS` values: PBKDF2-HMAC-SHA256(secret, "agent-ops-salt", 100 000 iterations).
fn legacy_do_key(secret: &str) -> [u8; 32] {
    LEGACY_DO_KEYS.with(|cache| {
        *cache.borrow_mut().entry(secret.to_string()).or_insert_with(|| {
            let mut key = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), LEGACY_DO_SALT, LEGACY_DO_ITERATIONS, &mut key);
            key
        })
    })
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lowercase hex SHA-256 (how API tokens and session tokens are stored).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies a hex HMAC-SHA256 signature over raw bytes, in constant time.
pub fn verify_hmac_sha256_hex(key: &[u8], msg: &[u8], signature_hex: &str) -> bool {
    let expected = hex(&hmac_sha256(key, msg));
    constant_time_eq(expected.as_bytes(), signature_hex.to_ascii_lowercase().as_bytes())
}

/// Cryptographically random bytes (`crypto.getRandomValues` on Workers).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the platform CSPRNG is available");
    buf
}

/// Random URL-safe token text (base64url of `N` random bytes).
pub fn random_token<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod strength_tests {
    use super::strong_key;

    #[test]
    fn keys_must_carry_256_bits() {
        assert!(strong_key(&"ab".repeat(32)), "64 hex characters");
        assert!(strong_key("tZ2nV8xq1Jc0m5pLw7Rk9Yb3Hs6Df4Ga2Qe8Tu1Io0A"), "43 base64url characters");
        assert!(strong_key("q1w2e3r4t5y6u7i8o9p0+/asdfghjklzxcvbnmQWERT="), "openssl rand -base64 32");
        assert!(!strong_key("test-encryption-key-0123456789abcdef"), "36 characters of text");
        assert!(!strong_key(&"ab".repeat(31)));
        assert!(!strong_key("tZ2nV8xq1Jc0m5pLw7Rk9Yb3Hs6Df4Ga2Qe8Tu1I"));
        assert!(!strong_key("not base64 at all, but long enough to pass a length check!!"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const OWNER: Aad = Aad { purpose: "oauth:github", owner: "user-1" };

    fn ring(current: &str, previous: Option<&str>) -> Keyring {
        Keyring::new(Some(current), previous).unwrap()
    }

    #[test]
    fn round_trip_and_format() {
        let k = ring("correct horse battery staple", None);
        let sealed = k.seal_str(&OWNER, "gho_secret");
        assert!(sealed.starts_with(&format!("enc:v1:{}:", k.current_kid())));
        assert!(!sealed.contains("gho_secret"));
        let (text, stale) = k.open_str(&OWNER, &sealed, Legacy::D1Column).unwrap();
        assert_eq!((text.as_str(), stale), ("gho_secret", false));
        // Fresh nonce every time.
        assert_ne!(sealed, k.seal_str(&OWNER, "gho_secret"));
    }

    #[test]
    fn missing_key_is_not_configured() {
        assert_eq!(Keyring::new(None, None).err(), Some(CryptoError::NotConfigured));
        assert_eq!(Keyring::new(Some(""), None).err(), Some(CryptoError::NotConfigured));
    }

    #[test]
    fn wrong_owner_purpose_key_or_tamper_fail() {
        let k = ring("k1", None);
        let sealed = k.seal_str(&OWNER, "secret");
        let other_owner = Aad { purpose: "oauth:github", owner: "user-2" };
        let other_purpose = Aad { purpose: "oauth:google", owner: "user-1" };
        assert_eq!(k.open(&other_owner, &sealed, Legacy::D1Column).err(), Some(CryptoError::Undecryptable));
        assert_eq!(k.open(&other_purpose, &sealed, Legacy::D1Column).err(), Some(CryptoError::Undecryptable));
        assert!(ring("k2", None).open(&OWNER, &sealed, Legacy::D1Column).is_err());
        // Flip one ciphertext character.
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(k.open(&OWNER, &tampered, Legacy::D1Column).is_err());
        assert!(k.open(&OWNER, "enc:v1:nokid", Legacy::D1Column).is_err());
        assert!(k.open(&OWNER, "not base64 !", Legacy::D1Column).is_err());
        assert!(k.open(&OWNER, "", Legacy::ApiKeysDo).is_err());
    }

    #[test]
    fn rotation_opens_old_values_and_marks_them_stale() {
        let old = ring("old-key", None);
        let sealed = old.seal_str(&OWNER, "v");
        let rotated = ring("new-key", Some("old-key"));
        let (text, stale) = rotated.open_str(&OWNER, &sealed, Legacy::D1Column).unwrap();
        assert_eq!((text.as_str(), stale), ("v", true));
        let resealed = rotated.seal_str(&OWNER, &text);
        assert!(!rotated.open(&OWNER, &resealed, Legacy::D1Column).unwrap().stale);
        // After the previous key is dropped, only re-sealed values open.
        let after = ring("new-key", None);
        assert!(after.open(&OWNER, &sealed, Legacy::D1Column).is_err());
        assert!(after.open(&OWNER, &resealed, Legacy::D1Column).is_ok());
    }

    /// Ciphertexts produced by Node's WebCrypto (scripts/gen-legacy-fixtures.mjs), an
    /// implementation independent of ours, in the original worker's two formats.
    #[test]
    fn legacy_formats_from_webcrypto() {
        let fixtures: Value = serde_json::from_str(include_str!("../tests/fixtures/legacy-ciphertexts.json")).unwrap();
        let cases = fixtures["cases"].as_array().unwrap();
        assert!(cases.len() >= 4);
        for case in cases {
            let key = case["encryptionKey"].as_str().unwrap();
            let legacy = match case["format"].as_str().unwrap() {
                "d1" => Legacy::D1Column,
                "api-keys-do" => Legacy::ApiKeysDo,
                other => panic!("unknown format {other}"),
            };
            let aad = Aad { purpose: "legacy", owner: "anyone" };
            let (text, stale) = ring(key, None).open_str(&aad, case["ciphertext"].as_str().unwrap(), legacy).unwrap();
            assert_eq!(text, case["plaintext"].as_str().unwrap(), "{case}");
            assert!(stale, "legacy values are always re-sealed");
            // The legacy value also opens when its key is the previous one (rotation).
            let rotated = ring("a-brand-new-key", Some(key));
            assert!(rotated.open(&aad, case["ciphertext"].as_str().unwrap(), legacy).is_ok());
            // The other legacy format must not open it.
            let other = if legacy == Legacy::D1Column { Legacy::ApiKeysDo } else { Legacy::D1Column };
            assert!(ring(key, None).open(&aad, case["ciphertext"].as_str().unwrap(), other).is_err());
        }
    }

    #[test]
    fn legacy_d1_key_padding() {
        assert_eq!(&legacy_d1_key("abc").unwrap(), b"abc00000000000000000000000000000");
        let long = "x".repeat(40);
        assert_eq!(legacy_d1_key(&long).unwrap(), [b'x'; 32]);
        assert!(legacy_d1_key("ключ").is_none(), "non-ASCII keys failed to import in the original");
    }

    #[test]
    fn hashing_and_hmac() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_hmac_sha256_hex(
            b"Jefe",
            b"what do ya want for nothing?",
            "5BDCC146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ));
        assert!(!verify_hmac_sha256_hex(b"Jefe", b"what do ya want for nothing!", &hex(&mac)));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"short", b"longer"));
    }
}

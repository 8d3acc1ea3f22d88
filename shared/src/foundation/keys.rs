//! The Ed25519 keys bearer tokens are signed and verified with, as settings
//! give them: the formats `openssl genpkey -algorithm ed25519` and
//! `openssl pkey -pubout` write (PEM, or the base64 between its armour lines).
//! Parsed once at cold start; a key that does not parse is a named
//! configuration error, never a failure on the first request.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// More keys than a rotation needs would only widen what a stolen key buys.
pub const MAX_PUBLIC_KEYS: usize = 4;

/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An Ed25519 public key: the 32 bytes tokens are verified against.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// An SPKI public key, PEM (`-----BEGIN PUBLIC KEY-----`) or its base64.
    pub fn parse(text: &str) -> Result<Self, String> {
        let der = unarmour(text, "PUBLIC KEY")
            .ok_or("expected an Ed25519 public key: `openssl pkey -pubout` output, or the base64 line inside it")?;
        der.strip_prefix(&SPKI_PREFIX[..])
            .and_then(|key| <[u8; 32]>::try_from(key).ok())
            .map(Self)
            .ok_or_else(|| {
                "expected an Ed25519 public key (SPKI); this is another kind of key".into()
            })
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The token header's `kid`: the key's JWK thumbprint (RFC 7638), so a
    /// `kid` can never name another key than the one it was derived from.
    pub fn kid(&self) -> String {
        let jwk = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(self.0)
        );
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, jwk.as_bytes()))
    }

    /// As `JWT_PUBLIC_KEYS` takes it: the base64 of the SPKI DER.
    pub fn to_base64(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        STANDARD.encode(der)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.kid())
    }
}

/// `JWT_PUBLIC_KEYS`: one to [`MAX_PUBLIC_KEYS`] keys, comma-separated.
pub fn public_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (n, entry) in text.split(',').enumerate() {
        let key = PublicKey::parse(entry).map_err(|reason| format!("key {}: {reason}", n + 1))?;
        if keys.contains(&key) {
            return Err(format!("key {} is listed twice", n + 1));
        }
        keys.push(key);
    }
    if keys.len() > MAX_PUBLIC_KEYS {
        return Err(format!(
            "at most {MAX_PUBLIC_KEYS} keys (the current ones while a key is rotated)"
        ));
    }
    Ok(keys)
}

/// An Ed25519 private key, as PKCS#8. `Debug` shows only its public key's `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pkcs8: Vec<u8>,
    public: PublicKey,
}

impl SigningKey {
    /// A PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`) or its base64.
    pub fn parse(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected an Ed25519 private key: `openssl genpkey -algorithm ed25519` output, or the base64 line inside it";
        let pkcs8 = unarmour(text, "PRIVATE KEY").ok_or(EXPECTED)?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| EXPECTED)?;
        let public = <[u8; 32]>::try_from(pair.public_key().as_ref())
            .map(PublicKey)
            .map_err(|_| EXPECTED)?;
        Ok(Self { pkcs8, public })
    }

    /// A new random key (for tests and tools; a deployment makes its own with openssl).
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's random source");
        let pkcs8 = document.as_ref().to_vec();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("a key ring made");
        let public = PublicKey(pair.public_key().as_ref().try_into().expect("32 bytes"));
        Self { pkcs8, public }
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// As `JWT_SIGNING_KEY` takes it: the base64 of the PKCS#8 DER.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.pkcs8)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey([redacted], kid {})", self.public.kid())
    }
}

/// The DER inside a PEM block labelled `label`, or the DER a bare base64 text
/// encodes (whitespace ignored, as a value pasted across lines has some).
fn unarmour(text: &str, label: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let body = match text.strip_prefix("-----BEGIN ") {
        Some(rest) => {
            let rest = rest.strip_prefix(label)?.strip_prefix("-----")?;
            let end = format!("-----END {label}-----");
            rest.trim_end().strip_suffix(end.as_str())?
        }
        None => text,
    };
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok().filter(|der| !der.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl genpkey -algorithm ed25519`, and `openssl pkey -pubout` of it.
    const PEM_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEILvJS1Uob/X2DsUZV8YrWhRtu7Lk6RXw11h5zSItEJev\n-----END PRIVATE KEY-----\n";
    const PEM_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAL0C2kjfEUhnxdYYEHdVNDfs7pHUtIUW20E/4tROSIpk=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn openssls_keys_parse_as_pem_or_as_their_base64_line() {
        let key = SigningKey::parse(PEM_PRIVATE_KEY).unwrap();
        let bare = SigningKey::parse(PEM_PRIVATE_KEY.lines().nth(1).unwrap()).unwrap();
        assert_eq!(key, bare);
        let public = PublicKey::parse(PEM_PUBLIC).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(
            PublicKey::parse(PEM_PUBLIC.lines().nth(1).unwrap()).unwrap(),
            public
        );
        assert_eq!(PublicKey::parse(&public.to_base64()).unwrap(), public);
        assert_eq!(SigningKey::parse(&key.to_base64()).unwrap(), key);
        // ring's own PKCS#8 v2, with the public key inside.
        let generated = SigningKey::generate();
        assert_eq!(
            SigningKey::parse(&generated.to_base64()).unwrap(),
            generated
        );
    }

    #[test]
    fn a_kid_is_the_keys_rfc_7638_thumbprint() {
        // RFC 8037, appendix A.3: the thumbprint of its example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = PublicKey(x.try_into().unwrap());
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn what_is_not_an_ed25519_key_is_refused_with_what_was_expected() {
        let public = PublicKey::parse(PEM_PUBLIC).unwrap().to_base64();
        let private = SigningKey::parse(PEM_PRIVATE_KEY).unwrap().to_base64();
        // A P-256 public key, as `openssl ec -pubout` writes it.
        let p256 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D7gS2XpJFbZiItSs3m9+9Ue6GnvHw/GW2ZZaVtszggXIw==";
        for bad in ["", "not base64!", "c2hvcnQ=", p256, &private] {
            let error = PublicKey::parse(bad).unwrap_err();
            assert!(
                error.starts_with("expected an Ed25519 public key"),
                "{bad}: {error}"
            );
        }
        for bad in ["", "not base64!", &public, PEM_PUBLIC] {
            let error = SigningKey::parse(bad).unwrap_err();
            assert!(
                error.starts_with("expected an Ed25519 private key"),
                "{bad}: {error}"
            );
        }
        // A PEM block with another label is not taken for the key it is not.
        assert!(PublicKey::parse(&PEM_PRIVATE_KEY.replace("PRIVATE", "PUBLIC")).is_err());
    }

    #[test]
    fn a_key_list_holds_one_to_four_distinct_keys() {
        let keys: Vec<String> = (0..5)
            .map(|_| SigningKey::generate().public_key().to_base64())
            .collect();
        assert_eq!(public_keys(&keys[0]).unwrap().len(), 1);
        assert_eq!(
            public_keys(&format!(" {} ,\n{} ", keys[0], keys[1]))
                .unwrap()
                .len(),
            2
        );
        let five = keys.join(",");
        assert!(public_keys(&five).unwrap_err().contains("at most 4 keys"));
        let twice = format!("{},{}", keys[0], keys[0]);
        assert_eq!(public_keys(&twice).unwrap_err(), "key 2 is listed twice");
        let error = public_keys(&format!("{},", keys[0])).unwrap_err();
        assert!(error.starts_with("key 2: expected"), "{error}");
    }

    #[test]
    fn a_signing_key_never_prints() {
        let key = SigningKey::parse(PEM_PRIVATE_KEY).unwrap();
        let printed = format!("{key:?}");
        assert!(!printed.contains(&key.to_base64()[20..]), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}

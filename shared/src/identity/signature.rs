//! LearnWorlds webhook signatures: `Learnworlds-Webhook-Signature: v1=<value>`,
//! checked on the raw body before anything is parsed. Everything fails closed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::foundation::config::{Secret, SignatureMode};
use crate::foundation::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// Checks `Learnworlds-Webhook-Signature: v1=<value>` against the raw body.
pub fn verify_webhook(
    secret: Option<&Secret>,
    mode: SignatureMode,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), ApiError> {
    let invalid = ApiError::InvalidSignature("the webhook signature is missing or invalid");
    let secret = secret.ok_or(ApiError::InvalidSignature("webhooks are not configured"))?;
    let value = header
        .and_then(|h| h.trim().strip_prefix("v1="))
        .ok_or(invalid)?;
    let ok = match mode {
        SignatureMode::SharedSecret => {
            bool::from(value.as_bytes().ct_eq(secret.expose().as_bytes()))
        }
        SignatureMode::HmacSha256 => {
            let Ok(expected) = hex::decode(value) else {
                return Err(ApiError::InvalidSignature(
                    "the webhook signature is missing or invalid",
                ));
            };
            let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes any key size");
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidSignature(
            "the webhook signature is missing or invalid",
        ))
    }
}

/// Hex HMAC-SHA256 of a webhook body, as a sender in `hmac-sha256` mode computes it.
pub fn sign_webhook(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A signature computed outside this code, by OpenSSL, so that a change to
    // the message or its encoding fails here instead of at LearnWorlds:
    //   printf '%s' "$BODY" | openssl dgst -sha256 -hmac known-answer-webhook-secret
    const KNOWN_WEBHOOK_BODY: &str = r#"{"type":"userUpdated","data":{"user":{"id":"64a0f0000000000000000001","email":"ana@example.test"}}}"#;
    const KNOWN_WEBHOOK_SIGNATURE: &str =
        "00ab3c6998875d0d7b90af0f3290745e6da4b6472d37bc45b65fb5250de076d4";

    #[test]
    fn a_webhook_signed_by_openssl_is_accepted_and_ours_matches_it() {
        let webhook_secret = Secret::new("known-answer-webhook-secret");
        let header = format!("v1={KNOWN_WEBHOOK_SIGNATURE}");
        verify_webhook(
            Some(&webhook_secret),
            SignatureMode::HmacSha256,
            Some(&header),
            KNOWN_WEBHOOK_BODY.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            sign_webhook(&webhook_secret, KNOWN_WEBHOOK_BODY.as_bytes()),
            KNOWN_WEBHOOK_SIGNATURE
        );
    }

    #[test]
    fn webhook_signatures_are_checked_in_both_modes_and_fail_closed() {
        let secret = Secret::new("webhook-secret-0123456789");
        let body = br#"{"type":"userUpdated"}"#;
        let shared = format!("v1={}", secret.expose());
        let hmac = format!("v1={}", sign_webhook(&secret, body));
        assert!(
            verify_webhook(
                Some(&secret),
                SignatureMode::SharedSecret,
                Some(&shared),
                body
            )
            .is_ok()
        );
        assert!(
            verify_webhook(Some(&secret), SignatureMode::HmacSha256, Some(&hmac), body).is_ok()
        );

        let failures = [
            (Some(&secret), SignatureMode::SharedSecret, None),
            (Some(&secret), SignatureMode::SharedSecret, Some("v1=wrong")),
            (
                Some(&secret),
                SignatureMode::SharedSecret,
                Some(secret.expose()),
            ),
            (
                Some(&secret),
                SignatureMode::SharedSecret,
                Some(hmac.as_str()),
            ),
            (
                Some(&secret),
                SignatureMode::HmacSha256,
                Some(shared.as_str()),
            ),
            (Some(&secret), SignatureMode::HmacSha256, Some("v1=00")),
            (None, SignatureMode::SharedSecret, Some(shared.as_str())),
        ];
        for (secret, mode, header) in failures {
            assert!(
                verify_webhook(secret, mode, header, body).is_err(),
                "{mode:?} {header:?}"
            );
        }
        let tampered = br#"{"type":"userUpdated","x":1}"#;
        assert!(
            verify_webhook(
                Some(&secret),
                SignatureMode::HmacSha256,
                Some(&hmac),
                tampered
            )
            .is_err()
        );
    }
}

//! What an erased person leaves behind: keyed hashes (HMAC-SHA256 with the
//! service's `ERASURE_HASH_KEY`) of their LearnWorlds id and email, kept in
//! `shared.tombstones` so that a later webhook or launch for them is refused
//! instead of re-creating them; and the pseudonym their id becomes in the
//! audit log. Not bare hashes: without the key nobody can test an id or an
//! email against them.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::foundation::config::Secret;
use crate::foundation::db;
use crate::foundation::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct ErasureKeys {
    key: Secret,
}

impl ErasureKeys {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    fn mac(&self, domain: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes any key size");
        // A domain per kind of value, so that equal text in two kinds hashes apart.
        mac.update(domain.as_bytes());
        mac.update(b"\0");
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// A LearnWorlds id's tombstone hash.
    pub fn lms_hash(&self, lms_user_id: &str) -> Vec<u8> {
        self.mac("lms_user_id", lms_user_id.as_bytes()).to_vec()
    }

    /// An email's tombstone hash; emails compare case-insensitively.
    pub fn email_hash(&self, email: &str) -> Vec<u8> {
        self.mac("email", email.trim().to_lowercase().as_bytes())
            .to_vec()
    }

    /// The id a person's id becomes in the audit log once they are erased: the
    /// same for every row, unlike any real id (a version 8 UUID), and nobody
    /// without the key can tell whose it was.
    pub fn pseudonym(&self, user: Uuid) -> Uuid {
        let mac = self.mac("user_id", user.as_bytes());
        let mut bytes: [u8; 16] = mac[..16].try_into().expect("16 of 32 bytes");
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes)
    }
}

/// Where a LearnWorlds user stands before a sync touches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Open,
    /// Their erasure is requested: they may not sign in, and nothing of
    /// theirs changes until it is done or cancelled.
    ErasurePending,
    /// Erased: a tombstone holds their LearnWorlds id or email.
    Erased,
}

/// Takes the lock every sync of this LearnWorlds id takes (the erasure takes
/// it too), then reads whether they were erased or are being erased. Run it
/// in the sync's transaction, before the sync: an erasure racing the sync
/// either finished first (and the sync sees its tombstone) or waits for it.
pub async fn standing(
    tx: &mut PgConnection,
    keys: &ErasureKeys,
    lms_user_id: &str,
    email: &str,
) -> Result<Standing, ApiError> {
    let (erased, pending): (bool, bool) = db::query_as(STANDING_SQL)
        .bind(lms_user_id)
        .bind(keys.lms_hash(lms_user_id))
        .bind(keys.email_hash(email))
        .fetch_one(&mut *tx)
        .await?;
    Ok(if erased {
        Standing::Erased
    } else if pending {
        Standing::ErasurePending
    } else {
        Standing::Open
    })
}

/// Binds: $1 LearnWorlds id, $2 its hash, $3 the email's hash.
const STANDING_SQL: &str = "select
        exists (select 1 from shared.tombstones
                where lifted_at is null and (lms_hash = $2 or email_hash = $3)) as erased,
        exists (select 1 from shared.users
                where lms_user_id = $1 and erasure_requested_at is not null) as pending
     from (select pg_advisory_xact_lock(1718908275, hashtext($1))) as one_sync_per_user";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_a_pseudonym_is_stable_and_no_real_id() {
        let keys = ErasureKeys::new(Secret::new("a-key-of-at-least-thirty-two-bytes!!"));
        let other = ErasureKeys::new(Secret::new("another-key-of-at-least-thirty-two!!"));
        assert_eq!(keys.lms_hash("64a0"), keys.lms_hash("64a0"));
        assert_ne!(keys.lms_hash("64a0"), other.lms_hash("64a0"));
        assert_eq!(
            keys.email_hash(" Ana@Example.test"),
            keys.email_hash("ana@example.test")
        );
        assert_ne!(
            keys.lms_hash("ana@example.test"),
            keys.email_hash("ana@example.test")
        );
        let user = Uuid::new_v4();
        let pseudonym = keys.pseudonym(user);
        assert_eq!(pseudonym, keys.pseudonym(user));
        assert_ne!(pseudonym, user);
        assert_eq!(pseudonym.get_version_num(), 8);
    }
}

//! The bearer tokens this process has verified, so that a warm function checks
//! a token's Ed25519 signature once and not on every request the token carries.
//! A browser sends the same token with every call for its 15 minutes, and the
//! signature check was the largest share of a read's own CPU time (docs/
//! performance.md). It is what API Gateway's authorizer cache does, keyed by
//! the token, but with the token's own `exp` as the limit.
//!
//! What is kept is only what the signature proved: the user and the token's
//! `exp`. The `exp` is checked again on every hit, and whether the
//! account still exists is decided in SQL on every request, as before. The keys
//! are fixed for a process's life, so a key removed from the settings takes
//! its tokens with it at the next deploy, as it always did. Entries are keyed
//! by the token's SHA-256: a lookup compares digests, never the token's bytes.
//! Only a token that verified can enter, so nobody can fill the cache with
//! tokens of their own making; it is bounded all the same.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::tokens::LEEWAY_SECONDS;

/// At most this many tokens are kept: about 60 KiB.
pub const CAPACITY: usize = 1024;

type Key = [u8; 32];

/// What a verified token proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user: Uuid,
    /// The token's `exp`, Unix seconds.
    pub exp: u64,
}

impl Verified {
    /// jsonwebtoken's own rule: expired once `exp` is past by more than the
    /// leeway, at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.exp.saturating_add(LEEWAY_SECONDS) < now
    }
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<Key, Verified>>,
}

impl VerifiedTokens {
    pub fn key(token: &str) -> Key {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The token behind `key`, if this process verified it.
    pub fn get(&self, key: &Key) -> Option<Verified> {
        self.lock().get(key).copied()
    }

    /// Keeps a verified token. When the cache is full, the tokens expired at
    /// `now` are dropped first, then all of them if that freed nothing.
    pub fn insert(&self, key: Key, verified: Verified, now: u64) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, kept| !kept.expired(now));
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }

    pub fn remove(&self, key: &Key) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Verified>> {
        // A panic while the lock was held cannot leave a map half-written
        // that matters here: every entry is whole, and a lost one is verified again.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

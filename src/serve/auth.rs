//! HTTP basic authentication for the exporter (`basic_auth_users` of the web config): bcrypt
//! hashes, as the Prometheus exporters keep them. A bcrypt check costs tens of milliseconds by
//! design, so it runs off the async threads and a successful (user, password) is remembered
//! (a bounded cache keyed by a SHA-256 of both, never the password) so that a scraper every
//! 15 s pays it once. An unknown user is checked against a fixed hash too, so that the time
//! taken does not tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};

/// Successful logins remembered at most (then the memory starts again).
const CACHE_MAX: usize = 1024;
/// bcrypt checks running at once, at most.
const CHECKS_AT_ONCE: usize = 2;
/// A header longer than this is not a login.
const MAX_HEADER: usize = 4096;
/// The hash an unknown user's password is checked against when no user's cost can be read.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// What an unknown user's password is checked against: a hash of the users' highest cost,
    /// so that the time taken does not tell whether a user exists.
    dummy: String,
    cache: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt checks at once: a flood of wrong logins queues here instead of taking every core.
    checking: tokio::sync::Semaphore,
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Basic …` header, or one that does not decode.
    Missing,
    /// A user and password that do not match.
    Wrong,
}

impl BasicAuth {
    /// The users and their bcrypt hashes; an error names the user whose hash is not bcrypt.
    pub fn new(users: BTreeMap<String, String>) -> Result<BasicAuth, (String, String)> {
        for (user, hash) in &users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err((
                    user.clone(),
                    "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)".into(),
                ));
            }
        }
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max();
        let dummy = cost
            .and_then(|c| bcrypt::hash("coalscope: no such user", c).ok())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        Ok(BasicAuth {
            users,
            dummy,
            cache: Mutex::new(HashSet::new()),
            checking: tokio::sync::Semaphore::new(CHECKS_AT_ONCE),
        })
    }

    /// Let the request in, or say why not. Runs bcrypt on the blocking pool when it must.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let (user, password) = credentials(authorization).ok_or(Denied::Missing)?;
        let key = cache_key(&user, &password);
        if self.cache.lock().is_ok_and(|c| c.contains(&key)) {
            return Ok(());
        }
        let known = self.users.get(&user).cloned();
        let hash = known.clone().unwrap_or_else(|| self.dummy.clone());
        let Ok(_turn) = self.checking.acquire().await else {
            return Err(Denied::Wrong);
        };
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !(matched && known.is_some()) {
            return Err(Denied::Wrong);
        }
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(key);
        }
        Ok(())
    }
}

fn cache_key(user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

/// `Basic base64(user:password)` → (user, password).
fn credentials(header: Option<&[u8]>) -> Option<(String, String)> {
    let header = header?;
    if header.len() > MAX_HEADER {
        return None;
    }
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    fn auth() -> BasicAuth {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        BasicAuth::new(BTreeMap::from([("alice".to_string(), hash)])).unwrap()
    }

    #[tokio::test]
    async fn right_and_wrong_passwords() {
        let a = auth();
        assert_eq!(a.check(Some(&header("alice", "s3cret"))).await, Ok(()));
        // Remembered: the second check needs no bcrypt.
        assert_eq!(a.cache.lock().unwrap().len(), 1);
        assert_eq!(a.check(Some(&header("alice", "s3cret"))).await, Ok(()));
        assert_eq!(a.check(Some(&header("alice", "wrong"))).await, Err(Denied::Wrong));
        assert_eq!(a.check(Some(&header("bob", "s3cret"))).await, Err(Denied::Wrong));
        assert_eq!(a.check(None).await, Err(Denied::Missing));
        assert_eq!(a.check(Some(b"Bearer abc")).await, Err(Denied::Missing));
        assert_eq!(a.check(Some(b"Basic !!!")).await, Err(Denied::Missing));
        let no_colon = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice")
        );
        assert_eq!(a.check(Some(no_colon.as_bytes())).await, Err(Denied::Missing));
        // A password with a colon in it: only the first colon separates.
        let hash = bcrypt::hash("a:b", 4).unwrap();
        let b = BasicAuth::new(BTreeMap::from([("u".to_string(), hash)])).unwrap();
        assert_eq!(b.check(Some(&header("u", "a:b"))).await, Ok(()));
    }

    #[test]
    fn hashes_must_be_bcrypt() {
        let err = BasicAuth::new(BTreeMap::from([("alice".to_string(), "plain".to_string())]))
            .err()
            .unwrap();
        assert_eq!(err.0, "alice");
        // The toolkit's documented example hash ($2y$) is accepted.
        BasicAuth::new(BTreeMap::from([(
            "alice".to_string(),
            "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze".to_string(),
        )]))
        .unwrap();
        assert!(DUMMY_HASH.parse::<bcrypt::HashParts>().is_ok());
        // An unknown user costs what a known one does.
        let a = auth();
        assert_eq!(a.dummy.parse::<bcrypt::HashParts>().unwrap().get_cost(), 4);
    }
}

//! The server's signing keys: ES256 (P-256). With a `cookie_key` they are
//! kept in the store, sealed, so tokens survive a restart and every replica
//! signs with the same key; without, they are new per process. The public
//! halves are published at `jwks_uri` and handed to the resource side
//! in-process.
//!
//! Keys rotate with overlap (`KeyRing`): after a rotation the previous key
//! still verifies. Rotation is coordinated through the store: every replica
//! re-reads the keys every [`KEY_REFRESH`] and rotates them when they are
//! due, with a compare-and-set so exactly one replica's new key wins. A new
//! key is published [`PUBLISH_AHEAD`] before it signs anything, so every
//! replica has read it (and verifies its tokens) before the first one exists.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::json;

use super::store::{Space, Store, StoreError};
use super::{StartError, flow, seal::Sealer};
use crate::authn::KeySet;

/// Where the signing keys are kept in the store.
const SIGNING_KEY: &str = "signing-es256";
/// A signing key is replaced after this long; the one it replaces keeps
/// verifying for one more period (far longer than any access token lives).
pub(super) const KEY_ROTATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often each server re-reads its keys from the store.
pub(super) const KEY_REFRESH: Duration = Duration::from_secs(60);
/// How long a new key is published before it signs: three refreshes, so a
/// replica that missed one (a slow or failed read) still has it in time.
const PUBLISH_AHEAD: Duration = Duration::from_secs(3 * 60);

/// One signing key.
pub(crate) struct SigningKey {
    kid: String,
    /// The private key as stored (PKCS#8), to write the ring back.
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    /// The public key as a JWK.
    jwk: serde_json::Value,
}

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// The system RNG or the key parser failed.
    #[error("signing key: {0}")]
    Crypto(String),
}

impl SigningKey {
    /// A fresh key; returns it and its PKCS#8 bytes to store.
    pub(crate) fn generate() -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let der = pkcs8.as_ref().to_vec();
        Ok((Self::from_pkcs8(&der)?, der))
    }

    /// The key stored as PKCS#8.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        // Uncompressed point: 0x04 || x (32) || y (32).
        let point = pair.public_key().as_ref();
        let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
            return Err(KeyError::Crypto("unexpected public key length".into()));
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 thumbprint as the kid: stable for the key, nothing else.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        });
        Ok(Self {
            kid,
            pkcs8: der.to_vec(),
            encoding: EncodingKey::from_ec_der(der),
            jwk,
        })
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`).
    pub(crate) fn sign_access_token(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }
}

/// The keys in use: `current` signs from `signs_from` (unix seconds) on;
/// until then `previous` still signs (the new key is only published). After
/// that, `previous` still verifies what it signed before (overlap).
pub(crate) struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
    signs_from: u64,
    /// When `current` was made (unix seconds).
    since: u64,
}

impl KeyRing {
    /// The key ids, current first, and when the current one signs from:
    /// equal for two rings that hold the same keys.
    fn identity(&self) -> (Vec<&str>, u64) {
        let kids = std::iter::once(self.current.kid.as_str())
            .chain(self.previous.as_ref().map(|k| k.kid.as_str()))
            .collect();
        (kids, self.signs_from)
    }

    /// The key that signs at `now` (unix seconds).
    fn signer(&self, now: u64) -> &SigningKey {
        match &self.previous {
            Some(previous) if now < self.signs_from => previous,
            _ => &self.current,
        }
    }

    /// The public JWK set (the `jwks_uri` document): current first.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let keys: Vec<&serde_json::Value> = std::iter::once(&self.current.jwk)
            .chain(self.previous.as_ref().map(|k| &k.jwk))
            .collect();
        json!({ "keys": keys })
    }

    /// Signs with the key that signs now.
    pub(crate) fn sign_access_token(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        self.signer(flow::now_secs()).sign_access_token(claims)
    }
}

/// The signing keys as stored (sealed): PKCS#8, base64.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKeys {
    current: String,
    /// When `current` was made (unix seconds).
    since: u64,
    /// When `current` starts signing (unix seconds; 0 in records written
    /// before keys were published ahead: at once).
    #[serde(default)]
    signs_from: u64,
    previous: Option<String>,
}

/// The signing keys of one server, shared by its config snapshots: the ring
/// that signs, and the public keys the resource side verifies with.
pub(crate) struct Keys {
    ring: ArcSwap<KeyRing>,
    public: Arc<ArcSwapOption<KeySet>>,
}

impl Keys {
    /// Reads (or makes) the keys; see [`load`]. With a `shared` store
    /// (replicas), stored keys this `cookie_key` cannot open stop the start:
    /// replacing them would lock the other replicas out of their own keys.
    pub(crate) async fn start(
        store: &Store,
        sealer: &Sealer,
        persistent: bool,
        shared: bool,
    ) -> Result<Arc<Self>, StartError> {
        let unreadable = if shared {
            Unreadable::Keep
        } else {
            Unreadable::Replace
        };
        let ring = load(store, sealer, persistent, unreadable, None).await?;
        let public = ArcSwapOption::from(public_set(&ring).map(Arc::new));
        Ok(Arc::new(Self {
            ring: ArcSwap::from_pointee(ring),
            public: Arc::new(public),
        }))
    }

    /// The ring in use now.
    pub(crate) fn ring(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// Where the public keys are published for the resource side.
    pub(crate) fn public(&self) -> Arc<ArcSwapOption<KeySet>> {
        self.public.clone()
    }

    /// Re-reads the keys from the store (rotating them when due) and
    /// switches to them if they changed. Returns whether they did.
    pub(crate) async fn refresh(&self, store: &Store, sealer: &Sealer) -> Result<bool, StartError> {
        let in_use = self.ring.load_full();
        let ring = load(store, sealer, true, Unreadable::Keep, Some(&in_use)).await?;
        if ring.identity() == self.ring.load().identity() {
            return Ok(false);
        }
        tracing::info!(kids = ?ring.identity().0, "signing keys changed in the store; using them");
        if let Some(set) = public_set(&ring) {
            self.public.store(Some(Arc::new(set)));
        }
        self.ring.store(Arc::new(ring));
        Ok(true)
    }

    /// Refreshes every [`KEY_REFRESH`] while the server lives (only for keys
    /// kept in the store: per-process keys have nothing to re-read).
    pub(crate) fn spawn_refresh(self: &Arc<Self>, store: Weak<Store>, sealer: Arc<Sealer>) {
        let keys = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEY_REFRESH).await;
                let (Some(keys), Some(store)) = (keys.upgrade(), store.upgrade()) else {
                    return;
                };
                if let Err(e) = keys.refresh(&store, &sealer).await {
                    tracing::warn!(error = %e, "signing keys not re-read from the store; keeping the ones in use");
                }
            }
        });
    }
}

fn public_set(ring: &KeyRing) -> Option<KeySet> {
    KeySet::parse(ring.jwks().to_string().as_bytes()).ok()
}

/// What to do with stored keys this `cookie_key` cannot open.
#[derive(Clone, Copy, PartialEq)]
enum Unreadable {
    /// At start: the operator changed the cookie key; make new keys.
    Replace,
    /// While running: another replica has another cookie key (a
    /// misconfiguration); replacing its keys would start a tug of war.
    Keep,
}

/// The signing keys: with a `cookie_key` (`persistent`, so the store can be
/// read after a restart), the ones kept in the store, sealed, rotated when
/// the current one is older than [`KEY_ROTATION`]; without, a new key per
/// process (tokens issued before a restart then stop verifying, and clients
/// refresh).
///
/// `in_use` (while running): when the record is gone (Redis flushed or
/// restarted without persistence), the keys in use are written back rather
/// than new ones made, so tokens already issued keep verifying.
async fn load(
    store: &Store,
    sealer: &Sealer,
    persistent: bool,
    unreadable: Unreadable,
    in_use: Option<&KeyRing>,
) -> Result<KeyRing, StartError> {
    use base64::engine::general_purpose::STANDARD;
    let crypto = |e: KeyError| StartError::Crypto(e.to_string());
    let store_error = |e: StoreError| StartError::Store(e.to_string());
    let decode = |b64: &str| {
        STANDARD
            .decode(b64)
            .ok()
            .and_then(|der| SigningKey::from_pkcs8(&der).ok())
    };
    let now = flow::now_secs();
    let (mut stored, mut stored_raw) = (None, None);
    if persistent {
        if let Some(sealed) = store
            .get(Space::Key, SIGNING_KEY)
            .await
            .map_err(store_error)?
        {
            stored = std::str::from_utf8(&sealed)
                .ok()
                .and_then(|s| sealer.open(s))
                .and_then(|json| serde_json::from_str::<StoredKeys>(&json).ok());
            if stored.is_none() && unreadable == Unreadable::Keep {
                return Err(StartError::Store(
                    "the stored signing keys cannot be opened with this cookie_key \
                     (do all replicas share one?)"
                        .into(),
                ));
            }
            if stored.is_none() {
                tracing::warn!(
                    "the stored signing keys cannot be opened (cookie_key changed?); making new ones: \
                     tokens signed before stop verifying"
                );
            }
            stored_raw = Some(sealed);
        }
    }
    if let Some(keys) = &stored {
        let fresh = now.saturating_sub(keys.since) < KEY_ROTATION.as_secs();
        if let (true, Some(current)) = (fresh, decode(&keys.current)) {
            let previous = keys.previous.as_deref().and_then(decode);
            return Ok(KeyRing {
                current,
                previous,
                signs_from: keys.signs_from,
                since: keys.since,
            });
        }
    }
    if let (true, None, Some(ring)) = (persistent, &stored_raw, in_use) {
        let keys = StoredKeys {
            current: STANDARD.encode(&ring.current.pkcs8),
            since: ring.since,
            signs_from: ring.signs_from,
            previous: ring.previous.as_ref().map(|k| STANDARD.encode(&k.pkcs8)),
        };
        let sealed = seal(sealer, &keys)?;
        let written = store
            .put_new(Space::Key, SIGNING_KEY, sealed, KEY_ROTATION * 3)
            .await
            .map_err(store_error)?;
        if written {
            tracing::warn!(
                "the signing keys were missing from the store; wrote back the ones in use"
            );
        }
        // Ours, or another replica's written back first: read what won.
        return Box::pin(load(store, sealer, persistent, unreadable, None)).await;
    }
    let (key, pkcs8) = SigningKey::generate().map_err(crypto)?;
    // The key being replaced keeps verifying for one more period, and keeps
    // signing until every replica has read the new one.
    let previous_b64 = stored.map(|s| s.current);
    let previous = previous_b64.as_deref().and_then(decode);
    let signs_from = if previous.is_some() && persistent {
        now + PUBLISH_AHEAD.as_secs()
    } else {
        now
    };
    if persistent {
        let keys = StoredKeys {
            current: STANDARD.encode(&pkcs8),
            since: now,
            signs_from,
            previous: previous_b64,
        };
        let sealed = seal(sealer, &keys)?;
        let ttl = KEY_ROTATION * 3;
        // Replicas race here (starting together, or rotating together): only
        // one key set may win, or tokens one signs would not verify at another.
        let written = match &stored_raw {
            None => store.put_new(Space::Key, SIGNING_KEY, sealed, ttl).await,
            Some(raw) => {
                store
                    .compare_and_set(Space::Key, SIGNING_KEY, raw, sealed, ttl)
                    .await
            }
        }
        .map_err(store_error)?;
        if !written {
            // Another replica made or rotated them first: use theirs.
            return Box::pin(load(store, sealer, persistent, unreadable, None)).await;
        }
        if previous.is_some() {
            tracing::info!(
                signs_in_secs = PUBLISH_AHEAD.as_secs(),
                "signing key rotated: the new one is published now and signs once every replica has read it"
            );
        }
    }
    Ok(KeyRing {
        current: key,
        previous,
        signs_from,
        since: now,
    })
}

fn seal(sealer: &Sealer, keys: &StoredKeys) -> Result<Vec<u8>, StartError> {
    let json = serde_json::to_string(keys).map_err(|e| StartError::Crypto(e.to_string()))?;
    sealer
        .seal(&json)
        .map(String::into_bytes)
        .map_err(|e| StartError::Crypto(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authserver::store::MemoryStore;

    fn kids(ring: &KeyRing) -> Vec<String> {
        ring.identity().0.into_iter().map(str::to_owned).collect()
    }

    fn signer_kid(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    fn sealer_for(secret: &[u8]) -> Sealer {
        Sealer::from_secret(secret).unwrap()
    }

    /// Moves the stored keys' birth back past the rotation period.
    async fn age_stored_keys(store: &Store, sealer: &Sealer) {
        let sealed = store.get(Space::Key, SIGNING_KEY).await.unwrap().unwrap();
        let json = sealer.open(std::str::from_utf8(&sealed).unwrap()).unwrap();
        let mut keys: StoredKeys = serde_json::from_str(&json).unwrap();
        keys.since -= KEY_ROTATION.as_secs() + 1;
        let resealed = sealer.seal(&serde_json::to_string(&keys).unwrap()).unwrap();
        store
            .put(Space::Key, SIGNING_KEY, resealed.into_bytes(), KEY_ROTATION)
            .await
            .unwrap();
    }

    #[test]
    fn a_rotated_ring_publishes_both_keys_and_signs_with_the_new_one_once_due() {
        let (old, _) = SigningKey::generate().unwrap();
        let (new, _) = SigningKey::generate().unwrap();
        let (old_kid, new_kid) = (old.kid.clone(), new.kid.clone());
        let ring = KeyRing {
            current: new,
            previous: Some(old),
            signs_from: 1_000,
            since: 0,
        };
        let jwks = ring.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
        assert!(
            jwks.to_string().find("\"d\"").is_none(),
            "never the private part"
        );
        assert_eq!(ring.signer(999).kid, old_kid, "published, not signing yet");
        assert_eq!(ring.signer(1_000).kid, new_kid);
        let token = ring.sign_access_token(&json!({"sub": "x"})).unwrap();
        assert_eq!(signer_kid(&token), new_kid);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[tokio::test]
    async fn signing_keys_persist_and_rotate_with_overlap() {
        let store = Store::Memory(MemoryStore::default());
        let sealer = sealer_for(b"a cookie key of at least 32 bytes");
        let first = load_with(&store, &sealer, Unreadable::Replace)
            .await
            .unwrap();
        let again = load_with(&store, &sealer, Unreadable::Replace)
            .await
            .unwrap();
        assert_eq!(kids(&first), kids(&again), "kept across restarts");
        assert_eq!(kids(&first).len(), 1);
        let now = flow::now_secs();
        assert_eq!(
            first.signer(now).kid,
            kids(&first)[0],
            "the first key signs at once"
        );

        age_stored_keys(&store, &sealer).await;
        let rotated = load_with(&store, &sealer, Unreadable::Replace)
            .await
            .unwrap();
        let (old, new) = (kids(&first), kids(&rotated));
        assert_eq!(new.len(), 2, "the previous key still verifies");
        assert_ne!(new[0], old[0], "a new key is published");
        assert_eq!(new[1], old[0]);
        assert_eq!(
            rotated.signer(now).kid,
            old[0],
            "the old key signs a while longer"
        );
        assert_eq!(rotated.signer(now + PUBLISH_AHEAD.as_secs()).kid, new[0]);

        // Another cookie_key cannot open them: at start, new keys (never a
        // crash); while running, an error and the stored keys left alone.
        let other = sealer_for(b"another cookie key, also 32 bytes");
        let before = store.get(Space::Key, SIGNING_KEY).await.unwrap();
        assert!(
            load_with(&store, &other, Unreadable::Keep).await.is_err(),
            "a replica with another cookie key must not replace the keys"
        );
        assert_eq!(store.get(Space::Key, SIGNING_KEY).await.unwrap(), before);
        let fresh = load_with(&store, &other, Unreadable::Replace)
            .await
            .unwrap();
        assert!(!kids(&fresh).contains(&new[0]));
        // Without a cookie_key nothing is kept.
        let a = load(&store, &sealer, false, Unreadable::Replace, None)
            .await
            .unwrap();
        let b = load(&store, &sealer, false, Unreadable::Replace, None)
            .await
            .unwrap();
        assert_ne!(kids(&a), kids(&b));
    }

    async fn load_with(
        store: &Store,
        sealer: &Sealer,
        unreadable: Unreadable,
    ) -> Result<KeyRing, StartError> {
        load(store, sealer, true, unreadable, None).await
    }

    #[tokio::test]
    async fn running_replicas_pick_up_a_rotation_from_the_store() {
        let store = Store::Memory(MemoryStore::default());
        let sealer = sealer_for(b"a cookie key of at least 32 bytes");
        let a = Keys::start(&store, &sealer, true, true).await.unwrap();
        let b = Keys::start(&store, &sealer, true, true).await.unwrap();
        assert_eq!(kids(&a.ring()), kids(&b.ring()), "one key for both");
        assert!(
            !b.refresh(&store, &sealer).await.unwrap(),
            "nothing changed"
        );

        age_stored_keys(&store, &sealer).await;
        assert!(a.refresh(&store, &sealer).await.unwrap(), "a rotates");
        assert!(b.refresh(&store, &sealer).await.unwrap(), "b picks it up");
        assert!(!a.refresh(&store, &sealer).await.unwrap(), "rotated once");
        let (ka, kb) = (kids(&a.ring()), kids(&b.ring()));
        assert_eq!(ka, kb);
        assert_eq!(ka.len(), 2);
        // The resource side verifies with the new key before it signs.
        let published = b.public().load_full().unwrap();
        assert!(published.has_kid(&ka[0]) && published.has_kid(&ka[1]));
        let token = b.ring().sign_access_token(&json!({"sub": "x"})).unwrap();
        assert_eq!(signer_kid(&token), ka[1], "the old key still signs");
    }

    #[tokio::test]
    async fn keys_missing_from_the_store_are_written_back_not_replaced() {
        let store = Store::Memory(MemoryStore::default());
        let sealer = sealer_for(b"a cookie key of at least 32 bytes");
        let a = Keys::start(&store, &sealer, true, true).await.unwrap();
        let before = kids(&a.ring());
        // Redis flushed (or restarted without persistence).
        store.take(Space::Key, SIGNING_KEY).await.unwrap();
        assert!(!a.refresh(&store, &sealer).await.unwrap(), "the same keys");
        assert_eq!(kids(&a.ring()), before);
        // ... and they are in the store again, for the other replicas.
        let b = Keys::start(&store, &sealer, true, true).await.unwrap();
        assert_eq!(kids(&b.ring()), before);
    }

    #[tokio::test]
    async fn a_replica_with_another_cookie_key_does_not_start_on_a_shared_store() {
        let store = Store::Memory(MemoryStore::default());
        let ours = sealer_for(b"a cookie key of at least 32 bytes");
        let first = Keys::start(&store, &ours, true, true).await.unwrap();
        let stored = store.get(Space::Key, SIGNING_KEY).await.unwrap();
        let other = sealer_for(b"another cookie key, also 32 bytes");
        let refused = Keys::start(&store, &other, true, true).await;
        assert!(refused.is_err(), "replaced the shared keys");
        assert_eq!(store.get(Space::Key, SIGNING_KEY).await.unwrap(), stored);
        assert!(!first.refresh(&store, &ours).await.unwrap());
        // A store of its own (sqlite, memory): the operator changed the key.
        assert!(Keys::start(&store, &other, true, false).await.is_ok());
    }
}

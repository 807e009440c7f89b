//! Encryption of the upstream secrets the store keeps (the identity
//! provider's refresh token): AES-256-GCM, a random nonce per value. The key
//! comes from `cookie_key` when set (so a restart can still read the store),
//! else it is random per process.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Seals and opens upstream secrets.
pub(crate) struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// A sealer whose key is derived from `secret` (domain-separated from
    /// the cookie signing key).
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"mcp-auth-gateway upstream-token seal v1\0");
        ctx.update(secret);
        let digest = ctx.finish();
        Ok(Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, digest.as_ref())?),
        })
    }

    /// `base64url(nonce || ciphertext || tag)`.
    pub(crate) fn seal(&self, plain: &str) -> Result<String, aws_lc_rs::error::Unspecified> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)?;
        let mut data = plain.as_bytes().to_vec();
        self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut data,
        )?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The plain text, or `None` if the value was not sealed by this key.
    pub(crate) fn open(&self, sealed: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (nonce, data) = raw.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Sealer;

    #[test]
    fn sealed_values_open_only_with_their_key_and_unchanged() {
        let a = Sealer::from_secret(b"one secret of at least 32 bytes!!").unwrap();
        let b = Sealer::from_secret(b"another secret of 32 bytes or so").unwrap();
        let sealed = a.seal("upstream-refresh-token").unwrap();
        assert!(!sealed.contains("upstream"));
        assert_eq!(a.open(&sealed).as_deref(), Some("upstream-refresh-token"));
        assert_eq!(b.open(&sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.open(&String::from_utf8(tampered).unwrap()), None);
        assert_ne!(
            a.seal("x").unwrap(),
            a.seal("x").unwrap(),
            "a fresh nonce each time"
        );
    }
}

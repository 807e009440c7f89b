//! `mcp-auth-gateway token`: mint a signed JWT access token for local testing.
//!
//! Not part of the request path. It creates an ES256 or RS256 key when the
//! key file does not exist, and can write (or extend) a matching JWKS file so
//! the gateway can verify what it mints without an outside identity provider.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// What to mint.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// PEM private key (PKCS#8); created when missing.
    #[arg(long)]
    pub key: PathBuf,
    /// Algorithm for a new key (an existing key decides for itself).
    #[arg(long, value_parser = ["ES256", "RS256"], default_value = "ES256")]
    pub alg: String,
    /// `iss` claim.
    #[arg(long)]
    pub issuer: String,
    /// `aud` claim; repeat for several audiences.
    #[arg(long, required = true)]
    pub aud: Vec<String>,
    /// `sub` claim.
    #[arg(long, default_value = "dev-user")]
    pub sub: String,
    /// `scope` claim, space-separated.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// `client_id` claim.
    #[arg(long, default_value = "mcp-auth-gateway-dev")]
    pub client_id: String,
    /// Lifetime, e.g. `1h`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// `kid` header; default: the key's RFC 7638 thumbprint.
    #[arg(long)]
    pub kid: Option<String>,
    /// Write the public key to this JWKS file (other keys in it are kept).
    #[arg(long)]
    pub jwks_out: Option<PathBuf>,
}

/// Why minting failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// File trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Key generation or parsing failed.
    #[error("key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Mints the token (and writes the JWKS when asked). Returns the compact JWT.
pub fn mint(args: &TokenArgs) -> Result<String, TokenError> {
    let pem = load_or_create_key(&args.key, &args.alg)?;
    let (key, alg) = EncodingKey::from_ec_pem(&pem)
        .map(|k| (k, Algorithm::ES256))
        .or_else(|_| EncodingKey::from_rsa_pem(&pem).map(|k| (k, Algorithm::RS256)))
        .map_err(|e| {
            TokenError::Key(format!(
                "{} is not an EC P-256 or RSA key: {e}",
                args.key.display()
            ))
        })?;

    let mut jwk = Jwk::from_encoding_key(&key, alg)?;
    let kid = match &args.kid {
        Some(kid) => kid.clone(),
        None => jwk.thumbprint(ThumbprintHash::SHA256)?,
    };
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        _ => KeyAlgorithm::ES256,
    });
    if let Some(path) = &args.jwks_out {
        write_jwks(path, jwk)?;
    }

    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "iss": args.issuer,
        "sub": args.sub,
        "aud": if args.aud.len() == 1 { serde_json::json!(args.aud[0]) } else { serde_json::json!(args.aud) },
        "client_id": args.client_id,
        "iat": now,
        "exp": now + args.ttl.as_secs(),
        "jti": format!("{:x}", rand_u64()),
    });
    if !args.scope.is_empty() {
        claims["scope"] = serde_json::json!(args.scope);
    }
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid);
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

fn load_or_create_key(path: &Path, alg: &str) -> Result<Vec<u8>, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let algorithm = if alg == "RS256" {
                &rcgen::PKCS_RSA_SHA256
            } else {
                &rcgen::PKCS_ECDSA_P256_SHA256
            };
            let pair = rcgen::KeyPair::generate_for(algorithm)
                .map_err(|e| TokenError::Key(e.to_string()))?;
            let pem = pair.serialize_pem();
            write_private(path, pem.as_bytes()).map_err(io)?;
            Ok(pem.into_bytes())
        }
        Err(e) => Err(io(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn write_jwks(path: &Path, jwk: Jwk) -> Result<(), TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    let mut set = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<JwkSet>(&b).ok())
        .unwrap_or(JwkSet { keys: Vec::new() });
    set.keys.retain(|k| k.common.key_id != jwk.common.key_id);
    set.keys.push(jwk);
    let json = serde_json::to_vec_pretty(&set).map_err(|e| TokenError::Key(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write then rename, so a gateway re-reading the file never sees half of it.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A non-cryptographic unique-enough `jti` for dev tokens.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

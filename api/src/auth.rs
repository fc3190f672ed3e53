//! Who is calling: bearer JWTs verified into an [`Identity`], the three roles, and the tokens
//! `big-market token` prints.
//!
//! Keys, in order of precedence (see `docs/SECURITY.md`):
//!
//! 1. `auth.secret` — an HS256 secret shared with whatever issues tokens (the original's tokens
//!    carry the user id in the claim `openId`);
//! 2. `auth.jwks_file` — public RS256 / ES256 keys of an identity provider, chosen by `kid`
//!    (both 1 and 2 may be set: HS256 tokens use the secret, the others the JWKS);
//! 3. neither: the **development secret**, 32 random bytes written once to
//!    `auth.dev_secret_file` (`.big-market/dev-secret`, mode 0600) by whichever of `serve` or
//!    `token` runs first in that working directory. `serve` uses it only while it listens on a
//!    loopback address, so a deployment cannot run on a secret nobody configured.
//!
//! Every token must carry `exp` and the configured `iss`. The role is the claim `role`
//! (`user` when absent); a `user` token's subject is its `openId` claim (or `sub`), validated
//! as a [`UserId`].

use std::collections::HashMap;
use std::path::Path;

use domain::ids::UserId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::settings::AuthSettings;

/// What a caller may do (the permission table is `docs/SECURITY.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An end user: acts only as itself.
    User,
    /// A trusted backend: acts for any user in user operations, no operator operation.
    Service,
    /// An operator: everything, for any user.
    Admin,
}

impl Role {
    /// The claim value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "service" => Some(Self::Service),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The verified caller of one request or WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No token: only public operations.
    Anonymous,
    /// A verified token.
    Caller {
        /// The user id (role `user`) or the token's subject (`service`, `admin`).
        subject: String,
        /// Its role.
        role: Role,
    },
}

impl Identity {
    /// The subject for logs and the audit log (`anonymous` without a token).
    pub fn actor(&self) -> &str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Caller { subject, .. } => subject,
        }
    }

    /// The role, if any.
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::Anonymous => None,
            Self::Caller { role, .. } => Some(*role),
        }
    }
}

/// Why a token was refused (the message reaches the client; it names no key material).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Tokens verified recently, so a client sending the same token again is not decoded and
/// checked again: token → (identity, `exp`). Bounded; emptied when full.
type Verified = std::sync::Mutex<HashMap<String, (Identity, i64)>>;

/// Most tokens remembered at once.
const VERIFIED_CAPACITY: usize = 20_000;

/// Verifies bearer tokens.
pub struct Authenticator {
    verified: Verified,
    hs256: Option<DecodingKey>,
    jwks: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: String,
    user_claim: String,
    role_claim: String,
    leeway: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("jwks_keys", &self.jwks.len())
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// Where the HS256 secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `auth.secret`.
    Configured,
    /// The development secret file.
    Development,
    /// No HS256 secret (JWKS only).
    None,
}

/// Is `host` a loopback address (the only place the development secret is used)?
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Shortest accepted `auth.secret`.
pub const MIN_SECRET_BYTES: usize = 32;

/// The HS256 secret of `settings`: configured, the development one (created if missing), or
/// none when only a JWKS is configured.
///
/// # Errors
/// A configured secret shorter than [`MIN_SECRET_BYTES`], or a development secret file that
/// cannot be read or created.
pub fn hs256_secret(settings: &AuthSettings) -> anyhow::Result<(Option<Vec<u8>>, SecretSource)> {
    if !settings.secret.is_empty() {
        anyhow::ensure!(
            settings.secret.len() >= MIN_SECRET_BYTES,
            "auth.secret must be at least {MIN_SECRET_BYTES} bytes long"
        );
        return Ok((Some(settings.secret.as_bytes().to_vec()), SecretSource::Configured));
    }
    if !settings.jwks_file.is_empty() {
        return Ok((None, SecretSource::None));
    }
    let secret = development_secret(Path::new(&settings.dev_secret_file))?;
    Ok((Some(secret), SecretSource::Development))
}

/// Reads the development secret, creating it (32 random bytes, hex, mode 0600) when missing.
fn development_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        anyhow::ensure!(
            text.len() >= MIN_SECRET_BYTES,
            "the development secret in {} is too short; delete the file to get a new one",
            path.display()
        );
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
        .map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, hex.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(hex.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(text.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn jwks_keys(path: &str) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading auth.jwks_file {path}"))?;
    let set: JwkSet = serde_json::from_str(&text).with_context(|| format!("{path} is not a JWKS"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).with_context(|| format!("key {kid:?} of {path}"))?;
        keys.insert(kid, (key, alg));
    }
    anyhow::ensure!(!keys.is_empty(), "{path} holds no RS256 or ES256 key");
    Ok(keys)
}

impl Authenticator {
    /// The verifier of `settings` (keys loaded, development secret created if it is the one).
    ///
    /// # Errors
    /// Unreadable or invalid keys.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<(Self, SecretSource)> {
        let (secret, source) = hs256_secret(settings)?;
        let jwks = if settings.jwks_file.is_empty() {
            HashMap::new()
        } else {
            jwks_keys(&settings.jwks_file)?
        };
        Ok((
            Self {
                verified: std::sync::Mutex::new(HashMap::new()),
                hs256: secret.map(|s| DecodingKey::from_secret(&s)),
                jwks,
                issuer: settings.issuer.clone(),
                user_claim: settings.user_claim.clone(),
                role_claim: settings.role_claim.clone(),
                leeway: settings.leeway_secs,
            },
            source,
        ))
    }

    /// The identity of an `Authorization` header value (`None`: anonymous).
    ///
    /// # Errors
    /// A header that is not `Bearer <token>`, or a token that does not verify.
    pub fn authorization(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        let Some(value) = header else {
            return Ok(Identity::Anonymous);
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError("the Authorization header must be `Bearer <token>`".into()))?;
        self.verify(token)
    }

    /// Verifies a token: signature, `exp`, `nbf`, `iss`, role and subject.
    ///
    /// # Errors
    /// Any failed check, with a message that says which.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some((identity, exp)) = remembered {
            // The signature, issuer and claims of a token never change; only time passes.
            if now <= exp.saturating_add(i64::try_from(self.leeway).unwrap_or(0)) {
                return Ok(identity);
            }
            return Err(AuthError("token expired".into()));
        }
        let identity = self.verify_fully(token)?;
        Ok(identity)
    }

    fn verify_fully(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError(format!("malformed token: {e}")))?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => (
                self.hs256
                    .as_ref()
                    .ok_or_else(|| AuthError("HS256 tokens are not accepted here".into()))?,
                Algorithm::HS256,
            ),
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header.kid.clone().unwrap_or_default();
                let (key, alg) = self
                    .jwks
                    .get(&kid)
                    .ok_or_else(|| AuthError(format!("unknown signing key {kid:?}")))?;
                if *alg != header.alg {
                    return Err(AuthError(format!("key {kid:?} does not sign {:?}", header.alg)));
                }
                (key, *alg)
            }
            other => return Err(AuthError(format!("algorithm {other:?} is not accepted"))),
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            AuthError(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".into(),
                ErrorKind::InvalidIssuer => "token of another issuer".into(),
                ErrorKind::InvalidSignature => "token signature does not verify".into(),
                ErrorKind::ImmatureSignature => "token not valid yet".into(),
                ErrorKind::MissingRequiredClaim(c) => format!("token without the `{c}` claim"),
                _ => format!("invalid token: {e}"),
            })
        })?;
        let identity = self.identity(&data.claims)?;
        if let Some(exp) = data.claims.get("exp").and_then(Value::as_i64) {
            let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(token.to_owned(), (identity.clone(), exp));
        }
        Ok(identity)
    }

    fn identity(&self, claims: &Value) -> Result<Identity, AuthError> {
        let role = match claims.get(&self.role_claim) {
            None | Some(Value::Null) => Role::User,
            Some(Value::String(r)) => Role::parse(r).ok_or_else(|| AuthError(format!("unknown role {r:?}")))?,
            Some(other) => return Err(AuthError(format!("the role claim must be a string, not {other}"))),
        };
        let subject = match role {
            Role::User => claims.get(&self.user_claim).or_else(|| claims.get("sub")),
            Role::Service | Role::Admin => claims.get("sub").or_else(|| claims.get(&self.user_claim)),
        }
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError(format!("token without a `{}` or `sub` claim", self.user_claim)))?;
        if role == Role::User {
            UserId::parse(subject).map_err(|e| AuthError(format!("the token's user id is invalid: {}", e.0)))?;
        }
        Ok(Identity::Caller {
            subject: subject.to_owned(),
            role,
        })
    }
}

/// Signs an HS256 token for `subject` with `role`, valid for `auth.token_ttl_secs`, with the
/// secret `serve` verifies with (`big-market token`).
///
/// # Errors
/// No HS256 secret (a JWKS-only deployment gets its tokens from its identity provider), or an
/// invalid user id.
pub fn issue(settings: &AuthSettings, subject: &str, role: Role) -> anyhow::Result<String> {
    let (secret, _) = hs256_secret(settings)?;
    let secret = secret.ok_or_else(|| {
        anyhow::anyhow!("no HS256 secret: this configuration verifies tokens with auth.jwks_file only")
    })?;
    if role == Role::User {
        UserId::parse(subject).map_err(|e| anyhow::anyhow!("invalid user id: {}", e.0))?;
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": settings.issuer,
        "sub": subject,
        "iat": now,
        "exp": now + settings.token_ttl_secs.max(60) as i64,
        settings.role_claim.clone(): role.as_str(),
    });
    if role == Role::User {
        claims[settings.user_claim.as_str()] = json!(subject);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .map_err(|e| anyhow::anyhow!("signing the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> AuthSettings {
        AuthSettings {
            dev_secret_file: dir.join("secret").display().to_string(),
            ..AuthSettings::default()
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bm-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_token_printed_before_serve_ever_ran_is_accepted_by_serve_in_the_same_directory() {
        let dir = temp_dir("dev");
        let s = settings(&dir);
        let token = issue(&s, "xiaofuge", Role::User).unwrap();
        let (auth, source) = Authenticator::new(&s).unwrap();
        assert_eq!(source, SecretSource::Development);
        assert_eq!(
            auth.verify(&token).unwrap(),
            Identity::Caller {
                subject: "xiaofuge".into(),
                role: Role::User
            }
        );
        let admin = issue(&s, "ops", Role::Admin).unwrap();
        assert_eq!(auth.verify(&admin).unwrap().role(), Some(Role::Admin));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_of_another_secret_issuer_or_past_their_expiry_are_refused() {
        let dir = temp_dir("refuse");
        let s = AuthSettings {
            secret: "a".repeat(40),
            ..settings(&dir)
        };
        let (auth, _) = Authenticator::new(&s).unwrap();
        let other_secret = issue(
            &AuthSettings {
                secret: "b".repeat(40),
                ..s.clone()
            },
            "u1",
            Role::User,
        )
        .unwrap();
        assert_eq!(
            auth.verify(&other_secret).unwrap_err().0,
            "token signature does not verify"
        );
        let other_issuer = issue(
            &AuthSettings {
                issuer: "someone-else".into(),
                ..s.clone()
            },
            "u1",
            Role::User,
        )
        .unwrap();
        assert_eq!(auth.verify(&other_issuer).unwrap_err().0, "token of another issuer");
        let now = chrono::Utc::now().timestamp();
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"iss": "big-market", "openId": "u1", "exp": now - 3600}),
            &EncodingKey::from_secret(s.secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(auth.verify(&expired).unwrap_err().0, "token expired");
        assert!(
            !dir.exists(),
            "a configured secret must not create the development file"
        );
    }

    #[test]
    fn the_originals_token_shape_with_the_user_in_open_id_is_a_user() {
        let s = AuthSettings {
            secret: "s".repeat(32),
            ..AuthSettings::default()
        };
        let (auth, _) = Authenticator::new(&s).unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"iss": "big-market", "openId": "oXyz_123", "exp": now + 60}),
            &EncodingKey::from_secret(s.secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            auth.authorization(Some(&format!("Bearer {token}"))).unwrap(),
            Identity::Caller {
                subject: "oXyz_123".into(),
                role: Role::User
            }
        );
        assert_eq!(auth.authorization(None).unwrap(), Identity::Anonymous);
        assert!(auth.authorization(Some("Basic Zm9vOmJhcg==")).is_err());
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"iss": "big-market", "openId": "u"}),
            &EncodingKey::from_secret(s.secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(auth.verify(&no_exp).unwrap_err().0, "token without the `exp` claim");
    }

    #[test]
    fn a_remembered_token_is_still_refused_once_it_expires() {
        let s = AuthSettings {
            secret: "r".repeat(32),
            leeway_secs: 0,
            ..AuthSettings::default()
        };
        let (auth, _) = Authenticator::new(&s).unwrap();
        let exp = chrono::Utc::now().timestamp() + 1;
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"iss": "big-market", "openId": "u1", "exp": exp}),
            &EncodingKey::from_secret(s.secret.as_bytes()),
        )
        .unwrap();
        assert!(auth.verify(&token).is_ok());
        assert!(auth.verify(&token).is_ok(), "the second time from memory");
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        assert_eq!(auth.verify(&token).unwrap_err().0, "token expired");
    }

    #[test]
    fn short_secrets_are_refused_and_loopback_is_recognised() {
        let s = AuthSettings {
            secret: "short".into(),
            ..AuthSettings::default()
        };
        assert!(Authenticator::new(&s).is_err());
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "10.0.0.1", "::", "example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}

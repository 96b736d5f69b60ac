//! Tokens: the signing and verification keys (an HS256 secret, or RS256/EdDSA PEM files),
//! access-token claims, login (access + refresh token), refresh-token rotation with
//! replay detection, logout, and bearer authentication with revocation checks.

use crate::domain::audit::AuditAction;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{AuthService, TokenResponse, random_hex, same, sha256_hex, signing_secret};
use crate::config::{AuthSettings, JwtAlgorithm};
use crate::domain::principal::{Principal, Scope, Tenant};
use crate::domain::unix_now;
use crate::services::error::{Result, ServiceError};
use crate::store::{ApiKeyRecord, RefreshRecord};

const REFRESH_PREFIX: &str = "rbr";

/// How tokens are signed here (if at all) and verified.
pub(super) struct Keys {
    algorithm: Algorithm,
    /// `None` when tokens are verified only (an identity provider signs them).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
}

fn read_pem(path: &Path, what: &str) -> std::result::Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading the JWT {what} {}: {e}", path.display()))
}

impl Keys {
    pub(super) fn new(s: &AuthSettings, data_dir: &Path) -> std::result::Result<Self, String> {
        let bad = |e: jsonwebtoken::errors::Error| format!("JWT key: {e}");
        let (algorithm, encoding, decoding) = match s.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = signing_secret(s, data_dir).map_err(|e| e.to_string())?;
                (
                    Algorithm::HS256,
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::EdDSA => {
                let rsa = s.jwt_algorithm == JwtAlgorithm::Rs256;
                let public = read_pem(&s.jwt_public_key_file, "public key")?;
                let decoding = if rsa {
                    DecodingKey::from_rsa_pem(&public)
                } else {
                    DecodingKey::from_ed_pem(&public)
                }
                .map_err(bad)?;
                let encoding = if s.jwt_private_key_file.as_os_str().is_empty() {
                    None
                } else {
                    let private = read_pem(&s.jwt_private_key_file, "private key")?;
                    Some(
                        if rsa {
                            EncodingKey::from_rsa_pem(&private)
                        } else {
                            EncodingKey::from_ed_pem(&private)
                        }
                        .map_err(bad)?,
                    )
                };
                let algorithm = if rsa {
                    Algorithm::RS256
                } else {
                    Algorithm::EdDSA
                };
                (algorithm, encoding, decoding)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[s.jwt_issuer.as_str()]);
        validation.set_audience(&[s.jwt_audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = s.clock_skew_secs;
        Ok(Self {
            algorithm,
            encoding,
            decoding,
            validation,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    sub: String,
    tenant: String,
    scope: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
    /// The API key a token minted here was issued for; it must still exist. Tokens from
    /// an identity provider have none and are trusted on their signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The login (refresh family) the token belongs to; logout revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fam: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: secrecy::SecretString,
}

fn jti_id(jti: &str) -> String {
    format!("jti:{jti}")
}

fn family_id(family: &str) -> String {
    format!("fam:{family}")
}

fn scope_string(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl AuthService {
    fn unauthorized(&self, reason: &str, message: &str) -> ServiceError {
        self.count_failure(reason);
        ServiceError::Unauthorized(message.into())
    }

    /// Access and refresh token for a principal that just proved who it is; a new login
    /// starts a new refresh family.
    pub(super) async fn login(&self, principal: Principal) -> Result<TokenResponse> {
        let family = random_hex(16);
        self.mint(&principal, &family).await
    }

    async fn mint(&self, principal: &Principal, family: &str) -> Result<TokenResponse> {
        let encoding = self.keys.encoding.as_ref().ok_or_else(|| {
            ServiceError::NotConfigured(
                "tokens are issued by the identity provider (no jwt_private_key_file)".into(),
            )
        })?;
        let now = unix_now();
        let s = &self.settings;
        let scope = scope_string(&principal.scopes);
        let claims = Claims {
            sub: principal.subject.clone(),
            tenant: principal.tenant.to_string(),
            scope: scope.clone(),
            iss: s.jwt_issuer.clone(),
            aud: s.jwt_audience.clone(),
            iat: now,
            exp: now + s.access_token_ttl_secs.get(),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            key: Some(principal.subject.clone()),
            fam: Some(family.to_owned()),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(self.keys.algorithm), &claims, encoding)
                .map_err(|e| ServiceError::Internal(format!("signing token: {e}")))?;
        let id = random_hex(16);
        let refresh_token = format!("{REFRESH_PREFIX}_{id}_{}", random_hex(32));
        self.store
            .insert_refresh(RefreshRecord {
                id,
                family: family.to_owned(),
                key_id: principal.subject.clone(),
                hash: sha256_hex(&refresh_token),
                expires_at: now + s.refresh_token_ttl_secs.get(),
                used: false,
            })
            .await?;
        self.purge_now_and_then(now).await;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: s.access_token_ttl_secs.get(),
            refresh_token,
            refresh_expires_in: s.refresh_token_ttl_secs.get(),
            scope,
        })
    }

    /// Forgets expired revocations and refresh tokens, at most once an hour.
    async fn purge_now_and_then(&self, now: u64) {
        let last = self.last_purge.load(std::sync::atomic::Ordering::Relaxed);
        if now < last + 3600
            || self
                .last_purge
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        if let Err(e) = self.store.purge_expired(now).await {
            tracing::warn!(error = %e, "purging expired tokens");
        }
    }

    /// Exchanges a refresh token for a new access and refresh token. A token can be used
    /// once; presenting it again revokes its whole family, since one of the two holders
    /// is not who they claim.
    pub async fn refresh(&self, req: RefreshRequest) -> Result<TokenResponse> {
        let invalid = || self.unauthorized("invalid_refresh_token", "invalid refresh token");
        let token = req.refresh_token.expose_secret();
        let mut parts = token.splitn(3, '_');
        let (Some(REFRESH_PREFIX), Some(id), Some(_)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let record = self.store.get_refresh(id).await?.ok_or_else(invalid)?;
        if !same(&record.hash, &sha256_hex(token)) || record.expires_at < unix_now() {
            return Err(invalid());
        }
        let family = family_id(&record.family);
        if self.store.is_revoked(&family).await? {
            return Err(self.unauthorized("revoked_token", "this login was revoked"));
        }
        if !self.store.use_refresh(id).await? {
            self.store
                .revoke(
                    &family,
                    unix_now() + self.settings.refresh_token_ttl_secs.get(),
                )
                .await?;
            tracing::warn!(family = %record.family, key = %record.key_id,
                "refresh token replayed; every token of its login is revoked");
            crate::context::record_audit_action(AuditAction::RefreshReplayed);
            if let Ok(Some(key)) = self.store.get_key(&record.key_id).await {
                crate::context::record_principal(&key.id, &key.tenant);
            }
            return Err(self.unauthorized(
                "refresh_token_reuse",
                "refresh token already used; this login is revoked",
            ));
        }
        let key =
            self.store.get_key(&record.key_id).await?.ok_or_else(|| {
                self.unauthorized("revoked_key", "the login's API key was revoked")
            })?;
        let principal = super::principal_of(&key)?;
        crate::context::record_principal(&principal.subject, principal.tenant.as_str());
        self.mint(&principal, &record.family).await
    }

    /// Revokes the bearer token until it expires, and its login's refresh tokens.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let claims = self.verify(token).await?;
        let until = claims.exp.max(unix_now());
        if let Some(jti) = &claims.jti {
            self.store.revoke(&jti_id(jti), until).await?;
        }
        if let Some(fam) = &claims.fam {
            let until = unix_now() + self.settings.refresh_token_ttl_secs.get();
            self.store.revoke(&family_id(fam), until).await?;
        }
        Ok(())
    }

    /// Signature, expiry, issuer, audience, and neither the token nor its login revoked.
    async fn verify(&self, token: &str) -> Result<Claims> {
        Ok(self.verify_with_key(token).await?.0)
    }

    /// [`AuthService::verify`], reading the API key the token names in the same store
    /// call as its revocations (one call on every authenticated request).
    async fn verify_with_key(&self, token: &str) -> Result<(Claims, Option<ApiKeyRecord>)> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.keys.decoding, &self.keys.validation)
                .map_err(|e| self.unauthorized("invalid_token", &format!("invalid token: {e}")))?
                .claims;
        let ids: Vec<String> = [
            claims.jti.as_deref().map(jti_id),
            claims.fam.as_deref().map(family_id),
        ]
        .into_iter()
        .flatten()
        .collect();
        let state = self.store.token_state(&ids, claims.key.as_deref()).await?;
        if state.revoked {
            return Err(self.unauthorized("revoked_token", "the token was revoked"));
        }
        Ok((claims, state.key))
    }

    /// The principal a bearer token stands for. A token minted here never carries more
    /// scopes than its API key has now, and dies with the key.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let (claims, key) = self.verify_with_key(token).await?;
        let tenant = Tenant::parse(&claims.tenant)
            .ok_or_else(|| self.unauthorized("invalid_token", "the token's tenant is invalid"))?;
        let scopes: Vec<Scope> = claims
            .scope
            .split_whitespace()
            .filter_map(Scope::parse)
            .collect();
        if claims.key.is_none() {
            return Ok(Principal {
                subject: claims.sub,
                tenant,
                scopes,
            });
        }
        let record =
            key.ok_or_else(|| self.unauthorized("revoked_key", "the token's API key was revoked"))?;
        if tenant.as_str() != record.tenant {
            return Err(self.unauthorized("invalid_token", "invalid credentials"));
        }
        Ok(Principal {
            subject: record.id.clone(),
            tenant,
            scopes: scopes
                .into_iter()
                .filter(|s| record.scopes.contains(s))
                .collect(),
        })
    }
}

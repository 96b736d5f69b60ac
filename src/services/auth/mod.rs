//! Authentication: API keys (shown once, stored as SHA-256, scoped, tenant-bound) and the
//! tokens issued for them (see [`tokens`]). A token names the key it came from, so
//! deleting the key revokes its tokens on the next request.

mod tokens;

pub use tokens::RefreshRequest;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::AuthSettings;
use crate::domain::Name;
use crate::domain::principal::{Principal, Scope, Tenant};
use crate::domain::unix_now;
use crate::metrics::Metrics;
use crate::services::error::{Result, ServiceError};
use crate::store::{ApiKeyRecord, AuthStore};

const KEY_PREFIX: &str = "rbk";
/// Subject of the principal used for requests without credentials.
pub const ANONYMOUS: &str = "anonymous";
const BOOTSTRAP_FILE: &str = "bootstrap-admin.key";
pub(crate) const SECRET_FILE: &str = "jwt-secret";

pub struct AuthService {
    store: Arc<dyn AuthStore>,
    keys: tokens::Keys,
    settings: AuthSettings,
    metrics: Arc<Metrics>,
    /// When expired revocations and refresh tokens were last purged (epoch seconds).
    last_purge: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `api_key`, the only grant.
    #[schema(pattern = "^api_key$")]
    pub grant_type: String,
    #[schema(value_type = Option<String>)]
    pub api_key: Option<SecretString>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Single use: exchange it at `POST /auth/refresh` for a new pair.
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub scope: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// At most 128 characters, not all whitespace; kept trimmed.
    #[schema(pattern = r"\S", max_length = 128)]
    pub name: String,
    pub scopes: Vec<Scope>,
    #[schema(value_type = Option<Name>)]
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub created_at: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The only time the key is shown.
    pub key: String,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(r: ApiKeyRecord) -> Self {
        KeyView {
            id: r.id,
            name: r.name,
            tenant: r.tenant,
            scopes: r.scopes,
            created_at: r.created_at,
        }
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Equal-time comparison, so a hash check leaks nothing through timing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn bad_credentials_message() -> ServiceError {
    ServiceError::Unauthorized("invalid credentials".into())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The configured signing secret, or one generated on first start and kept in the data dir.
fn signing_secret(settings: &AuthSettings, data_dir: &Path) -> std::io::Result<Vec<u8>> {
    let configured = settings.jwt_secret.expose_secret();
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    if !path.exists() {
        write_private(&path, &random_hex(32))?;
    }
    Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec())
}

impl AuthService {
    /// Fails when the configured signing or verification keys cannot be loaded.
    pub fn new(
        store: Arc<dyn AuthStore>,
        settings: AuthSettings,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> std::result::Result<Self, String> {
        Ok(Self {
            store,
            keys: tokens::Keys::new(&settings, data_dir)?,
            settings,
            metrics,
            last_purge: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn count_failure(&self, reason: &str) {
        self.metrics
            .auth_failures_total
            .with_label_values(&[reason])
            .inc();
    }

    fn bad_credentials(&self) -> ServiceError {
        self.count_failure("invalid_api_key");
        bad_credentials_message()
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// On an empty key store, creates an admin key for the bootstrap tenant, writes it to
    /// `<data_dir>/bootstrap-admin.key` (0600) and returns it so start-up can print it.
    pub async fn bootstrap(&self, data_dir: &Path) -> Result<Option<String>> {
        if self.store.count_keys().await? > 0 {
            return Ok(None);
        }
        // The file is written before the key is stored: if storing fails the next start
        // finds an empty store and tries again, so nobody is ever locked out.
        let (record, key) = new_key(
            "bootstrap-admin".into(),
            self.settings.bootstrap_tenant.clone(),
            vec![Scope::Admin],
        );
        let path = data_dir.join(BOOTSTRAP_FILE);
        let _ = std::fs::remove_file(&path);
        write_private(&path, &format!("{key}\n"))
            .map_err(|e| ServiceError::Internal(format!("writing {}: {e}", path.display())))?;
        self.store.insert_key(record).await?;
        Ok(Some(key))
    }

    async fn insert_key(
        &self,
        name: String,
        tenant: String,
        scopes: Vec<Scope>,
    ) -> Result<CreatedKey> {
        let (record, key) = new_key(name, tenant, scopes);
        self.store.insert_key(record.clone()).await?;
        Ok(CreatedKey {
            view: record.into(),
            key,
        })
    }

    /// The principal an `X-API-Key` value stands for.
    pub async fn authenticate_key(&self, key: &str) -> Result<Principal> {
        let mut parts = key.splitn(3, '_');
        let (Some(KEY_PREFIX), Some(id), Some(_)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(self.bad_credentials());
        };
        let record = self
            .store
            .get_key(id)
            .await?
            .ok_or_else(|| self.bad_credentials())?;
        if !same(&record.hash, &sha256_hex(key)) {
            return Err(self.bad_credentials());
        }
        principal_of(&record)
    }

    pub async fn issue_token(&self, req: TokenRequest) -> Result<TokenResponse> {
        if req.grant_type != "api_key" {
            return Err(ServiceError::BadRequest(format!(
                "unsupported grant_type {:?}; use \"api_key\"",
                req.grant_type
            )));
        }
        let key = req.api_key.ok_or_else(|| {
            ServiceError::Invalid("api_key is required for grant_type api_key".into())
        })?;
        let principal = self.authenticate_key(key.expose_secret()).await?;
        crate::context::record_principal(&principal.subject, principal.tenant.as_str());
        self.login(principal).await
    }

    /// Operators (admins of the bootstrap tenant) may act on any tenant; other admins on
    /// their own.
    fn target_tenant(&self, who: &Principal, requested: Option<String>) -> Result<String> {
        match requested {
            None => Ok(who.tenant.to_string()),
            Some(t) if t == who.tenant.as_str() => Ok(t),
            Some(t) if self.is_operator(who) => {
                Tenant::parse(&t).map(|t| t.to_string()).ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "tenant {t:?} must match ^[A-Za-z0-9][A-Za-z0-9_-]{{0,63}}$"
                    ))
                })
            }
            Some(_) => Err(ServiceError::Forbidden(
                "only operators may manage other tenants' keys".into(),
            )),
        }
    }

    fn is_operator(&self, who: &Principal) -> bool {
        who.tenant.as_str() == self.settings.bootstrap_tenant && who.allows(Scope::Admin)
    }

    pub async fn create_key(&self, who: &Principal, req: CreateKeyRequest) -> Result<CreatedKey> {
        let name = req.name.trim().to_owned();
        if name.is_empty() || req.name.chars().count() > 128 {
            return Err(ServiceError::Invalid(
                "name must be 1 to 128 characters".into(),
            ));
        }
        // Key names are shown in listings and the audit trail, as ids are.
        if !crate::domain::is_displayable_id(&name) {
            return Err(ServiceError::Invalid(
                "name must not contain control or bidirectional-text characters".into(),
            ));
        }
        if req.scopes.is_empty() {
            return Err(ServiceError::Invalid("scopes must not be empty".into()));
        }
        let tenant = self.target_tenant(who, req.tenant)?;
        let mut scopes = req.scopes;
        scopes.sort();
        scopes.dedup();
        self.insert_key(name, tenant, scopes).await
    }

    pub async fn list_keys(&self, who: &Principal, tenant: Option<String>) -> Result<Vec<KeyView>> {
        let tenant = self.target_tenant(who, tenant)?;
        let mut keys: Vec<KeyView> = self
            .store
            .list_keys(Some(&tenant))
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    pub async fn delete_key(&self, who: &Principal, id: &str) -> Result<()> {
        let not_found = || ServiceError::NotFound(format!("API key {id:?} does not exist"));
        let record = self.store.get_key(id).await?.ok_or_else(not_found)?;
        if record.tenant != who.tenant.as_str() && !self.is_operator(who) {
            return Err(not_found());
        }
        self.store.delete_key(id).await?;
        Ok(())
    }

    /// The principal for callers without credentials, when anonymous reads are enabled.
    pub fn anonymous(&self) -> Option<Principal> {
        if !self.settings.anonymous_read {
            return None;
        }
        Some(Principal {
            subject: ANONYMOUS.into(),
            tenant: Tenant::parse(&self.settings.anonymous_tenant)?,
            scopes: vec![Scope::Read],
        })
    }
}

/// A fresh key `rbk_<id>_<secret>` and the record that stores only its hash.
fn new_key(name: String, tenant: String, scopes: Vec<Scope>) -> (ApiKeyRecord, String) {
    let id = random_hex(8);
    let key = format!("{KEY_PREFIX}_{id}_{}", random_hex(32));
    let record = ApiKeyRecord {
        id,
        name,
        tenant,
        scopes,
        hash: sha256_hex(&key),
        created_at: unix_now(),
    };
    (record, key)
}

fn principal_of(record: &ApiKeyRecord) -> Result<Principal> {
    Ok(Principal {
        subject: record.id.clone(),
        tenant: Tenant::parse(&record.tenant)
            .ok_or_else(|| ServiceError::Internal("stored key has a bad tenant".into()))?,
        scopes: record.scopes.clone(),
    })
}

//! `AppState`: the stores, services and settings every handler can reach; cheap to clone.

use std::sync::Arc;

use crate::config::Settings;
use crate::services::auth::AuthService;
use crate::store::{AuthStore, GraphStore, VectorStore};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub vectors: Arc<dyn VectorStore>,
    pub graph: Arc<dyn GraphStore>,
    pub auth_store: Arc<dyn AuthStore>,
    pub auth: Arc<AuthService>,
}

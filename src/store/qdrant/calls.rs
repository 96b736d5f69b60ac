//! The Qdrant store's own requests that several trait methods share (connecting,
//! reading a collection's spec, counting, deleting, payload indexes), the physical
//! collection names, and the mapping of the client's errors.

use std::sync::Arc;

use qdrant_client::Qdrant;
use qdrant_client::QdrantError;
use qdrant_client::qdrant::{
    CollectionStatus, CountPointsBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    RetrievedPoint, points_selector::PointsSelectorOneOf, vectors_config::Config,
};
use secrecy::ExposeSecret;

use super::QdrantVectorStore;
use crate::config::{QdrantSettings, VectorSettings};
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionSpec, Filter, PayloadIndex, Record};
use crate::store::qdrant_mapping::server as map;
use crate::store::resilient::{Resilience, Retry};
use crate::store::{ErrorKind, StoreError, StoreResult};

pub(super) fn qdrant_err(e: QdrantError) -> StoreError {
    // gRPC status codes (tonic::Code), by number to avoid depending on tonic here.
    let kind = match &e {
        QdrantError::ResponseError { status } => match status.code() as i32 {
            5 => ErrorKind::NotFound,
            6 => ErrorKind::Conflict,
            3 | 9 | 11 => ErrorKind::Invalid,
            14 | 10 => ErrorKind::Unavailable,
            4 | 1 => ErrorKind::Timeout,
            _ => ErrorKind::Upstream,
        },
        QdrantError::ResourceExhaustedError { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Upstream,
    };
    StoreError::new(kind, format!("qdrant: {e}"))
}

pub(super) const PREFIX: &str = "ragbrain.";

pub(super) fn physical(tenant: &Tenant, name: &str) -> String {
    format!("{PREFIX}{tenant}.{name}")
}

pub(super) fn invalid_filter(message: String) -> StoreError {
    StoreError::invalid(message)
}

/// A point the server returned, when it is the tenant's.
pub(super) fn record(p: RetrievedPoint, tenant: &Tenant) -> Option<Record> {
    Some(Record {
        payload: map::owned_payload(p.payload, tenant)?,
        id: map::point_id_back(p.id)?,
        vector: map::dense_vector(p.vectors),
    })
}

pub(super) fn missing(name: &str) -> StoreError {
    StoreError::not_found(format!("collection {name:?} does not exist"))
}

/// What the server says of a collection, as far as the store needs it.
pub(super) struct Described {
    pub spec: CollectionSpec,
    pub indexed: u64,
    /// An optimisation is running (status yellow).
    pub optimizing: bool,
    pub payload_indexes: Vec<PayloadIndex>,
}

impl QdrantVectorStore {
    pub fn connect(
        settings: &VectorSettings,
        qdrant: &QdrantSettings,
        guard: Arc<Resilience>,
        timeout: std::time::Duration,
    ) -> StoreResult<Self> {
        let mut builder = Qdrant::from_url(qdrant.url.as_str())
            .timeout(timeout)
            .connect_timeout(timeout)
            .skip_compatibility_check();
        let key = qdrant.api_key.expose_secret();
        if !key.is_empty() {
            builder = builder.api_key(key.to_owned());
        }
        let client = builder.build().map_err(qdrant_err)?;
        Ok(Self {
            client,
            guard,
            default_name: settings.default_collection.clone(),
            default_spec: CollectionSpec {
                dim: settings.default_dim.get(),
                distance: settings.default_distance,
            },
            quantization: settings.quantization,
        })
    }

    /// Creates a payload index (the tenant's, or one a client asked for) and waits for it.
    pub(super) async fn create_field_index(
        &self,
        request: CreateFieldIndexCollectionBuilder,
    ) -> StoreResult<()> {
        let request = request.wait(true);
        self.guard
            .run("create_field_index", Retry::Idempotent, || async {
                self.client
                    .create_field_index(request.clone())
                    .await
                    .map(drop)
                    .map_err(qdrant_err)
            })
            .await
    }

    pub(super) async fn spec(&self, tenant: &Tenant, name: &str) -> StoreResult<Option<Described>> {
        let physical = physical(tenant, name);
        let info = self
            .guard
            .run("collection_info", Retry::Idempotent, || async {
                match self.client.collection_info(&physical).await {
                    Ok(r) => Ok(r.result),
                    Err(e) => match qdrant_err(e) {
                        e if e.kind == ErrorKind::NotFound => Ok(None),
                        e => Err(e),
                    },
                }
            })
            .await?;
        let Some(info) = info else { return Ok(None) };
        let params = info
            .config
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config);
        let Some(Config::Params(params)) = params else {
            return Err(StoreError::upstream(format!(
                "qdrant collection {physical} has no single dense vector"
            )));
        };
        let distance = map::distance_back(params.distance).ok_or_else(|| {
            StoreError::upstream(format!(
                "qdrant collection {physical} uses another distance"
            ))
        })?;
        let spec = CollectionSpec {
            dim: params.size as usize,
            distance,
        };
        Ok(Some(Described {
            spec,
            indexed: info.indexed_vectors_count.unwrap_or(0),
            // Yellow: an optimisation is running. Not grey ("pending"), which after a
            // server restart lasts until the next write triggers the optimisers.
            optimizing: info.status == CollectionStatus::Yellow as i32,
            payload_indexes: map::payload_indexes(&info.payload_schema),
        }))
    }

    /// The names of every collection on the server, ours and others'.
    pub(super) async fn collection_names(&self) -> StoreResult<Vec<String>> {
        self.guard
            .run("list_collections", Retry::Idempotent, || async {
                self.client
                    .list_collections()
                    .await
                    .map(|r| r.collections.into_iter().map(|c| c.name).collect())
                    .map_err(qdrant_err)
            })
            .await
    }

    pub(super) async fn count(
        &self,
        physical: &str,
        tenant: &Tenant,
        filter: Option<&Filter>,
    ) -> StoreResult<u64> {
        let scoped = map::search_filter(tenant, filter, None).map_err(invalid_filter)?;
        self.guard
            .run("count", Retry::Idempotent, || async {
                let request = CountPointsBuilder::new(physical)
                    .filter(scoped.clone())
                    .exact(true);
                self.client
                    .count(request)
                    .await
                    .map(|r| r.result.map_or(0, |c| c.count))
                    .map_err(qdrant_err)
            })
            .await
    }

    /// Deletes the selected points, waiting until the deletion is applied.
    pub(super) async fn delete(
        &self,
        op: &'static str,
        physical: &str,
        points: PointsSelectorOneOf,
    ) -> StoreResult<()> {
        self.guard
            .run(op, Retry::Idempotent, || async {
                let request = DeletePointsBuilder::new(physical)
                    .points(points.clone())
                    .wait(true);
                self.client
                    .delete_points(request)
                    .await
                    .map(drop)
                    .map_err(qdrant_err)
            })
            .await
    }

    pub(super) async fn require(&self, tenant: &Tenant, name: &str) -> StoreResult<String> {
        match self.spec(tenant, name).await? {
            Some(_) => Ok(physical(tenant, name)),
            None => Err(missing(name)),
        }
    }
}

//! Vector operations: validate the request against the configured limits, then call the
//! store for the caller's tenant. Transport-agnostic: tests and other front ends call
//! these directly.

use std::fmt::Display;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Limits, Settings};
use crate::domain::Name;
use crate::domain::principal::Principal;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    CollectionInfo, CollectionName, CollectionSpec, ConditionKind, Distance, Filter, PayloadIndex,
    Point, PointId, Record, TENANT_KEY, is_indexable_field, squared_length,
};
use crate::embed::Embedder;
use crate::services::budget::{ITEM, JSON_FLOAT, ReadBudget, Reserved, worst};
use crate::services::error::{Result, ServiceError};
use crate::services::quota::{Kept, Quotas};
use crate::services::{bounded, bounded_json};
use crate::store::{Created, ErrorKind, StoreError, StoreResult, VectorStore};

mod search;

/// Creates the collection unless it is new and `tenant` already has `max` (a
/// `Conflict`); an existing one answers as `create_collection` does. Creates that race
/// may pass `max` by the few in flight.
pub(crate) async fn create_within(
    store: &dyn VectorStore,
    tenant: &Tenant,
    name: &CollectionName,
    spec: CollectionSpec,
    max: usize,
) -> StoreResult<Created> {
    if let Err(e) = store.collection_spec(tenant, name).await {
        if e.kind != ErrorKind::NotFound {
            return Err(e);
        }
        room_for_one_more(store, tenant, max).await?;
    }
    store.create_collection(tenant, name, spec).await
}

/// A `Conflict` when `tenant` has `max` collections already.
pub(crate) async fn room_for_one_more(
    store: &dyn VectorStore,
    tenant: &Tenant,
    max: usize,
) -> StoreResult<()> {
    let count = store.collection_count(tenant).await?;
    if count >= max {
        return Err(StoreError::new(
            ErrorKind::Conflict,
            format!(
                "the tenant has {count} collections, the most limits.max_collections \
                 allows; drop one first"
            ),
        ));
    }
    Ok(())
}

pub(crate) use search::reciprocal_rank;
pub use search::{SearchMode, SearchRequest, SearchResponse};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    #[schema(minimum = 1)]
    pub dim: usize,
    #[serde(default = "default_distance")]
    pub distance: Distance,
}

fn default_distance() -> Distance {
    Distance::Cosine
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
    #[schema(min_items = 1)]
    pub points: Vec<PointInput>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointInput {
    pub id: PointId,
    /// The collection's dimension of finite numbers, of length at most about 9.2e18
    /// (longer ones would overflow the scores).
    #[schema(min_items = 1)]
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpsertResponse {
    pub collection: String,
    pub upserted: usize,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
    /// Exactly one of `ids` and `filter`.
    #[schema(min_items = 1)]
    pub ids: Option<Vec<PointId>>,
    pub filter: Option<Filter>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteResponse {
    pub deleted: usize,
}

/// Collections and points: validation against the limits, then the vector store; text
/// queries are embedded here.
#[derive(Clone)]
pub struct VectorService {
    settings: Arc<Settings>,
    vectors: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    /// The tenants' storage quotas, which ingest checks too.
    pub(crate) quotas: Quotas,
    /// Room for large answers, which hybrid search takes too.
    pub(crate) budget: ReadBudget,
}

impl VectorService {
    pub fn new(
        settings: Arc<Settings>,
        vectors: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        (quotas, budget): (Quotas, ReadBudget),
    ) -> Self {
        Self {
            settings,
            vectors,
            embedder,
            quotas,
            budget,
        }
    }

    /// The most bytes of JSON one point of an answer may take.
    pub(crate) fn point_worst(&self, with_payload: bool, with_vector: bool) -> usize {
        let limits = &self.settings.limits;
        let payload = if with_payload {
            limits.max_payload_bytes.get()
        } else {
            0
        };
        let vector = if with_vector {
            JSON_FLOAT * limits.max_vector_dim.get()
        } else {
            0
        };
        ITEM + payload + vector
    }
}

/// Checks a payload field a client wants indexed.
fn indexable(field: &str) -> Result<()> {
    if is_indexable_field(field) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "field {field:?} cannot be indexed: use a payload key (letters, digits, _ and -, \
             starting with a letter or _; dots for nested keys; at most 128 bytes), not \
             {TENANT_KEY:?}"
        )))
    }
}

impl VectorService {
    pub(crate) fn collection_name(&self, name: Option<String>) -> Result<CollectionName> {
        let name = name.unwrap_or_else(|| self.settings.vectors.default_collection.clone());
        collection_name(&name)
    }

    pub async fn create_collection(
        &self,
        who: &Principal,
        name: &str,
        req: CreateCollection,
    ) -> Result<Created> {
        let name = &collection_name(name)?;
        let limits = &self.settings.limits;
        bounded("dim", req.dim, 1, limits.max_vector_dim.get())?;
        let spec = CollectionSpec {
            dim: req.dim,
            distance: req.distance,
        };
        let max = limits.max_collections.get();
        Ok(create_within(self.vectors.as_ref(), &who.tenant, name, spec, max).await?)
    }

    pub async fn collection_info(&self, who: &Principal, name: &str) -> Result<CollectionInfo> {
        let name = &collection_name(name)?;
        Ok(self.vectors.collection_info(&who.tenant, name).await?)
    }

    /// Indexes a payload field, then returns the collection with its indexes.
    pub async fn create_index(
        &self,
        who: &Principal,
        name: &str,
        index: PayloadIndex,
    ) -> Result<CollectionInfo> {
        let name = &collection_name(name)?;
        indexable(&index.field)?;
        let max = self.settings.limits.max_payload_indexes.get();
        let indexes = self.vectors.payload_indexes(&who.tenant, name).await?;
        if indexes.len() >= max && !indexes.iter().any(|i| i.field == index.field) {
            return Err(ServiceError::Conflict(format!(
                "the collection has {} payload indexes, the most \
                 limits.max_payload_indexes allows; drop one first",
                indexes.len()
            )));
        }
        self.vectors.create_index(&who.tenant, name, index).await?;
        Ok(self.vectors.collection_info(&who.tenant, name).await?)
    }

    pub async fn delete_index(&self, who: &Principal, name: &str, field: &str) -> Result<()> {
        let name = &collection_name(name)?;
        indexable(field)?;
        if self.vectors.delete_index(&who.tenant, name, field).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "collection {name:?} has no index on {field:?}"
            )))
        }
    }

    pub async fn drop_collection(&self, who: &Principal, name: &str) -> Result<()> {
        let name = &collection_name(name)?;
        self.vectors.drop_collection(&who.tenant, name).await?;
        self.quotas.freed(&who.tenant, Kept::Points);
        Ok(())
    }

    pub async fn upsert(&self, who: &Principal, req: UpsertRequest) -> Result<UpsertResponse> {
        let limits = &self.settings.limits;
        let collection = self.collection_name(req.collection)?;
        bounded(
            "number of points",
            req.points.len(),
            1,
            limits.max_batch_points.get(),
        )?;
        let mut points = Vec::with_capacity(req.points.len());
        for p in req.points {
            check_vector(
                &p.vector,
                limits,
                format_args!("vector of point {:?}", p.id),
            )?;
            if p.payload.contains_key(TENANT_KEY) {
                return Err(ServiceError::Invalid(
                    "payload key \"tenant\" is reserved".into(),
                ));
            }
            bounded_json(
                format_args!("payload of point {:?}", p.id),
                &p.payload,
                limits.max_payload_bytes.get(),
            )?;
            points.push(Point {
                id: p.id,
                vector: p.vector,
                payload: p.payload,
            });
        }
        let upserted = points.len();
        self.take_quota(&who.tenant, &collection, &points).await?;
        self.vectors
            .upsert(&who.tenant, &collection, points)
            .await?;
        Ok(UpsertResponse {
            collection: collection.to_string(),
            upserted,
        })
    }

    /// Takes room in the tenant's points quota for `points`; at the quota, for those of
    /// them the collection does not have yet, so that a tenant there can still replace
    /// points.
    async fn take_quota(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        points: &[Point],
    ) -> Result<()> {
        let existing = async {
            let ids = points.iter().map(|p| p.id).collect();
            let known = self.vectors.retrieve(tenant, collection, ids).await?;
            Ok(known.len() as u64)
        };
        let all = points.len() as u64;
        let quotas = &self.quotas;
        quotas.take_new(tenant, Kept::Points, all, existing).await
    }

    pub async fn delete(&self, who: &Principal, req: DeleteRequest) -> Result<DeleteResponse> {
        let limits = &self.settings.limits;
        let collection = self.collection_name(req.collection)?;
        let deleted = match (req.ids, req.filter) {
            (Some(ids), None) => {
                bounded("number of ids", ids.len(), 1, limits.max_batch_points.get())?;
                self.vectors
                    .delete_ids(&who.tenant, &collection, ids)
                    .await?
            }
            (None, Some(filter)) => {
                check_filter(&filter, limits)?;
                if filter == Filter::default() {
                    return Err(ServiceError::Invalid(
                        "an empty filter would delete everything; drop the collection instead"
                            .into(),
                    ));
                }
                self.vectors
                    .delete_by_filter(&who.tenant, &collection, filter)
                    .await?
            }
            _ => {
                return Err(ServiceError::Invalid(
                    "give exactly one of `ids` or `filter`".into(),
                ));
            }
        };
        self.quotas.freed(&who.tenant, Kept::Points);
        Ok(DeleteResponse { deleted })
    }

    pub async fn retrieve(
        &self,
        who: &Principal,
        collection: Option<String>,
        ids: Vec<PointId>,
    ) -> Result<Reserved<RetrieveResponse>> {
        let collection = self.collection_name(collection)?;
        bounded(
            "number of ids",
            ids.len(),
            1,
            self.settings.limits.max_batch_points.get(),
        )?;
        let most = worst(ids.len(), self.point_worst(true, true));
        let reservation = self.budget.reserve(&who.tenant, most).await?;
        let points = reservation
            .during(self.vectors.retrieve(&who.tenant, &collection, ids))
            .await?;
        Ok(Reserved {
            value: RetrieveResponse { points },
            reservation,
        })
    }
}

/// `name` as a collection name, or why it is not one.
pub fn collection_name(name: &str) -> Result<CollectionName> {
    CollectionName::parse(name).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "collection name {name:?} must match ^[A-Za-z0-9][A-Za-z0-9_-]{{0,63}}$"
        ))
    })
}

fn check_vector(vector: &[f32], limits: &Limits, what: impl Display) -> Result<()> {
    bounded(
        format_args!("dimensions of {what}"),
        vector.len(),
        1,
        limits.max_vector_dim.get(),
    )?;
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(ServiceError::Invalid(format!(
            "{what} contains a non-finite number"
        )));
    }
    let squared = squared_length(vector);
    if squared > MAX_SQUARED_LENGTH {
        return Err(ServiceError::Invalid(format!(
            "{what} has length {:.3e}; at most {:.3e}, so that no score overflows",
            squared.sqrt(),
            MAX_SQUARED_LENGTH.sqrt()
        )));
    }
    Ok(())
}

/// The longest vector accepted, stored or searched with, squared: a quarter of
/// `f32::MAX` (a length of about 9.2e18). No score of two such vectors overflows the
/// engines' `f32` arithmetic: a dot product is at most the product of the lengths, a
/// squared Euclidean distance at most the square of their sum, and a cosine divides by
/// a length computed from the squared one. Longer vectors would score `inf` (sent as
/// `null`) or, under cosine, be stored as zeros.
const MAX_SQUARED_LENGTH: f64 = f32::MAX as f64 / 4.0;

/// Checks shape, size and the reserved tenant key, counting conditions against the limit.
pub fn check_filter(filter: &Filter, limits: &Limits) -> Result<()> {
    let mut count = 0;
    check_filter_level(filter, limits, 1, &mut count)
}

fn check_filter_level(
    filter: &Filter,
    limits: &Limits,
    depth: usize,
    count: &mut usize,
) -> Result<()> {
    if depth > limits.max_filter_depth {
        return Err(ServiceError::Invalid(format!(
            "filter nests deeper than {} levels",
            limits.max_filter_depth
        )));
    }
    for condition in filter
        .must
        .iter()
        .chain(&filter.should)
        .chain(&filter.must_not)
    {
        *count += 1;
        if *count > limits.max_filter_conditions {
            return Err(ServiceError::Invalid(format!(
                "filter has more than {} conditions",
                limits.max_filter_conditions
            )));
        }
        let key = match condition.kind().map_err(ServiceError::Invalid)? {
            ConditionKind::Nested(inner) => {
                check_filter_level(&inner, limits, depth + 1, count)?;
                continue;
            }
            ConditionKind::Match(key, _)
            | ConditionKind::MatchAny(key, _)
            | ConditionKind::Range(key, _) => key,
        };
        if key == TENANT_KEY || key.starts_with("tenant.") || key.starts_with("tenant[") {
            return Err(ServiceError::Invalid(
                "payload key \"tenant\" is reserved".into(),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetrieveResponse {
    pub points: Vec<Record>,
}

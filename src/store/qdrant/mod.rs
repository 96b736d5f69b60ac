//! [`VectorStore`] on a Qdrant server over gRPC (`qdrant-client`). The layout mirrors
//! the embedded store: one Qdrant collection per (tenant, collection), named
//! `ragbrain.<tenant>.<collection>` (our names never contain a dot, so the split is
//! unique and other collections on the server are left alone), so tenants may give the
//! same collection name different dimensions. Every point also
//! carries the `tenant` payload field, indexed as a keyword with `is_tenant`, and every
//! read and delete filters on it: isolation holds even if two tenants' data shared a
//! collection. Writes use `wait=true`, so an acknowledged write is applied.

use std::sync::Arc;

use async_trait::async_trait;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeleteFieldIndexCollectionBuilder,
    FieldType, GetPointsBuilder, KeywordIndexParamsBuilder, PointStruct, PointsIdsList,
    QueryPointsBuilder, ScrollPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};

use crate::config::VectorQuantization;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    CollectionInfo, CollectionName, CollectionSpec, Filter, PayloadIndex, Point, PointId, Record,
    ScoredPoint, SearchQuery, TENANT_KEY,
};
use crate::store::qdrant_mapping::server as map;
use crate::store::resilient::{Resilience, Retry};
use crate::store::{CollectionPoints, Created, ErrorKind, StoreError, StoreResult, VectorStore};

pub struct QdrantVectorStore {
    client: Qdrant,
    guard: Arc<Resilience>,
    /// The default collection, created on a tenant's first write as in embedded mode.
    default_name: String,
    default_spec: CollectionSpec,
    /// Given to the collections this store creates.
    quantization: VectorQuantization,
}

mod calls;

use calls::{Described, PREFIX, invalid_filter, missing, physical, qdrant_err, record};

#[async_trait]
impl VectorStore for QdrantVectorStore {
    async fn create_collection(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
        spec: CollectionSpec,
    ) -> StoreResult<Created> {
        if let Some(Described { spec: existing, .. }) = self.spec(tenant, name).await? {
            return if existing == spec {
                Ok(Created::Existing)
            } else {
                Err(StoreError::conflict(format!(
                    "collection {name:?} exists with another dimension or distance"
                )))
            };
        }
        let physical = physical(tenant, name);
        let created = self
            .guard
            .run("create_collection", Retry::Idempotent, || async {
                let mut request = CreateCollectionBuilder::new(&physical).vectors_config(
                    VectorParamsBuilder::new(spec.dim as u64, map::distance(spec.distance)),
                );
                if let Some(q) = map::quantization(self.quantization) {
                    request = request.quantization_config(q);
                }
                request = request.sparse_vectors_config(map::lexical_config());
                match self.client.create_collection(request).await {
                    Ok(_) => Ok(Created::New),
                    // Created by a concurrent request (or a retried one) meanwhile.
                    Err(e) => match qdrant_err(e) {
                        e if e.kind == ErrorKind::Conflict => Ok(Created::Existing),
                        e => Err(e),
                    },
                }
            })
            .await?;
        self.create_field_index(
            CreateFieldIndexCollectionBuilder::new(&physical, TENANT_KEY, FieldType::Keyword)
                .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true)),
        )
        .await?;
        if created == Created::Existing {
            // Whoever created it may have chosen another spec.
            return self.create_collection(tenant, name, spec).await;
        }
        Ok(created)
    }

    async fn collection_info(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionInfo> {
        let described = self
            .spec(tenant, name)
            .await?
            .ok_or_else(|| missing(name))?;
        let points = self.count(&physical(tenant, name), tenant, None).await?;
        Ok(CollectionInfo {
            name: name.to_string(),
            dim: described.spec.dim,
            distance: described.spec.distance,
            points_count: points as usize,
            indexed_vectors_count: described.indexed as usize,
            optimizing: described.optimizing,
            payload_indexes: described.payload_indexes,
        })
    }

    async fn drop_collection(&self, tenant: &Tenant, name: &CollectionName) -> StoreResult<()> {
        let physical = self.require(tenant, name).await?;
        self.guard
            .run("drop_collection", Retry::Idempotent, || async {
                self.client
                    .delete_collection(physical.as_str())
                    .await
                    .map(drop)
                    .map_err(qdrant_err)
            })
            .await
    }

    async fn upsert(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        points: Vec<Point>,
    ) -> StoreResult<()> {
        if collection.as_str() == self.default_name
            && self.spec(tenant, collection).await?.is_none()
        {
            self.create_collection(tenant, collection, self.default_spec)
                .await?;
        }
        let physical = physical(tenant, collection);
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|p| {
                PointStruct::new(
                    map::point_id(p.id),
                    map::vectors(p.vector, &p.payload),
                    map::payload_with_tenant(p.payload, tenant),
                )
            })
            .collect();
        self.guard
            .run("upsert", Retry::Idempotent, || async {
                let request = UpsertPointsBuilder::new(&physical, points.clone()).wait(true);
                match self.client.upsert_points(request).await {
                    Ok(_) => Ok(()),
                    Err(e) => match qdrant_err(e) {
                        e if e.kind == ErrorKind::NotFound => Err(missing(collection)),
                        e => Err(e),
                    },
                }
            })
            .await
    }

    async fn search(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        query: SearchQuery,
    ) -> StoreResult<Vec<ScoredPoint>> {
        let physical = self.require(tenant, collection).await?;
        let filter = map::search_filter(tenant, query.filter.as_ref(), query.ids.as_deref())
            .map_err(invalid_filter)?;
        let hits = self
            .guard
            .run("search", Retry::Idempotent, || async {
                let (q, using) = map::query(&query.query);
                let mut request = QueryPointsBuilder::new(&physical)
                    .query(q)
                    .limit(query.limit as u64)
                    .offset(query.offset as u64)
                    .filter(filter.clone())
                    .params(map::search_params())
                    // The tenant check needs the payload even when the caller does not.
                    .with_payload(true)
                    .with_vectors(query.with_vector);
                if let Some(t) = query.score_threshold {
                    request = request.score_threshold(t);
                }
                if let Some(using) = using {
                    request = request.using(using);
                }
                self.client
                    .query(request)
                    .await
                    .map(|r| r.result)
                    .map_err(qdrant_err)
            })
            .await?;
        Ok(hits
            .into_iter()
            .filter_map(|p| {
                let payload = map::owned_payload(p.payload, tenant)?;
                Some(ScoredPoint {
                    id: map::point_id_back(p.id)?,
                    score: p.score,
                    payload: query.with_payload.then_some(payload),
                    vector: map::dense_vector(p.vectors),
                })
            })
            .collect())
    }

    async fn retrieve(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<Vec<Record>> {
        let physical = self.require(tenant, collection).await?;
        let ids: Vec<_> = ids.into_iter().map(map::point_id).collect();
        let points = self
            .guard
            .run("retrieve", Retry::Idempotent, || async {
                let request = GetPointsBuilder::new(&physical, ids.clone())
                    .with_payload(true)
                    .with_vectors(true);
                self.client
                    .get_points(request)
                    .await
                    .map(|r| r.result)
                    .map_err(qdrant_err)
            })
            .await?;
        Ok(points
            .into_iter()
            .filter_map(|p| record(p, tenant))
            .collect())
    }

    async fn delete_ids(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<usize> {
        // Only this tenant's points, and only those that exist, are counted and deleted.
        let owned: Vec<PointId> = self
            .retrieve(tenant, collection, ids)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        if owned.is_empty() {
            return Ok(0);
        }
        let physical = physical(tenant, collection);
        let list = PointsIdsList {
            ids: owned.iter().map(|id| map::point_id(*id)).collect(),
        };
        self.delete("delete_ids", &physical, list.into()).await?;
        Ok(owned.len())
    }

    async fn delete_by_filter(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        filter: Filter,
    ) -> StoreResult<usize> {
        let physical = self.require(tenant, collection).await?;
        let matched = self.count(&physical, tenant, Some(&filter)).await?;
        let scoped = map::search_filter(tenant, Some(&filter), None).map_err(invalid_filter)?;
        self.delete("delete_by_filter", &physical, scoped.into())
            .await?;
        Ok(matched as usize)
    }

    async fn create_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        index: PayloadIndex,
    ) -> StoreResult<()> {
        let physical = self.require(tenant, collection).await?;
        self.create_field_index(CreateFieldIndexCollectionBuilder::new(
            physical.as_str(),
            index.field.as_str(),
            map::index_kind(index.kind),
        ))
        .await
    }

    async fn delete_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        field: &str,
    ) -> StoreResult<bool> {
        let indexes = self
            .spec(tenant, collection)
            .await?
            .ok_or_else(|| missing(collection))?
            .payload_indexes;
        if !indexes.iter().any(|i| i.field == field) {
            return Ok(false);
        }
        let physical = physical(tenant, collection);
        self.guard
            .run("delete_field_index", Retry::Idempotent, || async {
                let request =
                    DeleteFieldIndexCollectionBuilder::new(physical.as_str(), field).wait(true);
                self.client
                    .delete_field_index(request)
                    .await
                    .map(drop)
                    .map_err(qdrant_err)
            })
            .await?;
        Ok(true)
    }

    async fn collection_count(&self, tenant: &Tenant) -> StoreResult<usize> {
        let own = physical(tenant, "");
        let names = self.collection_names().await?;
        Ok(names.iter().filter(|n| n.starts_with(&own)).count())
    }

    async fn point_counts(&self) -> StoreResult<Vec<CollectionPoints>> {
        let names = self.collection_names().await?;
        let mut out = Vec::new();
        for physical in names {
            let Some((tenant, collection)) = physical
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split_once('.'))
            else {
                continue;
            };
            let Some(tenant) = Tenant::parse(tenant) else {
                continue;
            };
            let points = self.count(&physical, &tenant, None).await?;
            out.push(CollectionPoints {
                tenant: tenant.to_string(),
                collection: collection.to_owned(),
                points,
            });
        }
        Ok(out)
    }

    async fn tenant_points(&self, tenant: &Tenant) -> StoreResult<u64> {
        let own = physical(tenant, "");
        let mut points = 0;
        for name in self.collection_names().await? {
            if name.starts_with(&own) {
                points += self.count(&name, tenant, None).await?;
            }
        }
        Ok(points)
    }

    async fn scroll(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        from: Option<PointId>,
        limit: usize,
    ) -> StoreResult<(Vec<Record>, Option<PointId>)> {
        let physical = self.require(tenant, collection).await?;
        let owned = map::search_filter(tenant, None, None).map_err(invalid_filter)?;
        let page = self
            .guard
            .run("scroll", Retry::Idempotent, || async {
                let mut request = ScrollPointsBuilder::new(&physical)
                    .filter(owned.clone())
                    .limit(u32::try_from(limit.max(1)).unwrap_or(u32::MAX))
                    .with_payload(true)
                    .with_vectors(true);
                if let Some(from) = from {
                    request = request.offset(map::point_id(from));
                }
                self.client.scroll(request).await.map_err(qdrant_err)
            })
            .await?;
        let records = page
            .result
            .into_iter()
            .filter_map(|p| record(p, tenant))
            .collect();
        Ok((records, map::point_id_back(page.next_page_offset)))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.guard
            .run("ping", Retry::Idempotent, || async {
                self.client
                    .health_check()
                    .await
                    .map(drop)
                    .map_err(qdrant_err)
            })
            .await
    }

    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}

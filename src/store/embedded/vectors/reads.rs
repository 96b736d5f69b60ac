//! Reads of one collection's shard, run on a blocking thread: searches, scrolls and
//! retrieves as the engine takes them, and their points back as domain records, each
//! checked against the tenant; and the point counts of the store's collections.

use std::collections::HashMap;
use std::sync::Arc;

use qdrant_edge::{
    NamedQuery, QueryEnum, SearchRequest, VectorInternal, WithPayloadInterface, WithVector,
};

use super::EmbeddedVectorStore;
use super::collection::{Collection, Key};
use super::engine::{engine, page};
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionName, PointId, Record, ScoredPoint, SearchQuery};
use crate::store::qdrant_mapping as map;
use crate::store::{CollectionPoints, StoreError, StoreResult, blocking};

impl EmbeddedVectorStore {
    /// The exact point count of every collection whose tenant `owned` takes.
    pub(super) async fn counts(
        &self,
        owned: impl Fn(&Tenant) -> bool,
    ) -> StoreResult<Vec<CollectionPoints>> {
        let chosen: Vec<(Key, Arc<Collection>)> = self
            .inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((tenant, _), _)| owned(tenant))
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        blocking(move || {
            chosen
                .into_iter()
                .map(|((tenant, name), c)| {
                    Ok(CollectionPoints {
                        points: c.count(&tenant, None)? as u64,
                        tenant: tenant.to_string(),
                        collection: name,
                    })
                })
                .collect()
        })
        .await
    }
}

/// A lexical search of a collection made before lexical search existed.
pub(super) fn no_lexical_index(collection: &CollectionName) -> StoreError {
    StoreError::conflict(format!(
        "collection {collection:?} was created before lexical search existed and has no \
         lexical index; create a new collection and upsert its points again to search it \
         lexically"
    ))
}

/// Searches `c` for `vector` (the dense or lexical vector `using` names) with the rest
/// of `query`; hits whose payload is not the tenant's are dropped.
pub(super) fn search_owned(
    c: &Collection,
    tenant: &Tenant,
    query: SearchQuery,
    vector: VectorInternal,
    using: Option<String>,
) -> StoreResult<Vec<ScoredPoint>> {
    // A shard holds one tenant's points only (its directory is the tenant's), so
    // a plain search needs no tenant condition: checking it on every point the
    // HNSW walk visits cost ~10% of a search's CPU. Filtered searches keep it, and
    // every hit's payload is still checked below.
    let filter = match (&query.filter, &query.ids) {
        (None, None) => None,
        (filter, ids) => Some(
            map::search_filter(tenant, filter.as_ref(), ids.as_deref())
                .map_err(StoreError::invalid)?,
        ),
    };
    let found = c
        .shard()?
        .search(SearchRequest {
            query: QueryEnum::Nearest(NamedQuery {
                query: vector,
                using,
            }),
            filter,
            params: Some(map::search_params()),
            limit: query.limit,
            offset: query.offset,
            // Candidates carry the tenant key alone, for the check of every hit.
            // qdrant-edge reads what is asked for `offset + limit` hits in each
            // segment and cuts the offset only after merging them: whole payloads
            // there held gigabytes for one deep page. The page is read whole below.
            with_payload: Some(WithPayloadInterface::Fields(vec![
                map::tenant_path().map_err(StoreError::internal)?,
            ])),
            with_vector: Some(WithVector::Bool(false)),
            score_threshold: query.score_threshold,
        })
        .map_err(engine)?;
    let hits: Vec<ScoredPoint> = found
        .into_iter()
        .filter_map(|p| map::scored_point(p, tenant, false))
        .collect();
    if !(query.with_payload || query.with_vector) || hits.is_empty() {
        return Ok(hits);
    }
    let ids: Vec<PointId> = hits.iter().map(|h| h.id).collect();
    let mut whole: HashMap<PointId, Record> = retrieve_owned(c, tenant, &ids, query.with_vector)?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    // A point deleted between the two reads drops out of the page.
    Ok(hits
        .into_iter()
        .filter_map(|hit| {
            let r = whole.remove(&hit.id)?;
            Some(ScoredPoint {
                payload: query.with_payload.then_some(r.payload),
                vector: r.vector,
                ..hit
            })
        })
        .collect())
}

/// Up to `limit` of the tenant's points with payloads and vectors, in id order from
/// `from`, and the id the next page starts at.
pub(super) fn scroll_owned(
    c: &Collection,
    tenant: &Tenant,
    from: Option<PointId>,
    limit: usize,
) -> StoreResult<(Vec<Record>, Option<PointId>)> {
    let (records, next) = page(&*c.shard()?, from.map(map::point_id), None, true, limit)?;
    let records = records
        .into_iter()
        .filter_map(|r| {
            Some(Record {
                id: map::point_id_back(r.id),
                payload: map::owned_payload(r.payload, tenant)?,
                vector: map::dense_vector(r.vector),
            })
        })
        .collect();
    Ok((records, next.map(map::point_id_back)))
}

pub(super) fn retrieve_owned(
    c: &Collection,
    tenant: &Tenant,
    ids: &[PointId],
    with_vector: bool,
) -> StoreResult<Vec<Record>> {
    let ids: Vec<_> = ids.iter().map(|id| map::point_id(*id)).collect();
    let records = c
        .shard()?
        .retrieve(
            &ids,
            Some(WithPayloadInterface::Bool(true)),
            Some(WithVector::Bool(with_vector)),
        )
        .map_err(engine)?;
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let payload = map::owned_payload(r.payload, tenant)?;
            Some(Record {
                id: map::point_id_back(r.id),
                payload,
                vector: map::dense_vector(r.vector),
            })
        })
        .collect())
}

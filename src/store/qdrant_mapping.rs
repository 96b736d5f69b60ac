//! The one place where domain vector types meet Qdrant's: ids, distances, payloads and
//! filters for the embedded engine (`qdrant-edge`). A Qdrant server adapter maps the same
//! domain types here too, so both engines read filters identically.

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition as QCondition, DEFAULT_VECTOR_NAME, Distance as QDistance, FieldCondition,
    Filter as QFilter, HasIdCondition, JsonPath, Match, MatchValue as QMatchValue, Payload,
    PointId as QPointId, Range, ValueVariants, VectorStructInternal,
};
use serde_json::{Map, Value};

use crate::config::VectorQuantization;
use crate::domain::payload;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    ConditionKind, Distance, Filter, IndexKind, MatchValue, PayloadIndex, PointId, ScoredPoint,
    TENANT_KEY,
};

/// Int8 quantization maps this central share of each dimension's values onto 256 steps
/// (the outliers clip), as Qdrant's documentation recommends.
const QUANTILE: f32 = 0.99;
/// With quantized segments, this many times `limit` candidates come out of the HNSW
/// walk (or the scan of a segment not yet indexed) and are scored again on the full
/// vectors: the compressed scores pick the candidates, the full ones rank them. At 2,
/// a TurboQuant scan of 30k clustered 384-dimension points lost 0.75% of recall@10
/// against an exact search; at 4 none, at the same search latency (PERFORMANCE.md,
/// "TurboQuant").
const OVERSAMPLING: f64 = 4.0;

/// The named sparse vector that holds a point's BM25 term weights.
pub const LEXICAL: &str = "lexical";

/// Qdrant's own BM25 (its tokenizer, English stopwords and stemmer, k1 1.2, b 0.75),
/// so term ids and weights are the same whichever engine stores them; IDF comes from
/// the collection at query time (`Modifier::Idf`).
fn bm25() -> &'static qdrant_edge::bm25_embed::EdgeBm25 {
    static BM25: std::sync::OnceLock<qdrant_edge::bm25_embed::EdgeBm25> =
        std::sync::OnceLock::new();
    BM25.get_or_init(|| {
        qdrant_edge::bm25_embed::EdgeBm25::new(Default::default())
            .expect("the default BM25 configuration is valid")
    })
}

/// The text a point is found by lexically: payload `text`, after the document's title
/// (`title` or `metadata.title`) when there is one.
pub fn lexical_text(payload: &Map<String, Value>) -> Option<String> {
    let text = payload::text(payload)?;
    let title = payload::title(payload).filter(|t| !t.trim().is_empty() && !text.starts_with(*t));
    Some(match title {
        Some(t) => format!("{t}\n{text}"),
        None => text.to_owned(),
    })
}

/// A point's BM25 term weights, when it has text.
pub fn lexical_document(payload: &Map<String, Value>) -> Option<qdrant_edge::SparseVector> {
    let v = bm25().embed_document(&lexical_text(payload)?);
    (!v.indices.is_empty()).then_some(v)
}

/// A query's terms (weight 1 each; the collection's IDF weighs them).
pub fn lexical_query(text: &str) -> qdrant_edge::SparseVector {
    bm25().embed_query(text)
}

/// The compressed copy a collection's segments keep for the search walk, if any.
pub fn quantization(q: VectorQuantization) -> Option<qdrant_edge::QuantizationConfig> {
    match q {
        VectorQuantization::None => None,
        VectorQuantization::Int8 => Some(
            qdrant_edge::ScalarQuantizationConfig {
                r#type: qdrant_edge::ScalarType::Int8,
                quantile: Some(QUANTILE),
                always_ram: Some(true),
            }
            .into(),
        ),
        // qdrant-edge 0.7.2 does not export the TurboQuant config types; the
        // configuration's serde form (the engine's own JSON) names them.
        VectorQuantization::Turbo => Some(
            serde_json::from_value(serde_json::json!({
                "turbo": { "always_ram": true, "bits": "bits4" }
            }))
            .expect("the engine's TurboQuant configuration"),
        ),
    }
}

/// Search parameters for every search: on segments with a compressed copy (indexed ones
/// with int8, all with TurboQuant), oversample and rescore on the full vectors;
/// elsewhere they change nothing.
pub fn search_params() -> qdrant_edge::SearchParams {
    qdrant_edge::SearchParams {
        quantization: Some(qdrant_edge::QuantizationSearchParams {
            ignore: false,
            rescore: Some(true),
            oversampling: Some(OVERSAMPLING),
        }),
        ..Default::default()
    }
}

pub fn index_kind(kind: IndexKind) -> qdrant_edge::PayloadSchemaType {
    use qdrant_edge::PayloadSchemaType as T;
    match kind {
        IndexKind::Keyword => T::Keyword,
        IndexKind::Integer => T::Integer,
        IndexKind::Float => T::Float,
        IndexKind::Bool => T::Bool,
    }
}

/// The indexes a client asked for, from the engine's payload schema (without the tenant
/// index, and without types the API does not offer), by field name.
pub fn payload_indexes<'a>(
    schema: impl IntoIterator<Item = (String, qdrant_edge::PayloadSchemaType)> + 'a,
) -> Vec<PayloadIndex> {
    use qdrant_edge::PayloadSchemaType as T;
    let mut out: Vec<PayloadIndex> = schema
        .into_iter()
        .filter(|(field, _)| field != TENANT_KEY)
        .filter_map(|(field, t)| {
            let kind = match t {
                T::Keyword => IndexKind::Keyword,
                T::Integer => IndexKind::Integer,
                T::Float => IndexKind::Float,
                T::Bool => IndexKind::Bool,
                _ => return None,
            };
            Some(PayloadIndex { field, kind })
        })
        .collect();
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

/// [`payload_indexes`] of an embedded shard.
pub fn shard_payload_indexes(info: &qdrant_edge::ShardInfo) -> Vec<PayloadIndex> {
    let schema = info
        .payload_schema
        .iter()
        .map(|(path, i)| (path.to_string(), i.data_type));
    payload_indexes(schema)
}

pub fn index_path(field: &str) -> Result<JsonPath, String> {
    key(field)
}

pub fn distance(d: Distance) -> QDistance {
    match d {
        Distance::Cosine => QDistance::Cosine,
        Distance::Dot => QDistance::Dot,
        Distance::Euclid => QDistance::Euclid,
    }
}

/// `None` for distances the API does not offer.
pub fn distance_back(d: QDistance) -> Option<Distance> {
    match d {
        QDistance::Cosine => Some(Distance::Cosine),
        QDistance::Dot => Some(Distance::Dot),
        QDistance::Euclid => Some(Distance::Euclid),
        QDistance::Manhattan => None,
    }
}

pub fn point_id(id: PointId) -> QPointId {
    match id {
        PointId::Num(n) => QPointId::NumId(n),
        PointId::Uuid(u) => QPointId::Uuid(u),
    }
}

pub fn point_id_back(id: QPointId) -> PointId {
    match id {
        QPointId::NumId(n) => PointId::Num(n),
        QPointId::Uuid(u) => PointId::Uuid(u),
    }
}

/// The stored payload: the client's fields plus the tenant.
pub fn payload_with_tenant(mut payload: Map<String, Value>, tenant: &Tenant) -> Payload {
    payload.insert(TENANT_KEY.to_owned(), Value::String(tenant.to_string()));
    Payload(payload)
}

/// The payload as the client wrote it, or `None` when it belongs to another tenant.
pub fn owned_payload(payload: Option<Payload>, tenant: &Tenant) -> Option<Map<String, Value>> {
    let mut map = payload?.0;
    match map.remove(TENANT_KEY) {
        Some(Value::String(t)) if t == tenant.as_str() => Some(map),
        _ => None,
    }
}

pub fn dense_vector(vector: Option<VectorStructInternal>) -> Option<Vec<f32>> {
    match vector? {
        VectorStructInternal::Single(v) => Some(v),
        // Points with text also hold their BM25 weights, under `LEXICAL`.
        VectorStructInternal::Named(mut named) => match named.remove(DEFAULT_VECTOR_NAME)? {
            qdrant_edge::VectorInternal::Dense(v) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

fn key(path: &str) -> Result<JsonPath, String> {
    path.parse::<JsonPath>()
        .map_err(|_| format!("{path:?} is not a valid payload key"))
}

fn match_condition(path: &str, value: &MatchValue) -> Result<QCondition, String> {
    let value = match value {
        MatchValue::Bool(b) => ValueVariants::Bool(*b),
        MatchValue::Int(i) => ValueVariants::Integer(*i),
        MatchValue::Keyword(s) => ValueVariants::String(s.clone()),
    };
    Ok(QCondition::Field(FieldCondition::new_match(
        key(path)?,
        Match::Value(QMatchValue { value }),
    )))
}

fn condition(kind: ConditionKind<'_>) -> Result<QCondition, String> {
    match kind {
        ConditionKind::Match(path, value) => match_condition(path, value),
        // `any` is a disjunction of equalities; one nested `should` says exactly that and
        // allows mixed value types.
        ConditionKind::MatchAny(path, values) => {
            let should = values
                .iter()
                .map(|v| match_condition(path, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(QCondition::Filter(QFilter {
                should: Some(should),
                min_should: None,
                must: None,
                must_not: None,
            }))
        }
        ConditionKind::Range(path, r) => Ok(QCondition::Field(FieldCondition::new_range(
            key(path)?,
            Range {
                lt: r.lt.map(OrderedFloat),
                gt: r.gt.map(OrderedFloat),
                gte: r.gte.map(OrderedFloat),
                lte: r.lte.map(OrderedFloat),
            },
        ))),
        ConditionKind::Nested(filter) => Ok(QCondition::Filter(filter_inner(&filter)?)),
    }
}

fn conditions(
    list: &[crate::domain::vector::Condition],
) -> Result<Option<Vec<QCondition>>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|c| condition(c.kind()?))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn filter_inner(filter: &Filter) -> Result<QFilter, String> {
    Ok(QFilter {
        must: conditions(&filter.must)?,
        should: conditions(&filter.should)?,
        min_should: None,
        must_not: conditions(&filter.must_not)?,
    })
}

/// The payload path of the tenant field.
pub fn tenant_path() -> Result<JsonPath, String> {
    key(TENANT_KEY)
}

/// The client's filter (if any) AND `tenant == <tenant>`.
pub fn tenant_filter(tenant: &Tenant, filter: Option<&Filter>) -> Result<QFilter, String> {
    let tenant_is = QCondition::Field(FieldCondition::new_match(
        tenant_path()?,
        Match::Value(QMatchValue {
            value: ValueVariants::String(tenant.to_string()),
        }),
    ));
    let mut must = vec![tenant_is];
    if let Some(f) = filter {
        must.push(QCondition::Filter(filter_inner(f)?));
    }
    Ok(QFilter {
        must: Some(must),
        should: None,
        min_should: None,
        must_not: None,
    })
}

/// [`tenant_filter`], further restricted to `ids` when given.
pub fn search_filter(
    tenant: &Tenant,
    filter: Option<&Filter>,
    ids: Option<&[PointId]>,
) -> Result<QFilter, String> {
    let mut scoped = tenant_filter(tenant, filter)?;
    if let Some(ids) = ids {
        let has_id: HasIdCondition = ids.iter().map(|id| point_id(*id)).collect();
        scoped
            .must
            .get_or_insert_with(Vec::new)
            .push(QCondition::HasId(has_id));
    }
    Ok(scoped)
}

pub fn scored_point(
    point: qdrant_edge::ScoredPoint,
    tenant: &Tenant,
    with_payload: bool,
) -> Option<ScoredPoint> {
    let payload = owned_payload(point.payload, tenant)?;
    Some(ScoredPoint {
        id: point_id_back(point.id),
        score: point.score,
        payload: with_payload.then_some(payload),
        vector: dense_vector(point.vector),
    })
}

pub mod server;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turbo_maps_to_the_engines_four_bit_turboquant() {
        let config = quantization(VectorQuantization::Turbo).unwrap();
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::json!({"turbo": {"always_ram": true, "bits": "bits4"}})
        );
        let int8 = serde_json::to_value(quantization(VectorQuantization::Int8).unwrap());
        assert!(int8.unwrap().get("scalar").is_some());
    }
}

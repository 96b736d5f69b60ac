//! The one place where domain vector types meet Qdrant's: ids, distances, payloads and
//! filters for the embedded engine (`qdrant-edge`). A Qdrant server adapter maps the same
//! domain types here too, so both engines read filters identically.

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition as QCondition, Distance as QDistance, FieldCondition, Filter as QFilter,
    HasIdCondition, JsonPath, Match, MatchValue as QMatchValue, Payload, PointId as QPointId,
    Range, ValueVariants, VectorStructInternal,
};
use serde_json::{Map, Value};

use crate::config::VectorQuantization;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    ConditionKind, Distance, Filter, IndexKind, MatchValue, PayloadIndex, PointId, ScoredPoint,
    TENANT_KEY,
};

/// Int8 quantization maps this central share of each dimension's values onto 256 steps
/// (the outliers clip), as Qdrant's documentation recommends.
const QUANTILE: f32 = 0.99;
/// With quantized segments, this many times `limit` candidates come out of the HNSW
/// walk and are scored again on the full vectors: the compressed scores pick the
/// candidates, the full ones rank them.
const OVERSAMPLING: f64 = 2.0;

/// The compressed copy an indexed segment keeps for the HNSW walk, if any.
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
    }
}

/// Search parameters for every search: on quantized segments, oversample and rescore on
/// the full vectors; elsewhere (plain segments, unquantized collections) they change
/// nothing.
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

/// The same mapping for the Qdrant server's gRPC types (`qdrant-client`), so a filter
/// means the same on both engines.
pub mod server {
    use qdrant_client::qdrant::{
        self as q, Condition as QCondition, Filter as QFilter, Range, point_id::PointIdOptions,
    };
    use serde_json::{Map, Value};

    use super::{OVERSAMPLING, QUANTILE};
    use crate::config::VectorQuantization;
    use crate::domain::principal::Tenant;
    use crate::domain::vector::{
        ConditionKind, Distance, Filter, IndexKind, MatchValue, PayloadIndex, PointId, TENANT_KEY,
    };

    /// The same compressed copy as the embedded engine's (see the parent module).
    pub fn quantization(q: VectorQuantization) -> Option<q::ScalarQuantizationBuilder> {
        match q {
            VectorQuantization::None => None,
            VectorQuantization::Int8 => Some(
                q::ScalarQuantizationBuilder::default()
                    .r#type(q::QuantizationType::Int8.into())
                    .quantile(QUANTILE)
                    .always_ram(true),
            ),
        }
    }

    /// The same oversampling and rescoring as the embedded engine's searches.
    pub fn search_params() -> q::SearchParamsBuilder {
        q::SearchParamsBuilder::default().quantization(
            q::QuantizationSearchParamsBuilder::default()
                .rescore(true)
                .oversampling(OVERSAMPLING),
        )
    }

    pub fn index_kind(kind: IndexKind) -> q::FieldType {
        match kind {
            IndexKind::Keyword => q::FieldType::Keyword,
            IndexKind::Integer => q::FieldType::Integer,
            IndexKind::Float => q::FieldType::Float,
            IndexKind::Bool => q::FieldType::Bool,
        }
    }

    /// The indexes a client asked for, from a Qdrant server's payload schema.
    pub fn payload_indexes(
        schema: &std::collections::HashMap<String, q::PayloadSchemaInfo>,
    ) -> Vec<PayloadIndex> {
        let mut out: Vec<PayloadIndex> = schema
            .iter()
            .filter(|(field, _)| field.as_str() != TENANT_KEY)
            .filter_map(|(field, info)| {
                let kind = match q::PayloadSchemaType::try_from(info.data_type).ok()? {
                    q::PayloadSchemaType::Keyword => IndexKind::Keyword,
                    q::PayloadSchemaType::Integer => IndexKind::Integer,
                    q::PayloadSchemaType::Float => IndexKind::Float,
                    q::PayloadSchemaType::Bool => IndexKind::Bool,
                    _ => return None,
                };
                Some(PayloadIndex {
                    field: field.clone(),
                    kind,
                })
            })
            .collect();
        out.sort_by(|a, b| a.field.cmp(&b.field));
        out
    }

    pub fn distance(d: Distance) -> q::Distance {
        match d {
            Distance::Cosine => q::Distance::Cosine,
            Distance::Dot => q::Distance::Dot,
            Distance::Euclid => q::Distance::Euclid,
        }
    }

    pub fn distance_back(d: i32) -> Option<Distance> {
        match q::Distance::try_from(d).ok()? {
            q::Distance::Cosine => Some(Distance::Cosine),
            q::Distance::Dot => Some(Distance::Dot),
            q::Distance::Euclid => Some(Distance::Euclid),
            _ => None,
        }
    }

    pub fn point_id(id: PointId) -> q::PointId {
        match id {
            PointId::Num(n) => n.into(),
            PointId::Uuid(u) => u.to_string().into(),
        }
    }

    pub fn point_id_back(id: Option<q::PointId>) -> Option<PointId> {
        match id?.point_id_options? {
            PointIdOptions::Num(n) => Some(PointId::Num(n)),
            PointIdOptions::Uuid(u) => u.parse().ok().map(PointId::Uuid),
        }
    }

    fn match_condition(path: &str, value: &MatchValue) -> QCondition {
        match value {
            MatchValue::Bool(b) => QCondition::matches(path, *b),
            MatchValue::Int(i) => QCondition::matches(path, *i),
            MatchValue::Keyword(s) => QCondition::matches(path, s.clone()),
        }
    }

    fn condition(kind: ConditionKind<'_>) -> Result<QCondition, String> {
        Ok(match kind {
            ConditionKind::Match(path, value) => match_condition(path, value),
            // As on the embedded engine: one nested `should`, allowing mixed types.
            ConditionKind::MatchAny(path, values) => {
                QFilter::should(values.iter().map(|v| match_condition(path, v))).into()
            }
            ConditionKind::Range(path, r) => QCondition::range(
                path,
                Range {
                    lt: r.lt,
                    gt: r.gt,
                    gte: r.gte,
                    lte: r.lte,
                },
            ),
            ConditionKind::Nested(filter) => filter_inner(&filter)?.into(),
        })
    }

    fn conditions(list: &[crate::domain::vector::Condition]) -> Result<Vec<QCondition>, String> {
        list.iter().map(|c| condition(c.kind()?)).collect()
    }

    fn filter_inner(filter: &Filter) -> Result<QFilter, String> {
        Ok(QFilter {
            must: conditions(&filter.must)?,
            should: conditions(&filter.should)?,
            must_not: conditions(&filter.must_not)?,
            min_should: None,
        })
    }

    /// The client's filter (if any) AND `tenant == <tenant>`, further restricted to `ids`
    /// when given.
    pub fn search_filter(
        tenant: &Tenant,
        filter: Option<&Filter>,
        ids: Option<&[PointId]>,
    ) -> Result<QFilter, String> {
        let mut must = vec![QCondition::matches(TENANT_KEY, tenant.to_string())];
        if let Some(f) = filter {
            must.push(filter_inner(f)?.into());
        }
        if let Some(ids) = ids {
            must.push(QCondition::has_id(ids.iter().map(|id| point_id(*id))));
        }
        Ok(QFilter::must(must))
    }

    /// The stored payload: the client's fields plus the tenant.
    pub fn payload_with_tenant(
        mut payload: Map<String, Value>,
        tenant: &Tenant,
    ) -> qdrant_client::Payload {
        payload.insert(TENANT_KEY.to_owned(), Value::String(tenant.to_string()));
        qdrant_client::Payload::from(payload)
    }

    /// The payload as the client wrote it, or `None` when it belongs to another tenant.
    pub fn owned_payload(
        payload: std::collections::HashMap<String, q::Value>,
        tenant: &Tenant,
    ) -> Option<Map<String, Value>> {
        let mut map: Map<String, Value> = payload
            .into_iter()
            .map(|(k, v)| (k, v.into_json()))
            .collect();
        match map.remove(TENANT_KEY) {
            Some(Value::String(t)) if t == tenant.as_str() => Some(map),
            _ => None,
        }
    }

    /// A dense vector from a query or retrieval result.
    pub fn dense_vector(vectors: Option<q::VectorsOutput>) -> Option<Vec<f32>> {
        use q::vectors_output::VectorsOptions;
        match vectors?.vectors_options? {
            VectorsOptions::Vector(v) => match v.into_vector() {
                q::vector_output::Vector::Dense(d) => Some(d.data),
                _ => None,
            },
            VectorsOptions::Vectors(_) => None,
        }
    }
}

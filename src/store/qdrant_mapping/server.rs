//! The same mapping for the Qdrant server's gRPC types (`qdrant-client`), so a filter
//! means the same on both engines.

use qdrant_client::qdrant::{
    self as q, Condition as QCondition, Filter as QFilter, Range, point_id::PointIdOptions,
};
use serde_json::{Map, Value};

use super::{OVERSAMPLING, QUANTILE};
use crate::config::VectorQuantization;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    ConditionKind, Distance, Filter, IndexKind, MatchValue, PayloadIndex, PointId, Query,
    TENANT_KEY,
};

/// The same compressed copy as the embedded engine's (see the parent module).
pub fn quantization(q: VectorQuantization) -> Option<q::quantization_config::Quantization> {
    match q {
        VectorQuantization::None => None,
        VectorQuantization::Int8 => Some(
            q::ScalarQuantizationBuilder::default()
                .r#type(q::QuantizationType::Int8.into())
                .quantile(QUANTILE)
                .always_ram(true)
                .build()
                .into(),
        ),
        VectorQuantization::Turbo => Some(
            q::TurboQuantizationBuilder::new()
                .bits(q::TurboQuantBitSize::Bits4)
                .always_ram(true)
                .build()
                .into(),
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
        VectorsOptions::Vectors(mut named) => match named.vectors.remove("")?.into_vector() {
            q::vector_output::Vector::Dense(d) => Some(d.data),
            _ => None,
        },
    }
}

/// A point's vectors: the dense one, and its BM25 weights when it has text (the
/// same weights the embedded engine stores; see the parent module).
pub fn vectors(vector: Vec<f32>, payload: &Map<String, Value>) -> q::Vectors {
    match super::lexical_document(payload) {
        Some(terms) => q::NamedVectors::default()
            .add_vector("", q::Vector::new_dense(vector))
            .add_vector(
                super::LEXICAL,
                q::Vector::new_sparse(terms.indices, terms.values),
            )
            .into(),
        None => vector.into(),
    }
}

/// The sparse vector that holds BM25 weights, with IDF from the collection.
pub fn lexical_config() -> q::SparseVectorsConfigBuilder {
    let mut config = q::SparseVectorsConfigBuilder::default();
    config.add_named_vector_params(
        super::LEXICAL,
        q::SparseVectorParamsBuilder::default().modifier(q::Modifier::Idf),
    );
    config
}

/// The query and the vector it searches.
pub fn query(query: &Query) -> (q::Query, Option<&'static str>) {
    match query {
        Query::Dense(v) => (q::Query::new_nearest(v.clone()), None),
        Query::Lexical(text) => {
            let terms = super::lexical_query(text);
            (
                q::Query::new_nearest(q::VectorInput::new_sparse(terms.indices, terms.values)),
                Some(super::LEXICAL),
            )
        }
    }
}

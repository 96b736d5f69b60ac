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

use crate::domain::principal::Tenant;
use crate::domain::vector::{
    ConditionKind, Distance, Filter, MatchValue, PointId, ScoredPoint, TENANT_KEY,
};

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

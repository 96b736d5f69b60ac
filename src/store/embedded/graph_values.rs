//! Conversions between JSON values and grafeo's values, in both directions.

use std::sync::Arc;

use grafeo::Value;
use serde_json::{Map, Number, Value as Json};

use crate::domain::graph::{ID_PROPERTY, Node, Properties, TENANT_PROPERTY};
use crate::store::{ErrorKind, StoreError};

/// grafeo's internal keys on node and edge maps; never shown to clients.
const INTERNAL_KEYS: [&str; 4] = ["_id", "_labels", "_type", "_source"];

/// JSON → grafeo. Integers that fit stay integers; maps and nulls are allowed here
/// because Cypher parameters may use them (node properties are checked by the service).
pub fn to_grafeo(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::List(items.iter().map(to_grafeo).collect::<Vec<_>>().into()),
        Json::Object(map) => map_to_grafeo(map),
    }
}

pub fn map_to_grafeo(map: &Properties) -> Value {
    Value::Map(Arc::new(
        map.iter()
            .map(|(k, v)| (k.as_str().into(), to_grafeo(v)))
            .collect(),
    ))
}

/// grafeo → JSON. Nodes and edges (maps carrying grafeo's internal keys) lose those keys
/// and the tenant property; temporal and other exotic values become their text form.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int64(i) => Json::from(*i),
        Value::Float64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Vector(v) => Json::Array(v.iter().map(|f| Json::from(f64::from(*f))).collect()),
        Value::Map(map) => {
            let is_entity = map.keys().any(|k| INTERNAL_KEYS.contains(&k.as_str()));
            let mut out = Map::new();
            if let Some(labels) = map.get("_labels") {
                out.insert("_labels".into(), to_json(labels));
            }
            if let Some(t) = map.get("_type") {
                out.insert("_type".into(), to_json(t));
            }
            for (k, v) in map.iter() {
                let key = k.as_str();
                if INTERNAL_KEYS.contains(&key) || (is_entity && key == TENANT_PROPERTY) {
                    continue;
                }
                out.insert(key.to_owned(), to_json(v));
            }
            Json::Object(out)
        }
        Value::Path { nodes, edges } => serde_json::json!({
            "nodes": nodes.iter().map(to_json).collect::<Vec<_>>(),
            "relationships": edges.iter().map(to_json).collect::<Vec<_>>(),
        }),
        other => Json::String(other.to_string()),
    }
}

/// Reads a node from the columns `id, labels(n), properties(n)`.
pub fn node_from_row(row: &[Value]) -> Option<Node> {
    let [id, labels, props, ..] = row else {
        return None;
    };
    let id = id.as_str()?.to_owned();
    let labels = match labels {
        Value::List(items) => items
            .iter()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let properties = match props {
        Value::Map(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != ID_PROPERTY && k.as_str() != TENANT_PROPERTY)
            .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
            .collect(),
        _ => Map::new(),
    };
    Some(Node {
        id,
        labels,
        properties,
    })
}

/// Maps engine errors: timeouts and permission/syntax problems are the caller's or the
/// clock's, everything else is ours.
pub(super) fn engine(e: grafeo::Error) -> StoreError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let kind = match &e {
        grafeo::Error::Query(_) if lower.contains("timeout") || lower.contains("timed out") => {
            ErrorKind::Timeout
        }
        grafeo::Error::Query(_) => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    };
    StoreError::new(kind, format!("graph engine: {text}"))
}

/// `coalesce(value, 0) + delta`; `Err(value)` when the stored value is not a number.
pub(super) fn plus_any(
    value: Option<grafeo::Value>,
    delta: i64,
) -> Result<grafeo::Value, grafeo::Value> {
    use grafeo::Value::{Float64, Int64, Null};
    Ok(match value {
        None | Some(Null) => Int64(delta),
        Some(Int64(w)) => Int64(w.saturating_add(delta)),
        Some(Float64(w)) => Float64(w + delta as f64),
        Some(other) => return Err(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_grafeo_values() {
        let json =
            serde_json::json!({"a": 1, "b": 2.5, "c": "x", "d": [true, null], "e": {"f": -3}});
        assert_eq!(to_json(&to_grafeo(&json)), json);
    }
}

//! Vector collections, points, payload filters and search results, in the shape the API
//! speaks; stores map these to their engine's types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Payload key the server writes on every point; clients may not set or filter on it.
pub const TENANT_KEY: &str = "tenant";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    Cosine,
    Dot,
    Euclid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionSpec {
    pub dim: usize,
    pub distance: Distance,
}

/// A validated collection name (see [`super::is_valid_name`]): it becomes a directory
/// name and a Qdrant collection name, so a store accepts no other kind. Deserialising
/// one validates it too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectionName(String);

string_newtype!(CollectionName, named "collection name");

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CollectionInfo {
    pub name: String,
    pub dim: usize,
    pub distance: Distance,
    pub points_count: usize,
    pub indexed_vectors_count: usize,
    /// Whether the engine is optimising the collection (building an index over new
    /// points, or merging segments), or, on the embedded store, will look at it at its
    /// next maintenance pass because points were written since the last one. Searches
    /// are answered meanwhile and scan the points not yet indexed, so a load
    /// measurement should wait for `false`.
    pub optimizing: bool,
    /// Payload fields with an index, by field name.
    pub payload_indexes: Vec<PayloadIndex>,
}

/// The type a payload index keeps its field as; filters on the field then use the index
/// instead of reading every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    Keyword,
    Integer,
    Float,
    Bool,
}

/// An index on one payload field (a top-level key, or a dotted path into objects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayloadIndex {
    /// Not `tenant`, which the server keeps.
    #[schema(
        max_length = 128,
        pattern = r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$"
    )]
    pub field: String,
    #[serde(rename = "type")]
    pub kind: IndexKind,
}

/// The squared length of `vector`, summed in `f64` so that it cannot overflow.
pub fn squared_length(vector: &[f32]) -> f64 {
    vector.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// Whether `field` may be indexed by a client: a dotted path of identifiers, at most
/// 128 bytes, and not the reserved tenant key.
pub fn is_indexable_field(field: &str) -> bool {
    field.len() <= 128
        && field != TENANT_KEY
        && field.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// A point id: an unsigned integer or a UUID (sent as a string).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PointId {
    #[schema(format = "uint64")]
    Num(u64),
    Uuid(Uuid),
}

/// As the id is sent: messages and logs say `point 7` or `point "5c56…"`, not
/// `point Num(7)`.
impl std::fmt::Debug for PointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => write!(f, "\"{u}\""),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    pub payload: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoredPoint {
    pub id: PointId,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// A stored point as retrieved by id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Record {
    pub id: PointId,
    pub payload: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// What a search ranks by.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Query {
    /// Nearest dense vectors.
    Dense(Vec<f32>),
    /// BM25 over the points' text (payload `text`, after a `title`), with IDF from the
    /// collection.
    Lexical(String),
}

/// A validated search, already scoped to one tenant's collection by the caller.
/// (Serialised only to key the search cache.)
#[derive(Debug, Clone, Serialize)]
pub struct SearchQuery {
    pub query: Query,
    pub limit: usize,
    pub offset: usize,
    pub score_threshold: Option<f32>,
    pub filter: Option<Filter>,
    /// Restricts the search to these points (hybrid retrieval scores graph-found chunks
    /// this way, under the same filter as the vector hits).
    pub ids: Option<Vec<PointId>>,
    pub with_payload: bool,
    pub with_vector: bool,
}

/// A boolean combination of conditions, Qdrant-style: all of `must`, at least one of
/// `should` (when present), none of `must_not`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub should: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not: Vec<Condition>,
}

/// One condition as it arrives on the wire: a field condition (`key` with `match` or
/// `range`) or a nested filter (`must`/`should`/`must_not`). [`Condition::kind`] tells
/// which, or why it is neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<MatchSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub must: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub should: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub must_not: Option<Vec<Condition>>,
}

/// `{"value": v}` for equality, `{"any": [v, …]}` for membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<MatchValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<MatchValue>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MatchValue {
    Bool(bool),
    Int(i64),
    Keyword(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

/// What a wire [`Condition`] means once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionKind<'a> {
    Match(&'a str, &'a MatchValue),
    MatchAny(&'a str, &'a [MatchValue]),
    Range(&'a str, &'a RangeSpec),
    Nested(Filter),
}

impl Condition {
    /// Classifies the condition, or says in one sentence why it is malformed.
    pub fn kind(&self) -> Result<ConditionKind<'_>, String> {
        let nested = self.must.is_some() || self.should.is_some() || self.must_not.is_some();
        match (&self.key, &self.matches, &self.range, nested) {
            (None, None, None, true) => Ok(ConditionKind::Nested(Filter {
                must: self.must.clone().unwrap_or_default(),
                should: self.should.clone().unwrap_or_default(),
                must_not: self.must_not.clone().unwrap_or_default(),
            })),
            (Some(key), Some(m), None, false) => match (&m.value, &m.any) {
                (Some(v), None) => Ok(ConditionKind::Match(key, v)),
                (None, Some(any)) if !any.is_empty() => Ok(ConditionKind::MatchAny(key, any)),
                _ => Err(format!(
                    "condition on {key:?}: `match` needs exactly one of `value` or a non-empty `any`"
                )),
            },
            (Some(key), None, Some(r), false) => {
                if r.gt.is_none() && r.gte.is_none() && r.lt.is_none() && r.lte.is_none() {
                    return Err(format!("condition on {key:?}: `range` needs a bound"));
                }
                let bounds = [r.gt, r.gte, r.lt, r.lte];
                if bounds.iter().flatten().any(|b| !b.is_finite()) {
                    return Err(format!("condition on {key:?}: range bounds must be finite"));
                }
                Ok(ConditionKind::Range(key, r))
            }
            _ => Err(
                "each condition needs `key` with one of `match` or `range`, or a nested `must`/`should`/`must_not`"
                    .into(),
            ),
        }
    }
}

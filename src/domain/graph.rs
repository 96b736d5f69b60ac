//! Graph nodes, relationships and traversal requests as the API speaks them. Property
//! values are JSON scalars or arrays of scalars: the subset every graph engine stores.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Node property the server writes for tenant scoping; clients may not set it.
pub const TENANT_PROPERTY: &str = "tenant";
/// Node property holding the client's node id.
pub const ID_PROPERTY: &str = "id";

pub type Properties = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Node {
    pub id: String,
    pub labels: Vec<String>,
    #[schema(value_type = Object)]
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Relationship {
    pub from: String,
    pub to: String,
    #[serde(rename = "type")]
    pub rel_type: String,
    #[schema(value_type = Object)]
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
    #[default]
    Both,
}

/// A validated node write: merge on `id`, add `labels`, set `properties`.
#[derive(Debug, Clone)]
pub struct NodeUpsert {
    pub id: String,
    pub labels: Vec<String>,
    pub properties: Properties,
}

/// A validated relationship write: merge one `rel_type` edge from `from` to `to`.
#[derive(Debug, Clone)]
pub struct RelationshipUpsert {
    pub from: String,
    pub to: String,
    pub rel_type: String,
    pub properties: Properties,
}

/// A stored node, written again as it is (copying a graph to another store).
impl From<Node> for NodeUpsert {
    fn from(n: Node) -> Self {
        Self {
            id: n.id,
            labels: n.labels,
            properties: n.properties,
        }
    }
}

/// A stored relationship, written again as it is.
impl From<Relationship> for RelationshipUpsert {
    fn from(r: Relationship) -> Self {
        Self {
            from: r.from,
            to: r.to,
            rel_type: r.rel_type,
            properties: r.properties,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FindNodes {
    pub label: String,
    pub equals: Properties,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct NeighborQuery {
    pub id: String,
    pub hops: u8,
    pub direction: Direction,
    pub types: Vec<String>,
    pub limit: usize,
}

/// A node reached from the start node, with the shortest hop count and the relationship
/// types along one shortest path.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Neighbor {
    pub node: Node,
    pub depth: u8,
    pub path: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CypherQuery {
    pub query: String,
    pub params: Properties,
    pub max_rows: usize,
    /// Most elements a `range()` in the query may build.
    pub max_list: usize,
    /// Largest upper bound of a variable-length relationship.
    pub max_hops: u32,
    /// Largest result, in bytes of JSON; a larger one is refused rather than sent.
    pub max_result_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CypherResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// True when the query produced more rows than the row limit and the rest were dropped.
    pub truncated: bool,
}

/// Whether a write created the thing or updated an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

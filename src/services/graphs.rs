//! Graph operations: validate ids, labels, types, properties and sizes against the
//! configured limits, then call the graph store for the caller's tenant.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::sync::Arc;

use crate::config::{Limits, Settings};
use crate::domain::graph::{
    CypherQuery, CypherResult, Direction, FindNodes, ID_PROPERTY, Neighbor, NeighborQuery, Node,
    NodeUpsert, Properties, RelationshipUpsert, TENANT_PROPERTY, Written,
};
use crate::domain::ingest::{INGEST_LABELS, INGEST_RELATIONSHIPS, is_ingest_node_id};
use crate::domain::principal::Principal;
use crate::domain::{DisplayedId, Identifier, MAX_IDENTIFIER_LEN, is_valid_identifier};
use crate::services::budget::{ITEM, ReadBudget, Reserved, worst};
use crate::services::error::{Result, ServiceError};
use crate::services::quota::{Kept, Quotas};
use crate::services::{bounded, bounded_json};
use crate::store::{ErrorKind, GraphStore};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    /// Not `doc:…` or `entity:…`: ingest's nodes change only through `/ingest`.
    #[schema(value_type = DisplayedId)]
    pub id: String,
    /// Not `Document`, `Chunk` or `Entity`, which are ingest's.
    #[serde(default)]
    #[schema(value_type = Vec<Identifier>)]
    pub labels: Vec<String>,
    /// Strings, booleans, finite numbers (integers within signed 64 bits) and arrays of
    /// them; `id` and `tenant` are reserved.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Properties,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindRequest {
    #[schema(value_type = Identifier)]
    pub label: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Properties,
    #[serde(default = "default_page")]
    #[schema(minimum = 1)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

fn default_page() -> usize {
    25
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FindResponse {
    pub nodes: Vec<Node>,
    /// Offset of the next page, when this page was full.
    pub next_offset: Option<usize>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationshipRequest {
    #[schema(value_type = DisplayedId)]
    pub from: String,
    #[schema(value_type = DisplayedId)]
    pub to: String,
    /// Not `PART_OF`, `MENTIONS` or `RELATED_TO`, which are ingest's.
    #[serde(rename = "type")]
    #[schema(value_type = Identifier)]
    pub rel_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Properties,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NeighborsRequest {
    #[schema(value_type = DisplayedId)]
    pub id: String,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 3)]
    pub hops: u8,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    #[schema(value_type = Vec<Identifier>)]
    pub types: Vec<String>,
    #[serde(default = "default_page")]
    #[schema(minimum = 1)]
    pub limit: usize,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NeighborsResponse {
    pub neighbors: Vec<Neighbor>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[schema(min_length = 1)]
    pub query: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Properties,
    #[schema(minimum = 1)]
    pub limit: Option<usize>,
}

fn check_id(id: &str, limits: &Limits) -> Result<()> {
    bounded(
        "node id length in bytes",
        id.len(),
        1,
        limits.max_id_len.get(),
    )?;
    if !crate::domain::is_displayable_id(id) {
        return Err(ServiceError::Invalid(
            "node id must not contain control or bidirectional-text characters".into(),
        ));
    }
    Ok(())
}

/// A node id the graph API may write or delete: not one of ingest's document or entity
/// nodes, which change only through `/ingest`.
fn check_own_id(id: &str, limits: &Limits) -> Result<()> {
    check_id(id, limits)?;
    if is_ingest_node_id(id) {
        return Err(ServiceError::Invalid(format!(
            "node {id:?} is ingest's (ids starting `doc:` or `entity:`): it changes only \
             through /ingest"
        )));
    }
    Ok(())
}

fn check_identifier(kind: &str, name: &str) -> Result<()> {
    if is_valid_identifier(name) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "{kind} {name:?} must match ^[A-Za-z][A-Za-z0-9_]{{0,63}}$"
        )))
    }
}

/// An integer too large for the engines' signed 64 bits: it would reach them as a
/// float, its low digits lost.
fn is_past_i64(n: &serde_json::Number) -> bool {
    !n.is_i64() && !n.is_f64()
}

/// A string, boolean, finite float or integer within signed 64 bits.
fn is_scalar(v: &Value) -> bool {
    match v {
        Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => !is_past_i64(n) && n.as_f64().is_some_and(f64::is_finite),
        _ => false,
    }
}

/// Whether a value holds, at any depth, an integer past signed 64 bits.
fn has_unsigned_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => is_past_i64(n),
        Value::Array(items) => items.iter().any(has_unsigned_integer),
        Value::Object(map) => map.values().any(has_unsigned_integer),
        _ => false,
    }
}

/// Property values every graph engine can store: scalars and arrays of scalars. `id` and
/// `tenant` are reserved.
fn check_properties(props: &Properties, limits: &Limits) -> Result<()> {
    for (key, value) in props {
        if key.is_empty() || key == ID_PROPERTY || key == TENANT_PROPERTY {
            return Err(ServiceError::Invalid(format!(
                "property key {key:?} is reserved or empty"
            )));
        }
        let ok = match value {
            Value::Array(items) => items.iter().all(is_scalar),
            v => is_scalar(v),
        };
        if !ok {
            return Err(ServiceError::Invalid(format!(
                "property {key:?} must be a string, number (integers within signed 64 \
                 bits), boolean or an array of them"
            )));
        }
    }
    bounded_json("properties", props, limits.max_properties_bytes)
}

fn check_page(limit: usize, offset: usize, max_limit: usize, max_offset: usize) -> Result<()> {
    bounded("limit", limit, 1, max_limit)?;
    bounded("offset", offset, 0, max_offset)
}

/// Nodes, relationships, traversal and client Cypher: validation against the limits,
/// then the graph store.
#[derive(Clone)]
pub struct GraphService {
    settings: Arc<Settings>,
    graph: Arc<dyn GraphStore>,
    quotas: Quotas,
    budget: ReadBudget,
}

/// Bytes of JSON a label or relationship type may take in an answer.
const IDENTIFIER: usize = MAX_IDENTIFIER_LEN + 3;

impl GraphService {
    pub fn new(
        settings: Arc<Settings>,
        graph: Arc<dyn GraphStore>,
        (quotas, budget): (Quotas, ReadBudget),
    ) -> Self {
        Self {
            settings,
            graph,
            quotas,
            budget,
        }
    }

    /// The most bytes of JSON one node of an answer may take, with `hops` relationship
    /// types on its path.
    fn node_worst(&self, hops: u8) -> usize {
        let limits = &self.settings.limits;
        let labels = (limits.max_labels.get() + usize::from(hops)) * IDENTIFIER;
        ITEM + limits.max_id_len.get() + labels + limits.max_properties_bytes
    }
}

impl GraphService {
    pub async fn upsert_node(&self, who: &Principal, req: NodeRequest) -> Result<(Node, Written)> {
        let limits = &self.settings.limits;
        check_own_id(&req.id, limits)?;
        bounded(
            "number of labels",
            req.labels.len(),
            0,
            limits.max_labels.get(),
        )?;
        for label in &req.labels {
            check_identifier("label", label)?;
            if INGEST_LABELS.contains(&label.as_str()) {
                return Err(ServiceError::Invalid(format!(
                    "label {label:?} belongs to ingest's nodes; use another"
                )));
            }
        }
        check_properties(&req.properties, limits)?;
        let read = self.check_not_a_chunk(who, &req.id).await?;
        self.take_node_quota(who, &req.id, read).await?;
        let node = NodeUpsert {
            id: req.id,
            labels: req.labels,
            properties: req.properties,
        };
        Ok(self.graph.upsert_node(&who.tenant, node).await?)
    }

    /// Takes room in the tenant's graph quota for one node; at the quota, none for a
    /// node that exists already (whose upsert replaces it). `read`: how many nodes by
    /// `id` a read has just found, if one was made.
    async fn take_node_quota(&self, who: &Principal, id: &str, read: Option<u64>) -> Result<()> {
        let existing = async {
            if let Some(found) = read {
                return Ok(found);
            }
            match self.graph.get_node(&who.tenant, id).await {
                Ok(_) => Ok(1),
                Err(e) if e.kind == ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e.into()),
            }
        };
        let quotas = &self.quotas;
        quotas
            .take_new(&who.tenant, Kept::GraphItems, 1, existing)
            .await
    }

    /// Ingest's chunk nodes carry their point's UUID as id, which the id-space check
    /// cannot tell from a client's UUID: a node by a UUID is read first, and refused if
    /// ingest wrote it (one read, for UUID ids only). Returns how many nodes the read
    /// found, if it was made.
    async fn check_not_a_chunk(&self, who: &Principal, id: &str) -> Result<Option<u64>> {
        if uuid::Uuid::try_parse(id).is_err() {
            return Ok(None);
        }
        let ingests = |node: &Node| {
            node.labels
                .iter()
                .any(|l| INGEST_LABELS.contains(&l.as_str()))
        };
        match self.graph.get_node(&who.tenant, id).await {
            Ok(node) if ingests(&node) => Err(ServiceError::Invalid(format!(
                "node {id:?} is one of ingest's chunks: it changes only through /ingest"
            ))),
            Ok(_) => Ok(Some(1)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(Some(0)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_node(&self, who: &Principal, id: &str) -> Result<Node> {
        check_id(id, &self.settings.limits)?;
        Ok(self.graph.get_node(&who.tenant, id).await?)
    }

    pub async fn find_nodes(
        &self,
        who: &Principal,
        req: FindRequest,
    ) -> Result<Reserved<FindResponse>> {
        let limits = &self.settings.limits;
        check_identifier("label", &req.label)?;
        check_page(
            req.limit,
            req.offset,
            limits.max_find_limit.get(),
            limits.max_find_offset,
        )?;
        check_properties(&req.properties, limits)?;
        let find = FindNodes {
            label: req.label,
            equals: req.properties,
            limit: req.limit,
            offset: req.offset,
        };
        let page = worst(req.limit, self.node_worst(0));
        let reservation = self.budget.reserve(&who.tenant, page).await?;
        let nodes = reservation
            .during(self.graph.find_nodes(&who.tenant, find))
            .await?;
        let next_offset = (nodes.len() == req.limit).then_some(req.offset + req.limit);
        Ok(Reserved {
            value: FindResponse { nodes, next_offset },
            reservation,
        })
    }

    pub async fn delete_node(&self, who: &Principal, id: &str) -> Result<()> {
        check_own_id(id, &self.settings.limits)?;
        self.check_not_a_chunk(who, id).await?;
        self.graph.delete_node(&who.tenant, id).await?;
        self.quotas.freed(&who.tenant, Kept::GraphItems);
        Ok(())
    }

    pub async fn upsert_relationship(
        &self,
        who: &Principal,
        req: RelationshipRequest,
    ) -> Result<Written> {
        let limits = &self.settings.limits;
        check_id(&req.from, limits)?;
        check_id(&req.to, limits)?;
        check_identifier("relationship type", &req.rel_type)?;
        if INGEST_RELATIONSHIPS.contains(&req.rel_type.as_str()) {
            return Err(ServiceError::Invalid(format!(
                "relationship type {:?} belongs to ingest's graph; use another",
                req.rel_type
            )));
        }
        check_properties(&req.properties, limits)?;
        let existing = async {
            let graph = &self.graph;
            let there = graph.has_relationship(&who.tenant, &req.from, &req.to, &req.rel_type);
            Ok(u64::from(there.await?))
        };
        let quotas = &self.quotas;
        quotas
            .take_new(&who.tenant, Kept::GraphItems, 1, existing)
            .await?;
        let rel = RelationshipUpsert {
            from: req.from,
            to: req.to,
            rel_type: req.rel_type,
            properties: req.properties,
        };
        Ok(self.graph.upsert_relationship(&who.tenant, rel).await?)
    }

    pub async fn neighbors(
        &self,
        who: &Principal,
        req: NeighborsRequest,
    ) -> Result<Reserved<NeighborsResponse>> {
        let limits = &self.settings.limits;
        check_id(&req.id, limits)?;
        bounded("hops", req.hops.into(), 1, limits.max_graph_hops.into())?;
        check_page(req.limit, 0, limits.max_neighbors_limit.get(), 0)?;
        bounded(
            "number of types",
            req.types.len(),
            0,
            limits.max_labels.get(),
        )?;
        for t in &req.types {
            check_identifier("relationship type", t)?;
        }
        let query = NeighborQuery {
            id: req.id,
            hops: req.hops,
            direction: req.direction,
            types: req.types,
            limit: req.limit,
        };
        let page = worst(query.limit, self.node_worst(query.hops));
        let reservation = self.budget.reserve(&who.tenant, page).await?;
        let neighbors = reservation
            .during(self.graph.neighbors(&who.tenant, query))
            .await?;
        Ok(Reserved {
            value: NeighborsResponse { neighbors },
            reservation,
        })
    }

    pub async fn query(
        &self,
        who: &Principal,
        req: QueryRequest,
    ) -> Result<Reserved<CypherResult>> {
        let limits = &self.settings.limits;
        let text = if req.query.trim().is_empty() {
            0
        } else {
            req.query.len()
        };
        bounded(
            "query length in bytes",
            text,
            1,
            limits.max_query_bytes.get(),
        )?;
        if req.params.contains_key(TENANT_PROPERTY) {
            return Err(ServiceError::Invalid(
                "parameter $tenant is set by the server to the caller's tenant".into(),
            ));
        }
        bounded_json("params", &req.params, limits.max_properties_bytes)?;
        if let Some((name, _)) = req.params.iter().find(|(_, v)| has_unsigned_integer(v)) {
            return Err(ServiceError::Invalid(format!(
                "parameter ${name} holds an integer past signed 64 bits, which no graph \
                 engine holds"
            )));
        }
        let max_rows = req.limit.unwrap_or(limits.max_query_rows.get());
        bounded("limit", max_rows, 1, limits.max_query_rows.get())?;
        let query = CypherQuery {
            query: req.query,
            params: req.params,
            max_rows,
            max_list: limits.max_query_list.get(),
            max_hops: limits.max_graph_hops.into(),
            max_result_bytes: limits.max_query_result_bytes.get(),
        };
        let most = limits.max_query_result_bytes.get() as u64;
        let reservation = self.budget.reserve(&who.tenant, most).await?;
        // The embedded engine runs it in a child process, killed if the request is
        // dropped; a Bolt server's answer is read on this task.
        let value = reservation
            .during(self.graph.query(&who.tenant, query))
            .await?;
        Ok(Reserved { value, reservation })
    }
}

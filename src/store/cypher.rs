//! The graph store's Cypher, written once for every executor (embedded grafeo or a Bolt
//! server). Values always travel as `$params`; the only spliced text is labels and
//! relationship types, which callers validate against `^[A-Za-z][A-Za-z0-9_]{0,63}$`
//! and which are also backtick-quoted here. Client Cypher is admitted by
//! [`super::client_cypher`].

use crate::domain::graph::Direction;

/// Columns every node-returning statement yields, in this order.
const NODE_RETURN: &str = "n.id, labels(n), properties(n)";
/// [`NODE_RETURN`]'s column names, for executors whose rows are keyed by name.
pub const NODE_COLUMNS: [&str; 3] = ["n.id", "labels(n)", "properties(n)"];

pub const GET_NODE: &str =
    "MATCH (n {id: $id, tenant: $tenant}) RETURN n.id, labels(n), properties(n)";

pub const COUNT_NODE: &str = "MATCH (n {id: $id, tenant: $tenant}) RETURN count(n)";

pub const DELETE_NODE: &str = "MATCH (n {id: $id, tenant: $tenant}) DETACH DELETE n";

fn quoted(identifier: &str) -> String {
    debug_assert!(crate::domain::is_valid_identifier(identifier));
    format!("`{identifier}`")
}

fn label_list(labels: &[String]) -> String {
    labels.iter().map(|l| format!(":{}", quoted(l))).collect()
}

/// Creates a node that does not exist yet, with its labels in the CREATE pattern.
/// (grafeo 0.5.44 drops labels SET on a node created earlier in the same transaction,
/// so creation and update are separate statements; callers check existence first
/// while holding the write lock.)
pub fn create_node(labels: &[String]) -> String {
    format!(
        "CREATE (n{} {{id: $id, tenant: $tenant}}) SET n += $props RETURN {NODE_RETURN}",
        label_list(labels)
    )
}

/// Adds labels to the existing node (id, tenant) and sets properties; its other labels
/// and properties stay.
pub fn update_node(labels: &[String]) -> String {
    let set_labels = if labels.is_empty() {
        String::new()
    } else {
        format!(" SET n{}", label_list(labels))
    };
    format!(
        "MATCH (n {{id: $id, tenant: $tenant}}){set_labels} SET n += $props RETURN {NODE_RETURN}"
    )
}

/// Nodes with `label` whose properties `$k0..` equal `$v0..`, ordered by id for paging.
/// `keys` are the properties to match, in the order of the `$k<i>`/`$v<i>` parameters.
/// A key that is a valid identifier is spliced as a quoted property name, which the
/// engine reads directly; any other key goes through `n[$k<i>]`, which grafeo answers by
/// materialising every property of every candidate node (a find over 1,000 nodes of a
/// label: 5.1 → 3.6 ms in a debug build).
pub fn find_nodes<'a>(
    label: &str,
    keys: impl IntoIterator<Item = &'a str>,
    offset: usize,
    limit: usize,
) -> String {
    let mut clauses = vec!["n.tenant = $tenant".to_owned()];
    clauses.extend(keys.into_iter().enumerate().map(|(i, key)| {
        if crate::domain::is_valid_identifier(key) {
            format!("n.{} = $v{i}", quoted(key))
        } else {
            format!("n[$k{i}] = $v{i}")
        }
    }));
    format!(
        "MATCH (n:{}) WHERE {} RETURN {NODE_RETURN} ORDER BY n.id SKIP {offset} LIMIT {limit}",
        quoted(label),
        clauses.join(" AND ")
    )
}

const REL_ENDS: &str = "MATCH (a {id: $from, tenant: $tenant}), (b {id: $to, tenant: $tenant})";

pub fn count_relationship(rel_type: &str) -> String {
    format!(
        "{REL_ENDS} MATCH (a)-[r:{}]->(b) RETURN count(r)",
        quoted(rel_type)
    )
}

pub fn merge_relationship(rel_type: &str) -> String {
    format!(
        "{REL_ENDS} MERGE (a)-[r:{}]->(b) SET r += $props RETURN count(r)",
        quoted(rel_type)
    )
}

/// One hop from every node in `$frontier`: yields `s.id, type(r)` and the node columns.
pub fn expand(direction: Direction, types: &[String]) -> String {
    let types = if types.is_empty() {
        String::new()
    } else {
        let quoted: Vec<_> = types.iter().map(|t| quoted(t)).collect();
        format!(":{}", quoted.join("|"))
    };
    let pattern = match direction {
        Direction::Out => format!("(s)-[r{types}]->(n)"),
        Direction::In => format!("(s)<-[r{types}]-(n)"),
        Direction::Both => format!("(s)-[r{types}]-(n)"),
    };
    format!(
        "MATCH {pattern} WHERE s.tenant = $tenant AND s.id IN $frontier AND n.tenant = $tenant \
         RETURN s.id, type(r), {NODE_RETURN} ORDER BY n.id"
    )
}

/// Ingest's document subgraph. Lookups go through `id` (indexed) and UNWIND, never a
/// label scan: `(:Document {id})<-[:PART_OF]-(:Chunk)-[:MENTIONS]->(:Entity {id})`.
pub mod documents {
    pub const MENTION_COLUMNS: [&str; 4] = ["chunk", "entity", "name", "mentions"];
    pub const LINK_COLUMNS: [&str; 2] = ["chunk", "entity"];
    pub const ENTITY_COLUMNS: [&str; 3] = ["e.id", "e.name", "e.mentions"];
    pub const EXTENT_COLUMNS: [&str; 3] = ["d.doc_id", "d.collection", "d.chunks"];

    /// The extents of the `Document` nodes in `$ids` that exist.
    pub const EXTENTS: &str = "UNWIND $ids AS id MATCH (d:Document {id: id, tenant: $tenant}) \
         RETURN d.doc_id, d.collection, d.chunks";
    pub const RELATED_COLUMNS: [&str; 5] = ["a.id", "b.id", "b.name", "b.mentions", "r.weight"];

    /// [`MENTION_COLUMNS`] for every mention by the document's chunks.
    pub const MENTIONS: &str = "MATCH (d {id: $doc_node, tenant: $tenant})<-[:PART_OF]-(c:Chunk)\
         -[:MENTIONS]->(e:Entity) \
         RETURN c.id AS chunk, e.id AS entity, e.name AS name, e.mentions AS mentions";

    pub const DELETE_CHUNKS: &str = "MATCH (d {id: $doc_node, tenant: $tenant})<-[:PART_OF]-(c:Chunk) \
         DETACH DELETE c";

    /// `$chunks`: list of `{id, index}`.
    pub const CREATE_CHUNKS: &str = "MATCH (d {id: $doc_node, tenant: $tenant}) UNWIND $chunks AS c \
         CREATE (k:Chunk {id: c.id, tenant: $tenant, doc_id: $doc, index: c.index, \
         collection: $collection})-[:PART_OF]->(d)";

    /// `e.id, e.name, e.mentions` of the entities in `$ids` that exist.
    pub const ENTITIES: &str = "UNWIND $ids AS id MATCH (e:Entity {id: id, tenant: $tenant}) \
         RETURN e.id, e.name, e.mentions";

    /// `$counts`: list of `{id, delta}`: chunks that mention each entity, kept at ingest
    /// so retrieval knows how specific an entity is without counting a hub's edges.
    pub const ADD_MENTION_COUNTS: &str = "UNWIND $counts AS d \
         MATCH (e:Entity {id: d.id, tenant: $tenant}) \
         SET e.mentions = coalesce(e.mentions, 0) + d.delta";

    /// `$entities`: list of `{id, name}`, none existing yet.
    pub const CREATE_ENTITIES: &str = "UNWIND $entities AS e \
         CREATE (n:Entity {id: e.id, tenant: $tenant, name: e.name})";

    /// `$mentions`: list of `{chunk, entity}`.
    pub const CREATE_MENTIONS: &str = "UNWIND $mentions AS m \
         MATCH (k:Chunk {id: m.chunk, tenant: $tenant}) \
         MATCH (n:Entity {id: m.entity, tenant: $tenant}) CREATE (k)-[:MENTIONS]->(n)";

    /// `$pairs`: list of `{a, b, delta}` with `a < b`: adds `delta` to the pair's
    /// `RELATED_TO` weight (creating the edge) and removes an edge that falls to 0. Only
    /// the pairs a document changes are touched and no edge is read back, so the cost
    /// does not grow with a hub's degree (`MERGE` looks for the edge among `a`'s
    /// outgoing edges in the engine, without materialising them as rows).
    pub const ADD_WEIGHTS: &str = "UNWIND $pairs AS p \
         MATCH (a:Entity {id: p.a, tenant: $tenant}) MATCH (b:Entity {id: p.b, tenant: $tenant}) \
         MERGE (a)-[r:RELATED_TO]->(b) SET r.weight = coalesce(r.weight, 0) + p.delta \
         WITH r WHERE r.weight <= 0 DELETE r";

    /// `e.id` of the entities in `$ids` that some chunk still mentions.
    pub const STILL_MENTIONED: &str = "UNWIND $ids AS id \
         MATCH (e:Entity {id: id, tenant: $tenant})<-[:MENTIONS]-(c:Chunk) RETURN DISTINCT e.id";

    pub const DELETE_ENTITIES: &str =
        "UNWIND $ids AS id MATCH (e:Entity {id: id, tenant: $tenant}) DETACH DELETE e";

    /// [`MENTION_COLUMNS`] for the chunks in `$ids`. The chunk id is the unwound one
    /// and the far end carries no label test: grafeo builds a whole node for every
    /// property or label it reads, and a chunk's `MENTIONS` edges lead to entities only
    /// (ingest writes them; a client's own edges stay in its tenant).
    pub const CHUNK_MENTIONS: &str = "UNWIND $ids AS id \
         MATCH (c:Chunk {id: id, tenant: $tenant})-[:MENTIONS]->(e) \
         RETURN id AS chunk, e.id AS entity, e.name AS name, e.mentions AS mentions";

    /// [`LINK_COLUMNS`] for chunks mentioning the entities in `$ids`, which the caller
    /// orders best first: the limit drops the least relevant ones. Only ids are read
    /// (see [`CHUNK_MENTIONS`] on why).
    pub fn entity_mentions(limit: usize) -> String {
        format!(
            "UNWIND $ids AS id MATCH (e:Entity {{id: id, tenant: $tenant}})<-[:MENTIONS]-(c) \
             RETURN c.id AS chunk, id AS entity LIMIT {limit}"
        )
    }

    /// `a.id, b.id, b.name, b.mentions, r.weight` one `RELATED_TO` hop (either way)
    /// from `$ids`.
    pub fn related(limit: usize) -> String {
        format!(
            "UNWIND $ids AS id MATCH (a:Entity {{id: id, tenant: $tenant}})-[r:RELATED_TO]-(b:Entity) \
             RETURN a.id, b.id, b.name, b.mentions, r.weight \
             ORDER BY r.weight DESC LIMIT {limit}"
        )
    }
}

/// Copying a tenant's graph to another store (`ragbrain migrate`): nodes page by id,
/// relationships by the nodes they leave.
pub mod export {
    use super::{label_list, quoted};

    pub const NODE_COUNT_COLUMNS: [&str; 1] = ["count(n)"];
    pub const NODES_COUNT: &str = "MATCH (n {tenant: $tenant}) RETURN count(n)";
    pub const RELATIONSHIP_COUNT_COLUMNS: [&str; 1] = ["count(r)"];
    pub const RELATIONSHIPS_COUNT: &str =
        "MATCH (a {tenant: $tenant})-[r]->(b {tenant: $tenant}) RETURN count(r)";

    /// The ids of the tenant's nodes after `$after`, in order ([`EXISTING_COLUMNS`]).
    /// Ids only: grafeo builds every returned expression of every candidate row before
    /// it sorts, so returning whole nodes here cost a page a scan of every node's
    /// properties.
    pub fn node_ids(limit: usize) -> String {
        format!(
            "MATCH (n {{tenant: $tenant}}) WHERE n.id > $after RETURN n.id \
             ORDER BY n.id LIMIT {limit}"
        )
    }

    /// The nodes in `$ids`, [`super::NODE_COLUMNS`] each, through the id index.
    pub const NODES: &str = "UNWIND $ids AS id MATCH (n {id: id, tenant: $tenant}) RETURN n.id, labels(n), properties(n)";

    pub const RELATIONSHIP_COLUMNS: [&str; 4] = ["a.id", "type(r)", "b.id", "properties(r)"];
    /// Every relationship leaving a node in `$ids`.
    pub const RELATIONSHIPS: &str = "UNWIND $ids AS id \
         MATCH (a {id: id, tenant: $tenant})-[r]->(b {tenant: $tenant}) \
         RETURN a.id, type(r), b.id, properties(r)";

    /// `n.id` of the nodes in `$ids` that exist.
    pub const EXISTING: &str = "UNWIND $ids AS id MATCH (n {id: id, tenant: $tenant}) RETURN n.id";
    pub const EXISTING_COLUMNS: [&str; 1] = ["n.id"];

    /// `$nodes`: list of `{id, props}`, none existing yet, each created with `labels`.
    pub fn create_nodes(labels: &[String]) -> String {
        format!(
            "UNWIND $nodes AS n CREATE (x{} {{id: n.id, tenant: $tenant}}) SET x += n.props",
            label_list(labels)
        )
    }

    /// `$nodes`: list of `{id, props}`, all existing: `labels` added, properties set.
    pub fn update_nodes(labels: &[String]) -> String {
        let set_labels = if labels.is_empty() {
            String::new()
        } else {
            format!(" SET x{}", label_list(labels))
        };
        format!(
            "UNWIND $nodes AS n MATCH (x {{id: n.id, tenant: $tenant}}){set_labels} \
             SET x += n.props"
        )
    }

    /// `$rels`: list of `{from, to, props}`: one `rel_type` edge merged between the
    /// ends, which must exist (a pair with a missing end matches nothing).
    pub fn merge_relationships(rel_type: &str) -> String {
        format!(
            "UNWIND $rels AS r MATCH (a {{id: r.from, tenant: $tenant}}) \
             MATCH (b {{id: r.to, tenant: $tenant}}) MERGE (a)-[x:{}]->(b) SET x += r.props",
            quoted(rel_type)
        )
    }
}

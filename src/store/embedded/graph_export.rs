//! Copying the embedded graph out: whole, as a snapshot's fresh save of the engine
//! ([`crate::store::backup::Backup`]), or page by page into another store (`ragbrain
//! migrate`), through the statements every executor shares.

use std::path::Path;

use async_trait::async_trait;
use serde_json::Value;

use super::graph::{EmbeddedGraphStore, GRAPH_PREFIX, Inner, engine};
use super::lock;
use crate::domain::graph::{Node, Relationship};
use crate::domain::principal::Tenant;
use crate::store::cypher::{NODE_COLUMNS, export as q};
use crate::store::graph_exec::{export, list};
use crate::store::{GraphSize, StoreResult, blocking};

impl Inner {
    pub(super) fn tenants(&self) -> Vec<Tenant> {
        let mut tenants: Vec<Tenant> = lock(&self.graphs)
            .iter()
            .filter_map(|g| g.strip_prefix(GRAPH_PREFIX).and_then(Tenant::parse))
            .collect();
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        tenants
    }

    /// Counted in the tenant's named graph directly: every node and edge there is the
    /// tenant's, and the statements' pattern match built each row (seconds at 700k
    /// relationships), which the storage quota's counts could not afford.
    pub(super) fn size(&self, tenant: &Tenant) -> StoreResult<GraphSize> {
        let name = format!("{GRAPH_PREFIX}{tenant}");
        let Some(graph) = self.db().store().graph(&name) else {
            return Ok(GraphSize::default());
        };
        Ok(GraphSize {
            nodes: graph.node_count() as u64,
            relationships: graph.edge_count() as u64,
        })
    }

    pub(super) fn export_nodes(
        &self,
        tenant: &Tenant,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Node>> {
        let params = vec![("after", export::after(after))];
        let rows = self.read_rows(tenant, &q::node_ids(limit), &q::EXISTING_COLUMNS, params)?;
        let ids = list(export::ids(&rows)?);
        export::nodes(&self.read_rows(tenant, q::NODES, &NODE_COLUMNS, vec![("ids", ids)])?)
    }

    pub(super) fn export_relationships(
        &self,
        tenant: &Tenant,
        from: Vec<String>,
    ) -> StoreResult<Vec<Relationship>> {
        let params: Vec<(&'static str, Value)> = vec![("ids", list(from))];
        let rows = self.read_rows(tenant, q::RELATIONSHIPS, &q::RELATIONSHIP_COLUMNS, params)?;
        export::relationships(&rows)
    }
}

#[async_trait]
impl crate::store::backup::Backup for EmbeddedGraphStore {
    fn name(&self) -> &'static str {
        "graph"
    }

    /// Saves the live graph (every named graph, its nodes, edges and properties) as a
    /// fresh log under `into/graph`, as a WAL compaction does. Writes and forks of the
    /// Cypher sandbox wait meanwhile (about a second per 100k elements); reads go on.
    async fn backup(&self, into: &Path) -> StoreResult<()> {
        let (inner, dest) = (self.inner.clone(), into.join("graph"));
        blocking(move || {
            let _writes = inner.writes.write().unwrap_or_else(|p| p.into_inner());
            let _forks = lock(&inner.forks);
            inner.db().save(&dest).map_err(engine)
        })
        .await
    }
}

//! Copying a tenant's graph out of and into the Bolt server (`ragbrain migrate`):
//! the shared export statements run through the store's read path and transactions.

use serde_json::Value;

use super::Neo4jGraphStore;
use super::bolt::{bolt_err, dialect};
use crate::domain::graph::{Node, NodeUpsert, Relationship, RelationshipUpsert};
use crate::domain::principal::Tenant;
use crate::store::cypher::{NODE_COLUMNS, export as export_q};
use crate::store::graph_exec::{export, list};
use crate::store::resilient::Retry;
use crate::store::{GraphSize, StoreResult};

/// Every tenant with a node on the server (a label scan: `ragbrain migrate` only).
const TENANTS: &str = "MATCH (n) RETURN DISTINCT n.tenant";

impl Neo4jGraphStore {
    pub(super) async fn tenants_on_server(&self) -> StoreResult<Vec<Tenant>> {
        let mut tenants = self
            .guard
            .run("tenants", Retry::Idempotent, || async {
                let q = neo4rs::query(&dialect(TENANTS));
                let mut stream = self.graph.execute_read(q).await.map_err(bolt_err)?;
                let mut out = Vec::new();
                while let Some(row) = stream.next().await.map_err(bolt_err)? {
                    let name = row.get::<String>("n.tenant").ok();
                    out.extend(name.as_deref().and_then(Tenant::parse));
                }
                Ok(out)
            })
            .await?;
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        tenants.dedup();
        Ok(tenants)
    }

    pub(super) async fn graph_size(&self, tenant: &Tenant) -> StoreResult<GraphSize> {
        let no_params: Vec<(&str, Value)> = Vec::new();
        let nodes = self
            .read(
                "size",
                tenant,
                export_q::NODES_COUNT,
                &export_q::NODE_COUNT_COLUMNS,
                no_params.clone(),
            )
            .await?;
        let relationships = self
            .read(
                "size",
                tenant,
                export_q::RELATIONSHIPS_COUNT,
                &export_q::RELATIONSHIP_COUNT_COLUMNS,
                no_params,
            )
            .await?;
        export::size(&nodes, &relationships)
    }

    pub(super) async fn node_page(
        &self,
        tenant: &Tenant,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Node>> {
        let rows = self
            .read(
                "export_nodes",
                tenant,
                &export_q::node_ids(limit),
                &export_q::EXISTING_COLUMNS,
                vec![("after", export::after(after))],
            )
            .await?;
        let ids = list(export::ids(&rows)?);
        let rows = self
            .read(
                "export_nodes",
                tenant,
                export_q::NODES,
                &NODE_COLUMNS,
                vec![("ids", ids)],
            )
            .await?;
        export::nodes(&rows)
    }

    pub(super) async fn import_page(
        &self,
        tenant: &Tenant,
        nodes: Vec<NodeUpsert>,
        relationships: Vec<RelationshipUpsert>,
    ) -> StoreResult<()> {
        self.guard
            .run("import", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = export::import(&mut tx, &nodes, &relationships).await;
                tx.finish(result).await
            })
            .await
    }

    pub(super) async fn relationships_from(
        &self,
        tenant: &Tenant,
        from: Vec<String>,
    ) -> StoreResult<Vec<Relationship>> {
        let rows = self
            .read(
                "export_relationships",
                tenant,
                export_q::RELATIONSHIPS,
                &export_q::RELATIONSHIP_COLUMNS,
                vec![("ids", list(from))],
            )
            .await?;
        export::relationships(&rows)
    }
}

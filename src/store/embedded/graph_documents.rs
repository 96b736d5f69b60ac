//! The embedded graph's side of the shared graph work: a grafeo session as a
//! [`CypherTx`], so [`crate::store::graph_exec`] (document replacement in one grafeo
//! transaction, neighbour expansion) runs here too, and the entity/chunk lookups hybrid
//! retrieval walks.

use async_trait::async_trait;
use futures_util::FutureExt;
use grafeo::Session;
use serde_json::Value;

use super::graph::{Inner, engine, params};
use super::graph_values::{to_grafeo, to_json};
use crate::domain::graph::{
    Neighbor, NeighborQuery, Node, NodeUpsert, RelationshipUpsert, Written,
};
use crate::domain::ingest::DocumentGraph;
use crate::domain::principal::Tenant;
use crate::store::graph_exec::{self as shared, CypherTx, Rows, list};
use crate::store::{StoreError, StoreResult};

/// Runs statements on the tenant's graph (in a transaction once one is begun).
struct Tx<'a> {
    session: Session,
    tenant: &'a Tenant,
}

impl Tx<'_> {
    /// Runs `statement`; grafeo answers in `RETURN` order, which `columns` names.
    fn run_now(
        &self,
        statement: &str,
        columns: &[&str],
        pairs: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        let pairs = pairs.into_iter().map(|(k, v)| (k, to_grafeo(&v)));
        let result = self
            .session
            .execute_cypher_with_params(statement, params(self.tenant, pairs))
            .map_err(engine)?;
        let values = result
            .rows()
            .iter()
            .map(|r| r.iter().map(to_json).collect())
            .collect();
        Rows::new(columns, values)
    }
}

#[async_trait]
impl CypherTx for Tx<'_> {
    async fn run(
        &mut self,
        statement: &str,
        columns: &[&str],
        params: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        self.run_now(statement, columns, params)
    }
}

/// The shared sequencing never waits on anything but the embedded engine, which
/// answers synchronously: its future completes on the first poll.
fn now<T>(work: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    work.now_or_never().unwrap_or_else(|| {
        Err(StoreError::internal(
            "embedded graph work did not complete synchronously",
        ))
    })
}

impl Inner {
    fn tx<'a>(&self, tenant: &'a Tenant) -> StoreResult<Tx<'a>> {
        Ok(Tx {
            session: self.session(tenant)?,
            tenant,
        })
    }

    /// The shared node and relationship writes; callers hold the writer lock.
    pub(super) fn upsert_node(
        &self,
        tenant: &Tenant,
        node: &NodeUpsert,
    ) -> StoreResult<(Node, Written)> {
        now(shared::upsert_node(&mut self.tx(tenant)?, node))
    }

    pub(super) fn delete_node(&self, tenant: &Tenant, id: &str) -> StoreResult<()> {
        now(shared::delete_node(&mut self.tx(tenant)?, id))
    }

    pub(super) fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: &RelationshipUpsert,
    ) -> StoreResult<Written> {
        now(shared::upsert_relationship(&mut self.tx(tenant)?, rel))
    }

    /// The shared breadth-first expansion on the tenant's graph.
    pub(super) fn expand(
        &self,
        tenant: &Tenant,
        query: &NeighborQuery,
    ) -> StoreResult<Vec<Neighbor>> {
        now(shared::expand(&mut self.tx(tenant)?, query))
    }

    /// Runs the read-only document `statement` over `$ids` without a transaction and
    /// parses its rows (`columns`, in `RETURN` order) with `parse`.
    pub(super) fn read_by_ids<T>(
        &self,
        tenant: &Tenant,
        statement: &str,
        columns: &[&str],
        ids: Vec<String>,
        parse: fn(&Rows) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let rows = self
            .tx(tenant)?
            .run_now(statement, columns, vec![("ids", list(ids))])?;
        parse(&rows)
    }

    /// Replaces every document in `docs`, each in its own transaction, so a write from
    /// the API waits for at most one document; one WAL sync covers them all.
    pub(super) fn write_documents(
        &self,
        tenant: &Tenant,
        docs: &[DocumentGraph],
    ) -> StoreResult<()> {
        let mut last = None;
        for doc in docs {
            let (_, ticket) = self.locked(tenant, |inner| {
                inner.in_transaction(tenant, |tx| now(shared::apply(tx, &doc.doc_id, Some(doc))))
            })?;
            last = Some(ticket);
        }
        last.map_or(Ok(()), |ticket| self.sync_to(ticket))
    }

    /// Removes document `doc_id`; returns whether its node existed.
    pub(super) fn remove_document(&self, tenant: &Tenant, doc_id: &str) -> StoreResult<bool> {
        let (existed, ticket) = self.locked(tenant, |inner| {
            inner.in_transaction(tenant, |tx| now(shared::apply(tx, doc_id, None)))
        })?;
        self.sync_to(ticket)?;
        Ok(existed)
    }

    /// One transaction, rolled back on error. Call as the tenant's writer
    /// ([`Inner::locked`]).
    fn in_transaction<T>(
        &self,
        tenant: &Tenant,
        work: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.tx(tenant)?;
        tx.session.begin_transaction().map_err(engine)?;
        match work(&mut tx) {
            Ok(out) => {
                tx.session.commit().map_err(engine)?;
                Ok(out)
            }
            Err(e) => {
                let _ = tx.session.rollback();
                Err(e)
            }
        }
    }
}

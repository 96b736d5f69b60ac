//! The Bolt side of the graph store: the one-rule Cypher dialect, parameters and rows
//! between JSON and neo4rs, one server transaction as a [`CypherTx`], and the mapping
//! of driver errors to store errors.

use std::collections::HashSet;

use async_trait::async_trait;
use neo4rs::{BoltType, Query, Txn};
use serde_json::Value;

use crate::domain::graph::TENANT_PROPERTY;
use crate::domain::principal::Tenant;
use crate::store::graph_exec::{CypherTx, Rows};
use crate::store::{ErrorKind, StoreError, StoreResult};

/// The label every node written here carries, next to its own labels; never shown.
pub const BASE_LABEL: &str = "_rb_node";

pub(super) fn bolt_err(e: neo4rs::Error) -> StoreError {
    use neo4rs::Error as E;
    let kind = match &e {
        E::IOError { .. }
        | E::ConnectionError
        | E::ServerUnavailableError(_)
        | E::RoutingTableError(_)
        | E::RoutingTableRefreshFailed(_)
        | E::RequestIgnoredError
        | E::IncompleteBoltExchange => ErrorKind::Unavailable,
        E::ConnectionTimedOut => ErrorKind::Timeout,
        E::Neo4j(n) => {
            let code = n.code();
            if code.contains("ConstraintValidationFailed") {
                // The only constraint is the node key (tenant, id), and every write
                // looks a node up before it creates one, in the same transaction; so a
                // violation is a concurrent create that committed first (a Bolt server
                // reads committed data). A lost race: retried, the write finds the node.
                ErrorKind::Busy
            } else if code.contains("EntityNotFound") {
                // A node or relationship this statement had matched, deleted by a
                // concurrent transaction before it was written: a lost race too.
                ErrorKind::Busy
            } else if code.contains("TransientError.Transaction") {
                // Deadlocks and lock conflicts between concurrent writers.
                ErrorKind::Busy
            } else if code.contains("TransientError") {
                ErrorKind::Unavailable
            } else if code.contains("ClientError") {
                ErrorKind::Invalid
            } else {
                ErrorKind::Upstream
            }
        }
        E::AuthenticationError(_) | E::UnsupportedVersion(..) | E::ProtocolMismatch(_) => {
            ErrorKind::Upstream
        }
        _ => ErrorKind::Upstream,
    };
    StoreError::new(kind, format!("graph server: {e}"))
}

/// Adds the base label to the first mention of each node variable: `(n {…})`,
/// `(k:Chunk …)`, `(s)`; later mentions (already bound, e.g. in `MERGE (a)-[…]->(b)`)
/// and function calls like `labels(n)` stay as they are.
pub fn dialect(statement: &str) -> String {
    let bytes = statement.as_bytes();
    let mut out = String::with_capacity(statement.len() + 32);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        out.push(c as char);
        i += 1;
        if c != b'(' {
            continue;
        }
        let call = out[..out.len() - 1]
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphanumeric() || p == '_');
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let var = &statement[start..i];
        out.push_str(var);
        let pattern = matches!(bytes.get(i), Some(b':' | b' ' | b'{' | b')'));
        if !call && pattern && !var.is_empty() && seen.insert(var) {
            out.push_str(":`");
            out.push_str(BASE_LABEL);
            out.push('`');
        }
    }
    out
}

pub(super) fn bolt(value: Value) -> StoreResult<BoltType> {
    BoltType::try_from(value)
        .map_err(|e| StoreError::invalid(format!("parameter cannot be sent to the graph: {e}")))
}

pub(super) fn query<K: AsRef<str>>(
    statement: &str,
    tenant: &Tenant,
    params: Vec<(K, Value)>,
) -> StoreResult<Query> {
    let mut q = neo4rs::query(&dialect(statement)).param("tenant", tenant.as_str());
    for (k, v) in params {
        q = q.param(k.as_ref(), bolt(v)?);
    }
    Ok(q)
}

/// One transaction on the server.
pub(super) struct BoltTx<'a> {
    pub(super) txn: Txn,
    pub(super) tenant: &'a Tenant,
}

#[async_trait]
impl CypherTx for BoltTx<'_> {
    async fn run(
        &mut self,
        statement: &str,
        columns: &[&str],
        params: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        let q = query(statement, self.tenant, params)?;
        if columns.is_empty() {
            self.txn.run(q).await.map_err(own_statement_err)?;
            return Ok(Rows::default());
        }
        let mut stream = self.txn.execute(q).await.map_err(own_statement_err)?;
        let mut rows = Vec::new();
        while let Some(row) = stream
            .next(self.txn.handle())
            .await
            .map_err(own_statement_err)?
        {
            rows.push(values(&row, columns)?);
        }
        Rows::new(columns, rows)
    }
}

/// An error on one of the store's own statements (never a client's Cypher). Their text
/// is fixed up to the labels and relationship types a client names, which the domain
/// has checked, so a server that calls one semantically wrong has lost a race on its
/// schema: ArcadeDB creates a type the first time a label set is written, and of two
/// transactions writing a new label at once the second fails with `SemanticError`
/// (`TypeAlreadyExistsException` in its log), where a retry finds the type. Retried as a
/// lost race ([`ErrorKind::Busy`]) rather than answered as the caller's mistake (422).
fn own_statement_err(e: neo4rs::Error) -> StoreError {
    let schema_race =
        matches!(&e, neo4rs::Error::Neo4j(n) if n.code().ends_with("Statement.SemanticError"));
    let mut err = bolt_err(e);
    if schema_race {
        err.kind = ErrorKind::Busy;
    }
    err
}

/// `row`'s values of `columns`, in that order; a missing column is an error (ours).
pub(super) fn values(row: &neo4rs::Row, columns: &[&str]) -> StoreResult<Vec<Value>> {
    columns
        .iter()
        .map(|c| {
            row.get::<Value>(c).map_err(|e| {
                StoreError::internal(format!("a graph result has no usable column {c:?}: {e}"))
            })
        })
        .collect()
}

impl BoltTx<'_> {
    /// Commits after `result` succeeded, rolls back otherwise.
    pub(super) async fn finish<T>(self, result: StoreResult<T>) -> StoreResult<T> {
        match result {
            Ok(out) => {
                self.txn.commit().await.map_err(bolt_err)?;
                Ok(out)
            }
            Err(e) => {
                let _ = self.txn.rollback().await;
                Err(e)
            }
        }
    }
}

/// Nodes in client results: our base label and the tenant property are not shown.
pub(super) fn hide_internal(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| v.as_str() != Some(BASE_LABEL))
                .map(hide_internal)
                .collect(),
        ),
        Value::Object(mut map) => {
            map.remove(TENANT_PROPERTY);
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, hide_internal(v)))
                    .collect(),
            )
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_labels_each_node_variable_once_and_leaves_calls_alone() {
        assert_eq!(
            dialect("MATCH (n {id: $id, tenant: $tenant}) RETURN n.id, labels(n), properties(n)"),
            "MATCH (n:`_rb_node` {id: $id, tenant: $tenant}) RETURN n.id, labels(n), properties(n)"
        );
        assert_eq!(
            dialect("MATCH (a {id: $from}), (b {id: $to}) MERGE (a)-[r:`T`]->(b) RETURN count(r)"),
            "MATCH (a:`_rb_node` {id: $from}), (b:`_rb_node` {id: $to}) MERGE (a)-[r:`T`]->(b) RETURN count(r)"
        );
        assert_eq!(
            dialect(
                "MATCH (d {id: $d}) UNWIND $c AS c CREATE (k:Chunk {id: c.id})-[:PART_OF]->(d)"
            ),
            "MATCH (d:`_rb_node` {id: $d}) UNWIND $c AS c CREATE (k:`_rb_node`:Chunk {id: c.id})-[:PART_OF]->(d)"
        );
        assert_eq!(
            dialect("MATCH (s)-[r]-(n) WHERE s.id IN $f RETURN type(r)"),
            "MATCH (s:`_rb_node`)-[r]-(n:`_rb_node`) WHERE s.id IN $f RETURN type(r)"
        );
    }
}

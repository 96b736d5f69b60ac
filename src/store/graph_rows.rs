//! Graph statement results read by column name: the `RETURN` expressions a caller
//! names, checked against what the executor returned, so a `RETURN` that changes shape
//! fails with an error naming the column instead of a panic or a shifted value; and the
//! values the shared graph code reads from them (nodes, strings, counts).

use serde_json::Value;

use crate::domain::graph::{ID_PROPERTY, Node, TENANT_PROPERTY};
use crate::store::cypher::NODE_COLUMNS;
use crate::store::{StoreError, StoreResult};

/// A label the server adds for its own use (the Bolt executor's base label); never shown.
pub const INTERNAL_LABEL_PREFIX: char = '_';

/// One statement's rows, read by column name: the `RETURN` expressions the caller
/// named, each value as JSON. A `RETURN` that changes shape fails with an error naming
/// the column, never a panic or a silently shifted value.
#[derive(Debug, Default)]
pub struct Rows {
    columns: Vec<String>,
    values: Vec<Vec<Value>>,
}

/// One row of [`Rows`].
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl Rows {
    /// Rows whose values are in `columns` order, as an executor got them; a row of
    /// another width is an error. With no columns named the caller reads nothing, so
    /// whatever came back is dropped.
    pub fn new(columns: &[&str], values: Vec<Vec<Value>>) -> StoreResult<Self> {
        if columns.is_empty() {
            return Ok(Self::default());
        }
        if let Some(row) = values.iter().find(|r| r.len() != columns.len()) {
            return Err(StoreError::internal(format!(
                "a graph statement returned {} columns where {columns:?} were expected",
                row.len()
            )));
        }
        Ok(Self {
            columns: columns.iter().map(|&c| c.to_owned()).collect(),
            values,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.values.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

impl<'a> Row<'a> {
    /// The value of `column`; an error (ours) when the statement has no such column.
    pub fn get(&self, column: &str) -> StoreResult<&'a Value> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::internal(format!("a graph result has no column {column:?}")))
    }

    /// `column` as a string (empty when it is not one).
    pub fn text(&self, column: &str) -> StoreResult<String> {
        self.get(column).map(text)
    }
}

pub fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A stored count (null where never set: data written before counts were kept).
pub(crate) fn count_of(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

/// The node in [`NODE_COLUMNS`] of `row` (`None` when its id is not a string); the
/// tenant, the id property and internal labels are not shown.
pub fn node_from(row: &Row<'_>) -> StoreResult<Option<Node>> {
    let [id, labels, props] = NODE_COLUMNS.map(|c| row.get(c));
    let (id, labels, props) = (id?, labels?, props?);
    Ok(node_from_values(id, labels, props))
}

/// A node from its id, `labels(n)` and `properties(n)` as JSON, shown as [`node_from`]
/// shows one.
pub fn node_from_values(id: &Value, labels: &Value, props: &Value) -> Option<Node> {
    let labels = labels
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| !l.starts_with(INTERNAL_LABEL_PREFIX))
        .map(str::to_owned)
        .collect();
    let properties = props
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != ID_PROPERTY && *k != TENANT_PROPERTY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Some(Node {
        id: id.as_str()?.to_owned(),
        labels,
        properties,
    })
}

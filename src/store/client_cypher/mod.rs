//! Admission of client Cypher (`POST /graphs/query`), for every executor.
//!
//! The query is parsed with the embedded engine's own openCypher parser, so what is
//! checked is exactly what grafeo would run, whatever the quoting, comments or escapes.
//! The parse tree is then walked against an **allowlist**: reading clauses (`MATCH`,
//! `OPTIONAL MATCH`, `WHERE`, `WITH`, `UNWIND`, `RETURN`, `ORDER BY`, `SKIP`, `LIMIT`,
//! `UNION`), pattern and expression forms that only read the bound graph, and a fixed
//! list of pure functions. Everything else (writes, `LOAD CSV`, `CALL` of procedures or
//! subqueries, `FOREACH`, schema commands, `EXPLAIN`/`PROFILE`, `reduce()`, functions
//! that describe the server or other graphs, anything the walk does not know) is
//! refused. Static cost caps refuse what is known to be unbounded before it runs:
//! `range()` needs constant bounds and at most `max_list` elements, and variable-length
//! relationships need an upper bound of at most `max_hops`. What a query may still cost
//! at run time is bounded by the executor (a sandboxed process with a memory budget and
//! a deadline on the embedded engine; the server's own limits on a Bolt server).
//!
//! A lexical keyword check ([`lexical`]) runs first as a second line of defence. Query
//! slots, overall and per tenant, are in [`slots`].

mod lexical;
mod slots;

use grafeo_adapters::query::cypher as ast;
use serde_json::Value as Json;

pub use self::lexical::ensure_no_forbidden_keyword;
pub use self::slots::{QuerySlot, QuerySlots};
use crate::domain::graph::{CypherQuery, Properties};
use crate::store::StoreError;

/// Why a query was refused; the message is safe to show to the caller.
pub type Refusal = String;

/// Functions client Cypher may call (compared in lower case): graph element accessors,
/// scalar, string, numeric and temporal functions, and aggregates. Not here, on
/// purpose: `reduce` (an accumulator can grow exponentially in one expression), and
/// `info`, `schema`, `current_graph`, `current_schema`, `session_user` (they describe
/// the server and other graphs).
#[rustfmt::skip]
const FUNCTIONS: &[&str] = &[
    // graph elements and paths
    "id", "elementid", "labels", "type", "keys", "properties", "startnode",
    "endnode", "nodes", "relationships", "length", "haslabel", "property_exists",
    // lists and values
    "size", "exists", "coalesce", "head", "last", "tail", "reverse", "range",
    "nullif", "isempty", "tolist",
    // conversion
    "tostring", "tointeger", "toint", "tofloat", "toboolean", "tostringornull",
    "tointegerornull", "tofloatornull", "tobooleanornull",
    // strings
    "tolower", "toupper", "lower", "upper", "trim", "ltrim", "rtrim", "substring",
    "left", "right", "split", "replace", "string_join", "normalize", "char_length",
    "character_length",
    // numbers
    "abs", "ceil", "floor", "round", "sign", "sqrt", "exp", "log", "log10", "e",
    "pi", "sin", "cos", "tan", "cot", "asin", "acos", "atan", "atan2", "degrees",
    "radians", "rand",
    // time
    "timestamp", "date", "time", "datetime", "localdatetime", "localtime",
    "duration", "year", "month", "day", "hour", "minute", "second",
    // vectors
    "cosine_similarity", "cosine_distance", "euclidean_distance", "dot_product",
    "manhattan_distance",
    // aggregates
    "count", "sum", "avg", "min", "max", "collect", "stdev", "stdevp",
    "percentilecont", "percentiledisc",
];

/// A client query stopped at its deadline (504), on either executor.
pub fn deadline_passed() -> StoreError {
    StoreError::timeout("Cypher query exceeded the time limit")
}

/// The refusal of a result over `max_result_bytes`.
pub fn result_too_large(max_result_bytes: usize) -> StoreError {
    StoreError::invalid(format!(
        "the result is larger than {max_result_bytes} bytes; return fewer rows or columns"
    ))
}

/// Deepest expression or clause nesting the walk accepts. The parser stops at 128
/// brackets; operator chains (`1+1+…`) nest without brackets and stop here instead.
const MAX_DEPTH: usize = 256;

/// Accepts `query` if it only reads the tenant's graph within the static caps, or says
/// why not.
pub fn admit(query: &CypherQuery) -> Result<(), Refusal> {
    admit_with(query, false)
}

/// [`admit`] for the embedded engine, which also refuses a list or map parameter
/// projected bare (`RETURN $ids`, `WITH $m AS m`): grafeo 0.5.44 types such a constant
/// column as a string and yields `""`, so `WITH $ids AS ids ... WHERE n.id IN ids`
/// would silently match nothing. The same value through an expression is typed at run
/// time and comes through whole, so the refusal names `coalesce($ids)`.
pub fn admit_on_grafeo(query: &CypherQuery) -> Result<(), Refusal> {
    admit_with(query, true)
}

fn admit_with(query: &CypherQuery, grafeo: bool) -> Result<(), Refusal> {
    ensure_no_forbidden_keyword(&query.query)?;
    let statement = ast::parse(&query.query)
        .map_err(|e| format!("the query does not parse as openCypher: {e}"))?;
    let walk = Walk {
        params: &query.params,
        max_list: query.max_list,
        max_hops: query.max_hops,
        grafeo,
    };
    walk.statement(&statement)
}

struct Walk<'a> {
    params: &'a Properties,
    max_list: usize,
    max_hops: u32,
    /// Refuse what grafeo gets wrong (see [`admit_on_grafeo`]).
    grafeo: bool,
}

fn refuse<T>(what: &str) -> Result<T, Refusal> {
    Err(format!(
        "{what} is not allowed: /graphs/query runs read-only Cypher over the caller's graph"
    ))
}

fn deeper(depth: usize) -> Result<usize, Refusal> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "the query nests deeper than {MAX_DEPTH} levels; simplify it"
        ));
    }
    Ok(depth + 1)
}

impl Walk<'_> {
    fn statement(&self, statement: &ast::Statement) -> Result<(), Refusal> {
        match statement {
            ast::Statement::Query(query) => self.query(query, 0),
            ast::Statement::Union { queries, .. } => {
                queries.iter().try_for_each(|q| self.query(q, 0))
            }
            ast::Statement::Create(_)
            | ast::Statement::Merge(_)
            | ast::Statement::Delete(_)
            | ast::Statement::Set(_)
            | ast::Statement::Remove(_) => refuse("a write"),
            ast::Statement::Explain(_) | ast::Statement::Profile(_) => refuse("EXPLAIN or PROFILE"),
            ast::Statement::Schema(_)
            | ast::Statement::ShowIndexes
            | ast::Statement::ShowConstraints
            | ast::Statement::ShowCurrentGraphType => refuse("a schema command"),
        }
    }

    fn query(&self, query: &ast::Query, depth: usize) -> Result<(), Refusal> {
        let depth = deeper(depth)?;
        query.clauses.iter().try_for_each(|c| self.clause(c, depth))
    }

    fn clause(&self, clause: &ast::Clause, depth: usize) -> Result<(), Refusal> {
        use ast::Clause as C;
        match clause {
            C::Match(m) | C::OptionalMatch(m) => {
                m.patterns.iter().try_for_each(|p| self.pattern(p, depth))
            }
            C::Where(w) => self.expr(&w.predicate, depth),
            C::With(with) => {
                with.items
                    .iter()
                    .try_for_each(|i| self.projected(&i.expression, depth))?;
                match &with.where_clause {
                    Some(w) => self.expr(&w.predicate, depth),
                    None => Ok(()),
                }
            }
            C::Return(ret) => match &ret.items {
                ast::ReturnItems::All => Ok(()),
                ast::ReturnItems::Explicit(items) => items
                    .iter()
                    .try_for_each(|i| self.projected(&i.expression, depth)),
            },
            C::Unwind(unwind) => self.expr(&unwind.expression, depth),
            C::OrderBy(order) => order
                .items
                .iter()
                .try_for_each(|i| self.expr(&i.expression, depth)),
            C::Skip(e) | C::Limit(e) => self.expr(e, depth),
            C::Create(_) | C::Merge(_) | C::Delete(_) | C::Set(_) | C::Remove(_) => {
                refuse("a write")
            }
            C::ForEach(_) => refuse("FOREACH"),
            C::LoadCsv(_) => refuse("LOAD CSV"),
            C::Call(_) => refuse("CALL of a procedure"),
            C::CallSubquery { .. } => refuse("a CALL subquery"),
        }
    }

    fn pattern(&self, pattern: &ast::Pattern, depth: usize) -> Result<(), Refusal> {
        let depth = deeper(depth)?;
        match pattern {
            ast::Pattern::Node(node) => self.node(node, depth),
            ast::Pattern::Path(path) => self.path(path, depth),
            ast::Pattern::NamedPath { pattern, .. } => self.pattern(pattern, depth),
        }
    }

    fn node(&self, node: &ast::NodePattern, depth: usize) -> Result<(), Refusal> {
        self.properties(&node.properties, depth)
    }

    fn path(&self, path: &ast::PathPattern, depth: usize) -> Result<(), Refusal> {
        self.node(&path.start, depth)?;
        for rel in &path.chain {
            if let Some(range) = rel.length
                && range.max.is_none_or(|max| max > self.max_hops)
            {
                return Err(format!(
                    "variable-length relationships need an upper bound of at most {} hops \
                     (for example *1..{})",
                    self.max_hops, self.max_hops
                ));
            }
            self.properties(&rel.properties, depth)?;
            if let Some(w) = &rel.where_clause {
                self.expr(w, depth)?;
            }
            self.node(&rel.target, depth)?;
        }
        Ok(())
    }

    fn properties(&self, props: &[(String, ast::Expression)], depth: usize) -> Result<(), Refusal> {
        props.iter().try_for_each(|(_, e)| self.expr(e, depth))
    }

    fn exprs<'e>(
        &self,
        exprs: impl IntoIterator<Item = &'e ast::Expression>,
        depth: usize,
    ) -> Result<(), Refusal> {
        exprs.into_iter().try_for_each(|e| self.expr(e, depth))
    }

    /// An item of `WITH` or `RETURN`.
    fn projected(&self, expr: &ast::Expression, depth: usize) -> Result<(), Refusal> {
        if let ast::Expression::Parameter(name) = expr
            && self.grafeo
            && self
                .params
                .get(name)
                .is_some_and(|v| v.is_array() || v.is_object())
        {
            return Err(format!(
                "${name} is a list or map projected as it is, which the embedded engine \
                 returns as \"\"; project coalesce(${name}) instead"
            ));
        }
        self.expr(expr, depth)
    }

    fn expr(&self, expr: &ast::Expression, depth: usize) -> Result<(), Refusal> {
        use ast::Expression as E;
        let depth = deeper(depth)?;
        match expr {
            E::Literal(_) | E::Variable(_) | E::Parameter(_) => Ok(()),
            E::PropertyAccess { base, .. } => self.expr(base, depth),
            E::IndexAccess { base, index } => self.exprs([&**base, &**index], depth),
            E::SliceAccess { base, start, end } => {
                self.expr(base, depth)?;
                self.exprs(start.iter().chain(end.iter()).map(|e| &**e), depth)
            }
            E::Binary { left, right, .. } => self.exprs([&**left, &**right], depth),
            E::Unary { operand, .. } => self.expr(operand, depth),
            E::FunctionCall { name, args, .. } => self.function(name, args, depth),
            E::List(items) => self.exprs(items, depth),
            E::Map(entries) => self.properties(entries, depth),
            E::ListComprehension {
                list,
                filter,
                projection,
                ..
            } => {
                self.expr(list, depth)?;
                self.exprs(filter.iter().chain(projection.iter()).map(|e| &**e), depth)
            }
            E::PatternComprehension {
                pattern,
                where_clause,
                projection,
            } => {
                self.pattern(pattern, depth)?;
                self.exprs(where_clause.iter().map(|e| &**e), depth)?;
                self.expr(projection, depth)
            }
            E::Case {
                input,
                whens,
                else_clause,
            } => {
                self.exprs(input.iter().map(|e| &**e), depth)?;
                self.exprs(whens.iter().flat_map(|(w, t)| [w, t]), depth)?;
                self.exprs(else_clause.iter().map(|e| &**e), depth)
            }
            E::ListPredicate {
                list, predicate, ..
            } => self.exprs([&**list, &**predicate], depth),
            E::Exists(query) | E::CountSubquery(query) => self.query(query, depth),
            E::MapProjection { entries, .. } => entries.iter().try_for_each(|entry| match entry {
                ast::MapProjectionEntry::LiteralEntry(_, e) => self.expr(e, depth),
                ast::MapProjectionEntry::PropertySelector(_)
                | ast::MapProjectionEntry::AllProperties => Ok(()),
            }),
            E::Reduce { .. } => refuse("reduce()"),
        }
    }

    fn function(&self, name: &str, args: &[ast::Expression], depth: usize) -> Result<(), Refusal> {
        let lower = name.to_ascii_lowercase();
        if !FUNCTIONS.contains(&lower.as_str()) {
            return Err(format!(
                "function {name}() is not available to /graphs/query"
            ));
        }
        if lower == "range" {
            self.range_size(args)?;
        }
        self.exprs(args, depth)
    }

    /// `range(start, stop[, step])` with constant integer bounds (literals or
    /// parameters) and at most `max_list` elements.
    fn range_size(&self, args: &[ast::Expression]) -> Result<(), Refusal> {
        let constant = |e: &ast::Expression| self.integer(e);
        let bounds: Option<Vec<i64>> = args.iter().map(constant).collect();
        let Some(bounds) = bounds.filter(|b| (2..=3).contains(&b.len())) else {
            return Err("range() takes two or three constant integers (literals or \
                        parameters) in /graphs/query"
                .into());
        };
        let (start, stop) = (i128::from(bounds[0]), i128::from(bounds[1]));
        let step = i128::from(bounds.get(2).copied().unwrap_or(1));
        if step == 0 {
            return Err("range() step must not be 0".into());
        }
        let elements = if (step > 0 && stop < start) || (step < 0 && stop > start) {
            0
        } else {
            (stop - start) / step + 1
        };
        if elements > self.max_list as i128 {
            return Err(format!(
                "range() would build {elements} elements; /graphs/query allows at most {}",
                self.max_list
            ));
        }
        Ok(())
    }

    fn integer(&self, expr: &ast::Expression) -> Option<i64> {
        match expr {
            ast::Expression::Literal(ast::Literal::Integer(n)) => Some(*n),
            ast::Expression::Parameter(name) => self.params.get(name).and_then(Json::as_i64),
            ast::Expression::Unary {
                op: ast::UnaryOp::Neg,
                operand,
            } => self.integer(operand)?.checked_neg(),
            ast::Expression::Unary {
                op: ast::UnaryOp::Pos,
                operand,
            } => self.integer(operand),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

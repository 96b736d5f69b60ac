//! Admission of client Cypher: what is admitted, what is refused and why.

use super::*;

fn check(query: &str) -> Result<(), Refusal> {
    check_with(query, serde_json::json!({}))
}

fn check_with(query: &str, params: Json) -> Result<(), Refusal> {
    admit(&cypher(query, params))
}

fn cypher(query: &str, params: Json) -> CypherQuery {
    let Json::Object(params) = params else {
        unreachable!()
    };
    CypherQuery {
        query: query.into(),
        params,
        max_rows: 100,
        max_list: 10_000,
        max_hops: 3,
        max_result_bytes: 1 << 20,
    }
}

/// grafeo returns a bare list or map parameter column as `""`; only its executor
/// refuses the form, and the same values through expressions pass.
#[test]
fn a_bare_list_or_map_parameter_is_refused_as_a_projection_on_grafeo_only() {
    let params = serde_json::json!({"ids": ["a", "b"], "m": {"k": 1}, "s": "x", "n": 2});
    let with = "WITH $ids AS ids MATCH (n) WHERE n.id IN ids RETURN n.id";
    let refused = admit_on_grafeo(&cypher(with, params.clone())).unwrap_err();
    assert!(refused.contains("coalesce($ids)"), "{refused}");
    assert_eq!(admit(&cypher(with, params.clone())), Ok(()));
    for q in [
        "RETURN $m",
        "MATCH (n) RETURN n.id, $ids AS ids",
        "RETURN $m AS m ORDER BY m",
    ] {
        assert!(admit_on_grafeo(&cypher(q, params.clone())).is_err(), "{q}");
    }
    for q in [
        "WITH coalesce($ids) AS ids MATCH (n) WHERE n.id IN ids RETURN n.id",
        "RETURN $s AS s, $n AS n, $missing AS missing",
        "UNWIND $ids AS i RETURN i",
        "MATCH (n) WHERE n.id IN $ids RETURN n.id",
        "RETURN $m.k AS k, {a: $ids} AS wrapped, size($ids) AS n",
    ] {
        assert_eq!(admit_on_grafeo(&cypher(q, params.clone())), Ok(()), "{q}");
    }
}

#[test]
fn reading_queries_are_admitted() {
    for q in [
        "MATCH (p:Person)-[:KNOWS]->(f) WHERE p.name = $name RETURN f.name AS friend",
        "MATCH (n) RETURN n.id ORDER BY n.id SKIP 1 LIMIT 2",
        "MATCH (n) WHERE n.name = 'CREATE me' RETURN n",
        "MATCH (n:Settings) RETURN n.`delete`, n.`set`",
        "MATCH (n) WHERE n.created = $since RETURN n // DELETE later",
        "MATCH (n) /* MERGE */ RETURN count(n)",
        "MATCH (a)-[:KNOWS*1..3]->(b) RETURN DISTINCT b.id",
        "OPTIONAL MATCH (n)-[r]-(m) WITH n, count(r) AS c WHERE c > 1 RETURN n.id, c",
        "UNWIND range(1, 10) AS x RETURN sum(x)",
        "UNWIND $ids AS id MATCH (n {id: id}) RETURN n",
        "MATCH (n) RETURN [x IN labels(n) WHERE x <> 'A' | toLower(x)] AS l",
        "MATCH (n) RETURN CASE WHEN n.age > 3 THEN 'old' ELSE 'young' END",
        "MATCH (n) WHERE EXISTS { MATCH (n)-[:KNOWS]->() } RETURN n.id",
        "MATCH (n) RETURN n.id UNION MATCH (m) RETURN m.id",
        "MATCH (n) RETURN n {.name, .id}",
        "RETURN 1",
    ] {
        assert_eq!(check(q), Ok(()), "{q}");
    }
}

#[test]
fn writes_loads_and_procedures_are_refused_whatever_the_quoting() {
    for q in [
        "CREATE (n)",
        "match (n) detach delete n",
        "MATCH (n) SET n.x = 1",
        "MATCH (n) WITH n MERGE (m {id: 1})",
        "LOAD CSV FROM 'x' AS row RETURN row",
        "CALL db.labels()",
        "MATCH (n) REMOVE n.x",
        "WITH 1 AS `x\\` LOAD CSV FROM '/etc/hostname' AS row RETURN row //`",
        "WITH 1 AS `x\\` CREATE (n) RETURN n //`",
        "RETURN 1 UNION LOAD CSV FROM 'file:///etc/passwd' AS r RETURN r",
        "FOREACH (x IN [1] | CREATE (n))",
        "CALL { MATCH (n) RETURN n } RETURN n",
        "EXPLAIN MATCH (n) RETURN n",
        "RETURN reduce(s = 'x', i IN [1,2] | s + s)",
        "RETURN info()",
        "RETURN current_graph()",
        "RETURN schema()",
        "RETURN nosuchfunction(1)",
        "MATCH (a)-[*]->(b) RETURN b",
        "MATCH (a)-[*1..50]->(b) RETURN b",
        "MATCH p = shortestPath((a)-[*]-(b)) RETURN p",
        "RETURN size(range(1, 2000000000))",
        "UNWIND range(1, 100000000) AS x RETURN count(x)",
        "UNWIND range(1, $n) AS x RETURN x",
        "UNWIND range(1, toInteger('9')) AS x RETURN x",
        "RETURN 1 +",
    ] {
        assert!(check(q).is_err(), "{q}");
    }
}

#[test]
fn range_bounds_may_come_from_parameters_within_the_cap() {
    let q = "UNWIND range($a, $b) AS x RETURN count(x)";
    assert_eq!(
        check_with(q, serde_json::json!({"a": 1, "b": 10000})),
        Ok(())
    );
    assert!(check_with(q, serde_json::json!({"a": 0, "b": 10000})).is_err());
    assert_eq!(
        check("UNWIND range(10, 1, -1) AS x RETURN x"),
        Ok(()),
        "a descending range"
    );
    assert!(check("UNWIND range(1, 10, 0) AS x RETURN x").is_err());
}

#[test]
fn deep_operator_chains_are_refused_without_exhausting_the_stack() {
    let chain = format!("RETURN 1{}", "+1".repeat(8000));
    let refused = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || check(&chain))
        .unwrap()
        .join()
        .unwrap();
    assert!(refused.is_err());
    let brackets = format!("RETURN {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(check(&brackets).is_err());
}

//! The problem responses each kind of operation documents in the OpenAPI document: one
//! set per kind, every status with what it means in this API and the `Problem` schema.

use std::collections::BTreeMap;

use utoipa::PartialSchema;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};

use crate::http::error::Problem;

/// What each error status means in this API, for the documented responses.
fn meaning(status: u16) -> &'static str {
    match status {
        400 => "Malformed request (bad JSON, both credentials sent)",
        401 => "Missing, invalid, expired or revoked credentials",
        403 => "The credentials lack the scope this operation needs",
        404 => "No such resource (or it belongs to another tenant)",
        409 => {
            "Conflicts with existing state (e.g. a collection with another spec, one more \
             collection or payload index than limits.max_collections or \
             limits.max_payload_indexes allow, or a write past the tenant's storage quota, \
             limits.max_points_per_tenant or limits.max_graph_items_per_tenant)"
        }
        413 => "Request body larger than server.body_limit_bytes",
        415 => "Body is not application/json, or is compressed",
        422 => {
            "Well-formed but invalid (wrong dimension, a vector too long, limit too large, \
             unknown field, an id with control characters, Cypher that is not read-only or \
             over its caps, a graph write to ingest's nodes, labels or relationship types)"
        }
        429 => {
            "Rate limited (see the RateLimit-* headers), or the tenant already runs its \
             share of client Cypher queries; retry after Retry-After seconds"
        }
        501 => "Capability not configured on this server",
        502 => {
            "A backend (Redis, Kafka, the graph server, Qdrant, the embedder or the LLM) \
             returned an error"
        }
        503 => {
            "A backend is unavailable, or the ingest backlog is full; retry after Retry-After \
             seconds"
        }
        504 => "The request exceeded its deadline",
        507 => {
            "The data directory's filesystem has less free than server.disk_reserve_bytes \
             (plus what the write needs); writes are refused until space is freed"
        }
        _ => "Internal error (details are in the server log under the correlation id)",
    }
}

/// Problem responses for `codes`, each referring to the `Problem` schema.
fn problems(codes: &[u16]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    codes
        .iter()
        .map(|&code| {
            let content = ContentBuilder::new()
                .schema(Some(Problem::schema()))
                .build();
            let response = ResponseBuilder::new()
                .description(meaning(code))
                .content("application/problem+json", content)
                .build();
            (code.to_string(), RefOr::T(response))
        })
        .collect()
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($code:literal),+) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                problems(&[$($code),+])
            }
        }
    };
}

error_set!(
    /// Authenticated reads with a JSON body.
    BodyErrors: 400, 401, 403, 404, 413, 415, 422, 429, 500, 502, 503, 504
);
error_set!(
    /// Authenticated operations addressed by path alone (400: both credentials sent;
    /// 422: an id in the path that is too long or holds control characters). Deletes are
    /// among them: they are never refused for space or quota.
    PathErrors: 400, 401, 403, 404, 422, 429, 500, 502, 503, 504
);
error_set!(
    /// Writes with a JSON body, refused while the disk is nearly full (507).
    WriteErrors: 400, 401, 403, 404, 413, 415, 422, 429, 500, 502, 503, 504, 507
);
error_set!(
    /// Writes that can also conflict with existing state or pass a quota (409).
    ConflictErrors: 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504, 507
);
error_set!(
    /// Client Cypher, which a deployment on a shared graph server may turn off (501).
    QueryErrors: 400, 401, 403, 404, 413, 415, 422, 429, 500, 501, 502, 503, 504
);
error_set!(
    /// The audit trail: filters in the query string, and off unless `audit.enabled` (501).
    AuditErrors: 400, 401, 403, 404, 422, 429, 500, 501, 502, 503, 504
);
error_set!(
    /// Snapshots: one at a time (409), of embedded stores only (501), with room for the
    /// staging copy (507).
    SnapshotErrors: 400, 401, 403, 409, 429, 500, 501, 502, 503, 504, 507
);
error_set!(
    /// Generation, which also depends on a configured LLM.
    GenerateErrors: 400, 401, 403, 404, 413, 415, 422, 429, 500, 501, 502, 503, 504
);
error_set!(
    /// Credential exchanges, which store the tokens they issue or revoke.
    TokenErrors: 400, 401, 413, 415, 422, 429, 500, 501, 502, 503, 507
);

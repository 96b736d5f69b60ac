//! ragbrain: retrieval-augmented generation over vectors and a knowledge graph, served
//! over HTTP from one binary.
//!
//! # Layout
//! Top down; each layer imports only those below it (`tests/api/layering.rs` checks).
//! - [`app`]: start-up and graceful shutdown (`Application::build` → `run_until_stopped`);
//!   builds each service once.
//! - [`http`]: the router, middleware, extractors, one handler module per resource, the
//!   `AppState` of service handles, and `ApiError` with its problem+json rendering.
//! - [`services`]: validation and business logic behind the handlers, transport-free,
//!   each a handle holding only what it uses: vectors, graphs, ingest (and its worker),
//!   hybrid retrieval, generation, health, metrics, auth; `ServiceError`.
//! - [`llm`]: the OpenAI-compatible chat client generation uses.
//! - [`embed`]: the `Embedder` trait, the built-in static model, the OpenAI client.
//! - [`store`]: storage traits, the shared Cypher, the Qdrant type mapping, and the
//!   in-process defaults under [`store::embedded`] (vectors, graph, event log, keys).
//! - [`metrics`]: the Prometheus registry and instruments behind `GET /metrics`.
//! - [`telemetry`]: log set-up.
//! - [`config`]: typed settings from compiled-in defaults, a file and the environment.
//! - [`context`]: the request being served (correlation id, principal, quota decision),
//!   readable by every layer.
//! - [`domain`]: principals, tenants, quota classes, vector and graph types, ingest's
//!   events and document graphs, and the chunk payload's keys, shared by all layers.

pub mod app;
pub mod config;
pub mod context;
pub mod domain;
pub mod embed;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod services;
pub mod store;
pub mod telemetry;

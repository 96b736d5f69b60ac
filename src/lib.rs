//! ragbrain: retrieval-augmented generation over vectors and a knowledge graph, served
//! over HTTP from one binary.
//!
//! # Layout
//! - [`app`]: start-up and graceful shutdown (`Application::build` → `run_until_stopped`).
//! - [`config`]: typed settings from compiled-in defaults, a file and the environment.
//! - [`http`]: the router, middleware, extractors and one handler module per resource.
//! - [`services`]: validation and business logic behind the handlers, HTTP-free:
//!   ingest (and its worker), hybrid retrieval, generation, vectors, graphs, auth.
//! - [`embed`]: the `Embedder` trait, the built-in static model, the OpenAI client.
//! - [`llm`]: the OpenAI-compatible chat client generation uses.
//! - [`store`]: storage traits, the shared Cypher, the Qdrant type mapping, and the
//!   in-process defaults under [`store::embedded`] (vectors, graph, event log, keys).
//! - [`domain`]: principals, tenants, vector and graph types shared by all layers.
//! - [`error`]: the API error enum and its problem+json rendering.
//! - [`state`]: the `AppState` handlers receive.
//! - [`telemetry`]: log set-up.
//! - [`metrics`]: the Prometheus registry and instruments behind `GET /metrics`.

pub mod app;
pub mod config;
pub mod domain;
pub mod embed;
pub mod error;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;

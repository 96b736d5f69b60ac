//! The integration suite: one binary, every test through HTTP against the production
//! router on a loopback port.

// The HTTP test futures nest deeply (axum, reqwest, the stores); the default limit of
// 128 is not enough to lay them out.
#![recursion_limit = "256"]

mod audit;
mod auth;
mod backends;
mod backends_e2e;
mod bolt_ingest;
mod chaos;
mod cli;
mod connections;
mod contract;
mod cypher_attacks;
mod deploy;
mod disconnects;
mod disk_space;
mod embedding;
mod fake_openai;
mod faults;
mod fuzz;
mod generate;
mod graph_writes;
mod graphs;
mod hardening;
mod health_and_errors;
mod helpers;
mod ingest;
mod ingest_crash;
mod ingest_failures;
mod layering;
mod lexical;
mod logs;
mod metrics;
mod migrate;
mod openapi;
mod persistence;
mod quantization;
mod quotas;
mod ratelimit;
mod read_budget;
mod readme;
mod retrieval;
mod scratch;
mod snapshots;
mod tls;
mod tokens;
mod traces;
mod vector_limits;
mod vectors;
mod write_path;

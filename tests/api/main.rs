//! The integration suite: one binary, every test through HTTP against the production
//! router on a loopback port.

mod auth;
mod cli;
mod deploy;
mod embedding;
mod fake_openai;
mod generate;
mod graphs;
mod hardening;
mod health_and_errors;
mod helpers;
mod ingest;
mod ingest_crash;
mod logs;
mod metrics;
mod openapi;
mod persistence;
mod ratelimit;
mod readme;
mod tokens;
mod vectors;

//! The integration suite: one binary, every test through HTTP against the production
//! router on a loopback port.

mod auth;
mod cli;
mod graphs;
mod health_and_errors;
mod helpers;
mod persistence;
mod readme;
mod vectors;

//! Business logic behind the handlers, free of HTTP types so tests and other front ends
//! can call it directly: validation, limits and store calls for each capability.

pub mod auth;
pub mod graphs;
pub mod health;
pub mod vectors;

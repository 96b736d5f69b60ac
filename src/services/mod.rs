//! Business logic behind the handlers, free of HTTP types so tests and other front ends
//! can call it directly: validation, limits and store calls for each capability.

pub mod auth;
pub mod graphs;
pub mod health;
pub mod vectors;

use crate::error::{ApiError, Result};

/// Checks the encoded JSON size of a client-supplied map against `max` bytes.
pub(crate) fn bounded_json(what: &str, value: &impl serde::Serialize, max: usize) -> Result<()> {
    let size = serde_json::to_vec(value).map_or(usize::MAX, |b| b.len());
    bounded(&format!("size of {what} in bytes"), size, 0, max)
}

/// Checks a client-controlled size against its bounds; the error names it and them.
pub(crate) fn bounded(what: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "{what} must be between {min} and {max}, got {value}"
        )))
    }
}

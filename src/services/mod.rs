//! Business logic behind the handlers, free of HTTP types so tests and other front ends
//! can call it directly: validation, limits and store calls for each capability.

pub mod auth;
pub mod graphs;
pub mod health;
pub mod vectors;

use crate::error::{ApiError, Result};

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

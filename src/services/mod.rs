//! Business logic behind the handlers, free of HTTP types so tests and other front ends
//! can call it directly: validation, limits and store calls for each capability.

pub mod audit;
pub mod auth;
pub mod budget;
pub mod error;
pub mod generate;
pub mod graphs;
pub mod health;
pub mod hybrid;
pub mod ingest;
pub mod metrics;
pub mod migrate;
pub mod quota;
pub mod ratelimit;
pub mod snapshots;
pub mod vectors;

use std::fmt::Display;

use crate::services::error::{Result, ServiceError};

/// Counts bytes written to it, so an encoded size is known without keeping the encoding.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks the encoded JSON size of a client-supplied map against `max` bytes.
pub(crate) fn bounded_json(
    what: impl Display,
    value: &impl serde::Serialize,
    max: usize,
) -> Result<()> {
    let mut count = ByteCount(0);
    let size = serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0);
    bounded(format_args!("size of {what} in bytes"), size, 0, max)
}

/// Checks a client-controlled size against its bounds; the error names it and them.
/// `what` is only rendered on failure, so callers pass `format_args!` freely.
pub(crate) fn bounded(what: impl Display, value: usize, min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "{what} must be between {min} and {max}, got {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_the_size_only_when_it_is_out_of_range() {
        assert!(bounded("limit", 5, 1, 10).is_ok());
        let err = bounded(format_args!("payload of point {}", 7), 11, 0, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload of point 7 must be between 0 and 10, got 11"
        );
        let map = serde_json::json!({"k": "vvvv"});
        assert!(
            bounded_json("payload", &map, 12).is_ok(),
            "{{\"k\":\"vvvv\"}} is 12 bytes"
        );
        let err = bounded_json("payload", &map, 11).unwrap_err();
        assert_eq!(
            err.to_string(),
            "size of payload in bytes must be between 0 and 11, got 12"
        );
    }
}

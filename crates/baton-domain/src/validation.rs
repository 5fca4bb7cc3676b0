//! The error every check of an input returns: which field, and why.
//!
//! Its own module so that the checks (the event's, the disruption's, the
//! privacy screen's) can all name it without importing each other.

use std::fmt;

/// A field that failed validation, and why. `field` uses the protobuf name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

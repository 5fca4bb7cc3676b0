//! Identifiers that end up inside NATS subjects.
//!
//! A NATS subject token must not contain `.`, `*`, `>` or whitespace; we go
//! further and allow only `[A-Za-z0-9_-]`, so an id can never widen a
//! subscription or split a subject, whatever a client sends.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 64;

/// Why a string is not a valid token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_TOKEN_LEN} bytes, got {0}")]
    TooLong(usize),
    #[error("may contain only letters, digits, '-' and '_', found {0:?}")]
    BadChar(char),
}

/// A subject-safe identifier: 1 to 64 of `[A-Za-z0-9_-]`.
///
/// Shared, not copied, when cloned: one event's fold clones its hand-off,
/// promise and department ids some thirty times.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(Arc<str>);

impl Token {
    /// Checks `value` and wraps it.
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        check_token(value)?;
        Ok(Token(Arc::from(value)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks that `value` is a subject-safe token without allocating.
pub fn check_token(value: &str) -> Result<(), TokenError> {
    if value.is_empty() {
        return Err(TokenError::Empty);
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong(value.len()));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if value.bytes().all(allowed) {
        return Ok(());
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(bad) => Err(TokenError::BadChar(bad)),
        None => Ok(()),
    }
}

impl TryFrom<String> for Token {
    type Error = TokenError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_token(&value)?;
        Ok(Token(Arc::from(value)))
    }
}

impl From<Token> for String {
    fn from(token: Token) -> String {
        token.0.as_ref().to_owned()
    }
}

/// As a plain string.
impl Serialize for Token {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A string, checked as [`Token::parse`] checks it.
impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Token;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id of 1 to 64 letters, digits, '-' or '_'")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Token, E> {
                Token::parse(value).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Token {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for ok in ["engineering", "ward-5", "LAB_1", "a", &"x".repeat(64)] {
            assert!(Token::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_subject_injection_and_oddities() {
        assert_eq!(Token::parse(""), Err(TokenError::Empty));
        assert_eq!(Token::parse(&"x".repeat(65)), Err(TokenError::TooLong(65)));
        for (bad, c) in [
            ("a.b", '.'),
            ("*", '*'),
            (">", '>'),
            ("a b", ' '),
            ("wärd", 'ä'),
        ] {
            assert_eq!(Token::parse(bad), Err(TokenError::BadChar(c)), "{bad}");
        }
    }

    #[test]
    fn serializes_as_a_plain_string_and_checks_what_it_reads() {
        let token = Token::parse("ward-5").expect("token");
        let json = serde_json::to_string(&token).expect("serialize");
        assert_eq!(json, "\"ward-5\"");
        assert_eq!(
            serde_json::from_str::<Token>(&json).expect("deserialize"),
            token
        );
        for bad in ["\"a.b\"", "\"\"", "7"] {
            assert!(serde_json::from_str::<Token>(bad).is_err(), "{bad}");
        }
    }
}

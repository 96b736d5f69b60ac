//! Domain types shared by the HTTP layer, the services and the stores: principals and
//! tenants, vector collections and points, graph nodes and relationships, ingest's
//! events and document graphs, and the payload ingest stores with each chunk.

/// What every validated string type shares: `as_str`, `Deref<Target = str>`, `Display`
/// and `From<T> for String`. With `named "…"`, also `TryFrom<String>` and `parse` by
/// [`is_valid_name`] (tenants, collections); other types check their own way.
macro_rules! string_newtype {
    ($t:ident) => {
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// As the string, quoted and escaped: messages and logs say `"demo"`, not
        /// `Tenant("demo")`.
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
    };
    ($t:ident, named $what:literal) => {
        string_newtype!($t);

        impl TryFrom<String> for $t {
            type Error = String;

            fn try_from(name: String) -> Result<Self, String> {
                if $crate::domain::is_valid_name(&name) {
                    Ok($t(name))
                } else {
                    Err(format!("{name:?} is not a valid {}", $what))
                }
            }
        }

        impl $t {
            pub fn parse(name: &str) -> Option<Self> {
                Self::try_from(name.to_owned()).ok()
            }
        }
    };
}
pub(crate) use string_newtype;

pub mod audit;
pub mod graph;
pub mod ingest;
pub mod payload;
pub mod principal;
pub mod quota;
pub mod vector;

/// Seconds since the Unix epoch (0 if the clock is before it): the timestamps the API
/// reports and tokens carry.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Names that become directory names, graph names or key prefixes (tenants, collections):
/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// A tenant or collection name: a letter or digit, then up to 63 letters, digits, `_`
/// or `-`.
// The OpenAPI document's type, so the pattern is written once; requests hold names as
// strings, checked with `is_valid_name`.
#[derive(utoipa::ToSchema)]
#[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
pub struct Name(pub String);

/// The longest label or relationship type.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Graph labels and relationship types, which are spliced into Cypher:
/// `^[A-Za-z][A-Za-z0-9_]{0,63}$`.
pub fn is_valid_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_IDENTIFIER_LEN
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// A label or relationship type: a letter, then up to 63 letters, digits or `_`.
// The OpenAPI document's type; requests hold these as strings, checked with
// `is_valid_identifier`.
#[derive(utoipa::ToSchema)]
#[schema(pattern = r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
pub struct Identifier(pub String);

/// A document or node id: no control or bidirectional-text characters.
// The OpenAPI document's type; requests hold ids as strings, checked with
// `is_displayable_id`.
#[derive(utoipa::ToSchema)]
#[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+$")]
pub struct DisplayedId(pub String);

/// Client-chosen ids (documents, graph nodes) that show up in logs and UIs: no control
/// characters and no bidirectional-text controls (U+061C, U+200E/F, U+202A–E,
/// U+2066–9), which could disguise one id as another.
pub fn is_displayable_id(id: &str) -> bool {
    !id.chars().any(is_hidden_char)
}

/// A control character or a bidirectional-text control: what `is_displayable_id` refuses.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displayable_ids_refuse_control_and_bidi_characters() {
        assert!(is_displayable_id("doc-1 é 文"));
        for bad in [
            "a\nb",
            "a\u{0}b",
            "admin\u{202E}txt.exe",
            "x\u{2066}y",
            "\u{200F}",
        ] {
            assert!(!is_displayable_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_and_identifiers_reject_injection() {
        assert!(is_valid_name("acme-corp_1"));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(is_valid_identifier("Person_2"));
        assert!(!is_valid_identifier("Person`) DETACH DELETE (n"));
        assert!(!is_valid_identifier("1abc"));
        assert!(!is_valid_identifier("a-b"));
    }
}

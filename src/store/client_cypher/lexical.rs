//! The lexical second line of client Cypher admission: refuses updating, loading and
//! procedure keywords found outside string literals, quoted names and comments, with the
//! engine's quoting rules (a backslash escapes inside string literals only; a doubled
//! backtick inside a quoted name).

use super::Refusal;

/// Keywords refused by the lexical check wherever they stand outside literals, quoted
/// names and comments.
const FORBIDDEN_KEYWORDS: [&str; 11] = [
    "CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "LOAD", "CALL", "FOREACH",
    "USE",
];

/// The lexical second line: refuses updating, loading and procedure keywords.
pub fn ensure_no_forbidden_keyword(query: &str) -> Result<(), Refusal> {
    for word in keywords(query) {
        let upper = word.to_ascii_uppercase();
        if FORBIDDEN_KEYWORDS.contains(&upper.as_str()) {
            return Err(format!(
                "{upper} is not allowed: /graphs/query runs read-only Cypher"
            ));
        }
    }
    Ok(())
}

/// Bare words of a Cypher text, skipping string literals (where a backslash escapes the
/// next character), `quoted` names (where only a doubled backtick escapes, as in the
/// engine's lexer), parameters, property and label names, and comments.
fn keywords(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' | b'.' | b':' => {
                // A parameter, property or label name is not a clause keyword.
                i += 1;
                while i < bytes.len() && word_byte(bytes[i]) {
                    i += 1;
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && word_byte(bytes[i]) {
                    i += 1;
                }
                words.push(&text[start..i]);
            }
            _ => i += 1,
        }
    }
    words
}

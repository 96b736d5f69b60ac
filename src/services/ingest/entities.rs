//! Rule-based entity extraction, the default that needs no model: proper-noun spans
//! (runs of capitalised words, allowing `of`/`de`/`van`/`von`/`la` inside, skipping a
//! lone capitalised stop word at the start of a sentence), hashtags, and the names an
//! event lists in `metadata.entities`. Keys are normalised (lowercase, single spaces)
//! so "Marie Curie" and "marie  curie" are one entity.

use std::collections::HashMap;

use super::chunk::sentences;

/// Longest entity name kept, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Words that start sentences in capitals without naming anything.
const STOP: &[&str] = &[
    "a",
    "an",
    "and",
    "after",
    "all",
    "also",
    "although",
    "an",
    "are",
    "as",
    "at",
    "because",
    "before",
    "both",
    "but",
    "by",
    "can",
    "do",
    "does",
    "during",
    "each",
    "either",
    "even",
    "every",
    "few",
    "for",
    "from",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "it's",
    "just",
    "later",
    "many",
    "more",
    "most",
    "much",
    "my",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "often",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "over",
    "she",
    "since",
    "so",
    "some",
    "still",
    "such",
    "than",
    "that",
    "the",
    "their",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "thus",
    "to",
    "today",
    "under",
    "unlike",
    "until",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "why",
    "with",
    "within",
    "without",
    "yet",
    "you",
    "your",
    "however",
    "meanwhile",
    "there's",
    "we're",
    "they're",
    "let",
    "yes",
    "according",
    "despite",
    "between",
];

/// Lowercase connectors allowed inside a proper-noun span ("University of Paris").
const CONNECTORS: &[&str] = &[
    "of", "de", "van", "von", "la", "del", "da", "di", "du", "le",
];

/// A normalised entity key and the display name first seen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub key: String,
    pub name: String,
}

/// The words of a name: split at whitespace, and at control and bidirectional-text
/// characters, which a name never keeps (they could disguise one name as another).
fn name_words(name: &str) -> impl Iterator<Item = &str> {
    name.split(|c: char| c.is_whitespace() || crate::domain::is_hidden_char(c))
        .filter(|w| !w.is_empty())
}

/// Lowercase, whitespace collapsed, surrounding punctuation trimmed; `None` if nothing
/// is left or the name is too long.
pub fn normalize(name: &str) -> Option<String> {
    let words: Vec<String> = name_words(name)
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let key = words.join(" ");
    (!key.is_empty() && key.chars().count() <= MAX_NAME_CHARS).then_some(key)
}

/// Entities of one text, most frequent first (ties in order of first appearance), at
/// most `max`. `extra` names (from metadata) come first and always count.
pub fn extract(text: &str, extra: &[String], max: usize) -> Vec<Entity> {
    let mut counts: HashMap<String, (usize, usize, String)> = HashMap::new();
    let mut order = 0;
    let mut add = |name: &str, weight: usize| {
        let Some(key) = normalize(name) else { return };
        let display = name_words(name).collect::<Vec<_>>().join(" ");
        let entry = counts.entry(key).or_insert_with(|| {
            order += 1;
            (0, order, display)
        });
        entry.0 += weight;
    };
    for name in extra {
        add(name, 1000);
    }
    for sentence in sentences(text) {
        for span in proper_nouns(sentence) {
            add(span, 1);
        }
        for tag in hashtags(sentence) {
            add(tag, 1);
        }
    }
    let mut found: Vec<(String, (usize, usize, String))> = counts.into_iter().collect();
    found.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
    found
        .into_iter()
        .take(max)
        .map(|(key, (_, _, name))| Entity { key, name })
        .collect()
}

/// `#word` → `word` (letters, digits, `_`, `-`).
fn hashtags(sentence: &str) -> impl Iterator<Item = &str> {
    sentence.split_whitespace().filter_map(|w| {
        let tag = w.strip_prefix('#')?;
        let end = tag
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(tag.len());
        let tag = &tag[..end];
        tag.chars()
            .next()
            .filter(|c| c.is_alphabetic())
            .map(|_| tag)
    })
}

fn is_capitalised(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(char::is_uppercase) && chars.any(char::is_alphabetic)
        || word.len() >= 2
            && word.chars().any(char::is_uppercase)
            && word.chars().all(|c| c.is_uppercase() || c.is_ascii_digit())
}

/// Runs of capitalised words inside one sentence, as slices of it.
fn proper_nouns(sentence: &str) -> Vec<&str> {
    // (start, end) byte offsets of each word, with edge punctuation trimmed.
    let words: Vec<(usize, usize)> = word_spans(sentence);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &sentence[words[i].0..words[i].1];
        if !is_capitalised(word) || word.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        let mut j = i + 1;
        while j < words.len() {
            let w = &sentence[words[j].0..words[j].1];
            let joined = !sentence[words[j - 1].1..words[j].0].contains([',', ';', ':', '(', ')']);
            if !joined {
                break;
            }
            if is_capitalised(w) {
                end = j;
                j += 1;
            } else if CONNECTORS.contains(&w) && j + 1 < words.len() {
                j += 1;
            } else {
                break;
            }
        }
        i = end + 1;
        // A capitalised stop word ("The", "In") is not part of the name after it.
        let mut start = start;
        while start <= end && is_stop(&sentence[words[start].0..words[start].1]) {
            start += 1;
        }
        // A lone word opening the sentence is capitalised by grammar, not by name.
        if start > end || (start == 0 && end == 0) {
            continue;
        }
        spans.push(&sentence[words[start].0..words[end].1]);
    }
    spans
}

fn is_stop(word: &str) -> bool {
    STOP.contains(&word.to_lowercase().as_str())
}

fn word_spans(sentence: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in sentence.split_whitespace() {
        let at = offset + sentence[offset..].find(raw).unwrap_or(0);
        offset = at + raw.len();
        let lead = raw.len()
            - raw
                .trim_start_matches(|c: char| !c.is_alphanumeric() && c != '#')
                .len();
        let trimmed = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '#');
        if !trimmed.is_empty() {
            out.push((at + lead, at + lead + trimmed.len()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        extract(text, &[], 32).into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn proper_noun_runs_become_entities() {
        let found = names(
            "Marie Curie worked at the University of Paris. In 1903, she shared the \
             Nobel Prize with Pierre Curie. The prize made Marie Curie famous.",
        );
        assert_eq!(found[0], "Marie Curie", "most frequent first: {found:?}");
        for expected in ["University of Paris", "Nobel Prize", "Pierre Curie"] {
            assert!(
                found.contains(&expected.to_owned()),
                "{expected} in {found:?}"
            );
        }
        for stop in ["In", "The", "In 1903"] {
            assert!(!found.contains(&stop.to_owned()), "{stop} in {found:?}");
        }
    }

    #[test]
    fn hashtags_metadata_and_normalisation() {
        let extra = vec!["Radium".to_owned()];
        let found = extract("Loving #rustlang and #Tokio. radium glows.", &extra, 32);
        let keys: Vec<&str> = found.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["radium", "rustlang", "tokio"]);
        assert_eq!(normalize("  Marie   CURIE, "), Some("marie curie".into()));
        assert_eq!(normalize("..."), None);
        assert_eq!(normalize("\u{0}\u{202E}"), None);
        let found = extract("Nothing here.", &["\u{0}Evil\u{202E}Twin\n".into()], 4);
        assert_eq!(found[0].key, "evil twin");
        assert_eq!(
            found[0].name, "Evil Twin",
            "no hidden characters kept for display"
        );
        let capped = extract("Alpha Beta, Gamma Delta, Epsilon Zeta", &[], 2);
        assert_eq!(capped.len(), 2);
    }
}

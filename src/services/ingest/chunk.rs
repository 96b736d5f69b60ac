//! Sentence-aware chunking: split text into sentences, pack whole sentences into chunks
//! of at most `size` characters, and start each chunk with the last sentences of the
//! previous one (up to `overlap` characters) so a fact split across a boundary is whole
//! in at least one chunk. A sentence longer than `size` is cut at word boundaries.

/// Chunking parameters, in characters (not bytes).
#[derive(Debug, Clone, Copy)]
pub struct ChunkSpec {
    pub size: usize,
    pub overlap: usize,
}

/// The chunks of `text`, trimmed, in order; empty text gives none.
pub fn chunk(text: &str, spec: ChunkSpec) -> Vec<String> {
    let pieces: Vec<&str> = sentences(text)
        .into_iter()
        .flat_map(|s| split_long(s, spec.size))
        .collect();
    let mut chunks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut len = 0;
    // Sentences of `current` that are overlap carried from the previous chunk.
    let mut carried = 0;
    for piece in pieces {
        let piece_len = chars(piece);
        if !current.is_empty() && len + 1 + piece_len > spec.size {
            if current.len() > carried {
                chunks.push(current.join(" "));
            }
            let tail = overlap_tail(&current, spec.overlap, spec.size - piece_len.min(spec.size));
            carried = tail.len();
            len = joined_len(&tail);
            current = tail;
        }
        len += piece_len + usize::from(!current.is_empty());
        current.push(piece);
    }
    if current.len() > carried {
        chunks.push(current.join(" "));
    }
    chunks
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn joined_len(parts: &[&str]) -> usize {
    parts.iter().map(|p| chars(p)).sum::<usize>() + parts.len().saturating_sub(1)
}

/// The last sentences of `current` whose joined length fits both the overlap and the
/// room left next to the incoming sentence.
fn overlap_tail<'a>(current: &[&'a str], overlap: usize, room: usize) -> Vec<&'a str> {
    let budget = overlap.min(room.saturating_sub(1));
    let mut tail = Vec::new();
    let mut len = 0;
    for s in current.iter().rev() {
        let add = chars(s) + usize::from(!tail.is_empty());
        if len + add > budget {
            break;
        }
        len += add;
        tail.push(*s);
    }
    tail.reverse();
    tail
}

/// Sentences: text up to `.`, `!` or `?` (plus closing quotes or brackets) followed by
/// whitespace, or up to a line break (a title line, a list item, a heading is a sentence of
/// its own). Whitespace inside is kept; ends are trimmed.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '.' | '!' | '?' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, q)) = chars.peek() {
                    if matches!(q, '"' | '\'' | ')' | ']' | '”' | '’') {
                        end = j + q.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                match chars.peek() {
                    Some(&(_, next)) if next.is_whitespace() => Some(end),
                    None => Some(end),
                    _ => None,
                }
            }
            '\n' => Some(i),
            _ => None,
        };
        if let Some(end) = end {
            push_trimmed(&mut out, &text[start..end]);
            start = end;
        }
    }
    push_trimmed(&mut out, &text[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim();
    if !s.is_empty() {
        out.push(s);
    }
}

/// Cuts a sentence longer than `size` characters at the last whitespace that fits (or
/// mid-word if a single word is longer).
fn split_long(sentence: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = sentence;
    while chars(rest) > size {
        let limit = rest.char_indices().nth(size).map_or(rest.len(), |(i, _)| i);
        let cut = rest[..limit]
            .rfind(char::is_whitespace)
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        out.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ChunkSpec = ChunkSpec {
        size: 60,
        overlap: 25,
    };

    #[test]
    fn sentences_end_at_terminal_punctuation_followed_by_space() {
        let s = sentences("Dr. Who? Yes! It costs 3.50 today. \"Quoted.\" Next\n\nPara two");
        assert_eq!(
            s,
            [
                "Dr.",
                "Who?",
                "Yes!",
                "It costs 3.50 today.",
                "\"Quoted.\"",
                "Next",
                "Para two"
            ]
        );
    }

    #[test]
    fn a_line_break_ends_a_sentence_so_a_title_stands_alone() {
        let s = sentences("Forbidden Ground\nForbidden Ground is a 1968 film\r\nwith no ending");
        assert_eq!(
            s,
            [
                "Forbidden Ground",
                "Forbidden Ground is a 1968 film",
                "with no ending"
            ]
        );
    }

    #[test]
    fn chunks_pack_whole_sentences_and_carry_an_overlap() {
        let text = "Alpha beta gamma delta. Epsilon zeta eta theta. Iota kappa lambda mu. \
                    Nu xi omicron pi. Rho sigma tau upsilon.";
        let chunks = chunk(text, SPEC);
        assert!(chunks.len() >= 2, "{chunks:?}");
        for c in &chunks {
            assert!(c.chars().count() <= SPEC.size, "{c:?} is too long");
        }
        // Each chunk after the first starts with the previous chunk's last sentence.
        for pair in chunks.windows(2) {
            let last = sentences(&pair[0]).last().copied().unwrap();
            assert!(pair[1].starts_with(last), "{pair:?}");
        }
        let all = chunks.join(" ");
        for s in sentences(text) {
            assert!(all.contains(s), "{s} lost");
        }
    }

    #[test]
    fn long_sentences_are_cut_at_words_and_empty_text_gives_no_chunks() {
        let long = "word ".repeat(40);
        let chunks = chunk(&long, SPEC);
        assert!(chunks.iter().all(|c| c.chars().count() <= SPEC.size));
        assert!(
            chunks
                .iter()
                .all(|c| !c.starts_with(' ') && !c.ends_with(' '))
        );
        assert!(chunk("   \n\n ", SPEC).is_empty());
        assert_eq!(chunk("One sentence.", SPEC), ["One sentence."]);
        let unbroken = "x".repeat(130);
        assert_eq!(chunk(&unbroken, SPEC).concat(), unbroken);
    }
}

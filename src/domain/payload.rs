//! The payload ingest stores with each chunk's point, and the fields every reader of a
//! point's text relies on (BM25 weights, generation's passages and citations). The keys
//! live here only: ingest writes a [`ChunkPayload`], readers use [`text`], [`doc_id`]
//! and [`title`], which also read points a client wrote with the same fields.

use serde_json::{Map, Value};

/// Key of the passage text.
pub const TEXT: &str = "text";
/// Key of the id of the document a chunk belongs to (filtered on to delete its points).
pub const DOC_ID: &str = "doc_id";
const CHUNK_INDEX: &str = "chunk_index";
const ENTITIES: &str = "entities";
const METADATA: &str = "metadata";
const TITLE: &str = "title";

/// What ingest stores with a chunk's point.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPayload {
    pub text: String,
    pub doc_id: String,
    pub chunk_index: usize,
    /// Display names of the entities the chunk mentions.
    pub entities: Vec<String>,
    /// The document's metadata, as the client sent it.
    pub metadata: Map<String, Value>,
}

impl ChunkPayload {
    pub fn into_map(self) -> Map<String, Value> {
        Map::from_iter([
            (TEXT.to_owned(), Value::from(self.text)),
            (DOC_ID.to_owned(), Value::from(self.doc_id)),
            (CHUNK_INDEX.to_owned(), Value::from(self.chunk_index)),
            (ENTITIES.to_owned(), Value::from(self.entities)),
            (METADATA.to_owned(), Value::Object(self.metadata)),
        ])
    }
}

/// The point's passage text, if it has one.
pub fn text(payload: &Map<String, Value>) -> Option<&str> {
    payload.get(TEXT)?.as_str()
}

/// The document the point belongs to, if it says.
pub fn doc_id(payload: &Map<String, Value>) -> Option<&str> {
    payload.get(DOC_ID)?.as_str()
}

/// The point's title: `title`, else its document's `metadata.title`.
pub fn title(payload: &Map<String, Value>) -> Option<&str> {
    payload
        .get(TITLE)
        .or_else(|| payload.get(METADATA)?.get(TITLE))?
        .as_str()
}

/// A document's title from its metadata, when it is a non-blank string.
pub fn metadata_title(metadata: &Map<String, Value>) -> Option<&str> {
    metadata
        .get(TITLE)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_written_payload_reads_back_through_the_readers() {
        let metadata = json!({"title": " Quillbury "})
            .as_object()
            .cloned()
            .unwrap();
        let payload = ChunkPayload {
            text: "Marie Durand was born in Quillbury.".into(),
            doc_id: "d1".into(),
            chunk_index: 2,
            entities: vec!["Marie Durand".into()],
            metadata: metadata.clone(),
        }
        .into_map();
        assert_eq!(text(&payload), Some("Marie Durand was born in Quillbury."));
        assert_eq!(doc_id(&payload), Some("d1"));
        assert_eq!(title(&payload), Some(" Quillbury "));
        assert_eq!(metadata_title(&metadata), Some("Quillbury"));
        assert_eq!(payload["chunk_index"], 2);
        assert_eq!(payload["entities"], json!(["Marie Durand"]));
        let plain = json!({"text": "t", "title": "own"})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            title(&plain),
            Some("own"),
            "a point's own title comes first"
        );
    }
}

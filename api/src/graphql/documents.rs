//! Parsed documents of `/graphql` over HTTP, kept by their text.
//!
//! A client sends the same few operations over and over (a page sends its one query on every
//! load), and parsing is the largest part of a small query's cost. The HTTP endpoint therefore
//! parses each distinct text once, checks it against [`super::limits::OperationLimits`] once,
//! and hands the executor a copy of the parsed document. The cache is bounded: at
//! [`DocumentCache::capacity`] entries it starts over, so texts that change on every request (a
//! client inlining values instead of using variables) cost memory only up to the bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::ServerError;
use async_graphql::parser::types::ExecutableDocument;

use super::limits::OperationLimits;

/// Longest text kept (longer ones are parsed on every request).
const MAX_CACHED_BYTES: usize = 16 * 1024;

/// What parsing and checking a text gave.
type Checked = Result<Arc<ExecutableDocument>, ServerError>;

/// Parsed and limit-checked documents by their text.
pub struct DocumentCache {
    limits: OperationLimits,
    capacity: usize,
    entries: Mutex<HashMap<Box<str>, Checked>>,
}

impl DocumentCache {
    /// A cache of at most `capacity` documents checked against `limits`.
    pub fn new(limits: OperationLimits, capacity: usize) -> Self {
        Self {
            limits,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The most documents kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The document of `query`, parsed and checked against the limits.
    ///
    /// # Errors
    /// The parse error (`GRAPHQL_PARSE_FAILED`) or the first limit exceeded; both are request
    /// errors, kept like documents so a repeated bad text is refused without parsing.
    pub fn document(&self, query: &str) -> Result<ExecutableDocument, ServerError> {
        if query.len() <= MAX_CACHED_BYTES {
            let hit = self
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(query)
                .cloned();
            if let Some(checked) = hit {
                return checked.map(|doc| (*doc).clone());
            }
        }
        let checked = self.check(query);
        if query.len() <= MAX_CACHED_BYTES {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(query.into(), checked.clone());
        }
        checked.map(|doc| (*doc).clone())
    }

    fn check(&self, query: &str) -> Checked {
        let doc = async_graphql::parser::parse_query(query)
            .map_err(|e| super::codes::tag(ServerError::from(e), "GRAPHQL_PARSE_FAILED"))?;
        self.limits.check(&doc)?;
        Ok(Arc::new(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> DocumentCache {
        DocumentCache::new(
            OperationLimits {
                max_root_fields: 2,
                max_fields: 100,
                max_spending_fields: 1,
            },
            capacity,
        )
    }

    fn code(e: &ServerError) -> Option<String> {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|v| v.to_string().trim_matches('"').to_owned())
    }

    #[test]
    fn documents_are_parsed_once_and_refusals_keep_their_codes() {
        let c = cache(8);
        let q = "{ a b }";
        let (a, b) = (c.document(q).unwrap(), c.document(q).unwrap());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(c.entries.lock().unwrap().len(), 1);
        let e = c.document("{ a ").unwrap_err();
        assert_eq!(code(&e).as_deref(), Some("GRAPHQL_PARSE_FAILED"));
        let e = c.document("{ a b c }").unwrap_err();
        assert_eq!(code(&e).as_deref(), Some("TOO_MANY_ROOT_FIELDS"));
        // Refused texts are remembered too, with the same answer.
        let again = c.document("{ a b c }").unwrap_err();
        assert_eq!(code(&again).as_deref(), Some("TOO_MANY_ROOT_FIELDS"));
        assert_eq!(c.entries.lock().unwrap().len(), 3);
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = cache(4);
        for i in 0..50 {
            c.document(&format!("{{ a{i} }}")).unwrap();
            assert!(c.entries.lock().unwrap().len() <= 4);
        }
        let long = format!("{{ {} }}", "a ".repeat(MAX_CACHED_BYTES));
        assert!(c.document(&long).is_err(), "over the field budget");
        assert!(c.entries.lock().unwrap().keys().all(|k| k.len() <= MAX_CACHED_BYTES));
    }
}

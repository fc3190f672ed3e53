//! Parsed documents of `/graphql` over HTTP, kept by their text.
//!
//! A client sends the same few operations over and over (a page sends its one query on every
//! load), and parsing is the largest part of a small query's cost. The HTTP endpoint therefore
//! parses each distinct text once, checks it against [`super::limits::OperationLimits`] once,
//! and hands the executor a copy of the parsed document. The cache is bounded: at
//! [`DocumentCache::capacity`] entries it starts over, so texts that change on every request (a
//! client inlining values instead of using variables) cost memory only up to the bound.
//!
//! A document without variables validates the same way every time (validation reads only the
//! document and the schema), so once it passed strict validation it is marked
//! [`Document::validated`] and the endpoint runs it on a schema in async-graphql's fast
//! validation mode, which still computes the depth and complexity limits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::ServerError;
use async_graphql::parser::types::ExecutableDocument;

use super::limits::OperationLimits;

/// Longest text kept (longer ones are parsed on every request).
const MAX_CACHED_BYTES: usize = 16 * 1024;

/// A parsed, limit-checked document.
#[derive(Debug)]
pub struct Document {
    doc: ExecutableDocument,
    has_variables: bool,
    validated: AtomicBool,
}

impl Document {
    /// A copy of the parsed document, for one execution.
    pub fn parsed(&self) -> ExecutableDocument {
        self.doc.clone()
    }

    /// Whether it passed strict validation before and has no variables, so it validates the
    /// same way again: run it with fast validation.
    pub fn validated(&self) -> bool {
        !self.has_variables && self.validated.load(Ordering::Relaxed)
    }

    /// Records that it passed strict validation.
    pub fn mark_validated(&self) {
        self.validated.store(true, Ordering::Relaxed);
    }
}

/// What parsing and checking a text gave.
type Checked = Result<Arc<Document>, ServerError>;

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
    pub fn document(&self, query: &str) -> Result<Arc<Document>, ServerError> {
        if query.len() <= MAX_CACHED_BYTES {
            let hit = self
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(query)
                .cloned();
            if let Some(checked) = hit {
                return checked;
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
        checked
    }

    fn check(&self, query: &str) -> Checked {
        let doc = async_graphql::parser::parse_query(query)
            .map_err(|e| super::codes::tag(ServerError::from(e), "GRAPHQL_PARSE_FAILED"))?;
        self.limits.check(&doc)?;
        let has_variables = doc
            .operations
            .iter()
            .any(|(_, op)| !op.node.variable_definitions.is_empty());
        Ok(Arc::new(Document {
            doc,
            has_variables,
            validated: AtomicBool::new(false),
        }))
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
        assert!(Arc::ptr_eq(&a, &b), "parsed once");
        assert!(!a.validated());
        a.mark_validated();
        assert!(b.validated(), "the mark is the text's");
        let with_vars = c.document("query Q($x: Int) { a(x: $x) }").unwrap();
        with_vars.mark_validated();
        assert!(
            !with_vars.validated(),
            "documents with variables always validate strictly"
        );
        assert_eq!(c.entries.lock().unwrap().len(), 2);
        let e = c.document("{ a ").unwrap_err();
        assert_eq!(code(&e).as_deref(), Some("GRAPHQL_PARSE_FAILED"));
        let e = c.document("{ a b c }").unwrap_err();
        assert_eq!(code(&e).as_deref(), Some("TOO_MANY_ROOT_FIELDS"));
        // Refused texts are remembered too, with the same answer.
        let again = c.document("{ a b c }").unwrap_err();
        assert_eq!(code(&again).as_deref(), Some("TOO_MANY_ROOT_FIELDS"));
        assert_eq!(c.entries.lock().unwrap().len(), 4);
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

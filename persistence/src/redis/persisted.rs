//! Persisted GraphQL documents, shared by every instance through Redis and addressed by the
//! lower-case hex SHA-256 of their text ([`document_hash`]):
//!
//! * **client-registered** documents (automatic persisted queries) under `bm:apq:{sha256}`,
//!   each with an optional expiry: any client may add one, so they are a cache of texts, never
//!   a list of what is allowed;
//! * **trusted** documents in the hash `bm:trusted_documents` (field = hash, value = text),
//!   added only by operators and never expiring: the allow-list of the trusted-documents mode.
//!
//! A text is stored under the hash of its own bytes only (the callers check it), so an entry
//! can never be changed into another document.

use std::time::Duration;

use domain::ports::PortError;
use sha2::{Digest, Sha256};

use super::{Connection, Keys, port_err};

/// The lower-case hex SHA-256 of `text`'s UTF-8 bytes: the id Apollo's persisted queries
/// (`extensions.persistedQuery.sha256Hash`) and the GraphQL-over-HTTP persisted documents
/// (`documentId: "sha256:…"`) use.
pub fn document_hash(text: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Is `s` a document hash as stored: 64 lower-case hex digits?
pub fn is_document_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The Redis store of persisted documents (cheap to clone).
#[derive(Clone)]
pub struct PersistedDocuments {
    conn: Connection,
    keys: Keys,
    apq_ttl: Option<Duration>,
}

impl PersistedDocuments {
    /// The store under `keys`; client-registered documents expire `apq_ttl` after their last
    /// registration (`None`: never).
    pub fn new(conn: Connection, keys: Keys, apq_ttl: Option<Duration>) -> Self {
        Self {
            conn,
            keys,
            apq_ttl: apq_ttl.filter(|t| !t.is_zero()),
        }
    }

    /// The text of `hash`, trusted or client-registered (one round trip).
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer (within the connection's deadline).
    pub async fn find(&self, hash: &str) -> Result<Option<String>, PortError> {
        let (trusted, registered): (Option<String>, Option<String>) = redis::pipe()
            .cmd("HGET")
            .arg(self.keys.trusted_documents())
            .arg(hash)
            .cmd("GET")
            .arg(self.keys.apq_document(hash))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(port_err)?;
        Ok(trusted.or(registered))
    }

    /// The text of trusted document `hash`.
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer.
    pub async fn find_trusted(&self, hash: &str) -> Result<Option<String>, PortError> {
        redis::cmd("HGET")
            .arg(self.keys.trusted_documents())
            .arg(hash)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(port_err)
    }

    /// Stores a client-registered `text` under `hash` (its [`document_hash`]), with the
    /// store's expiry (refreshed when it was there already).
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer.
    pub async fn register(&self, hash: &str, text: &str) -> Result<(), PortError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.keys.apq_document(hash)).arg(text);
        if let Some(ttl) = self.apq_ttl {
            cmd.arg("EX").arg(ttl.as_secs().max(1));
        }
        cmd.query_async::<()>(&mut self.conn.clone()).await.map_err(port_err)
    }

    /// Adds trusted documents (`(hash, text)`, each hash the [`document_hash`] of its text);
    /// returns how many were not trusted before.
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer.
    pub async fn trust(&self, documents: &[(String, String)]) -> Result<usize, PortError> {
        if documents.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys.trusted_documents());
        for (hash, text) in documents {
            cmd.arg(hash).arg(text);
        }
        cmd.query_async::<usize>(&mut self.conn.clone()).await.map_err(port_err)
    }

    /// Removes trusted documents by hash and raises the generation (in one transaction), so
    /// every instance forgets them within its next check; returns how many were trusted.
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer.
    pub async fn untrust(&self, hashes: &[String]) -> Result<usize, PortError> {
        if hashes.is_empty() {
            return Ok(0);
        }
        let (removed, _): (usize, i64) = redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(self.keys.trusted_documents())
            .arg(hashes)
            .cmd("INCR")
            .arg(self.keys.trusted_documents_generation())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(port_err)?;
        Ok(removed)
    }

    /// The removal generation (0 before any removal).
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer.
    pub async fn generation(&self) -> Result<i64, PortError> {
        redis::cmd("GET")
            .arg(self.keys.trusted_documents_generation())
            .query_async::<Option<i64>>(&mut self.conn.clone())
            .await
            .map(Option::unwrap_or_default)
            .map_err(port_err)
    }

    /// Up to `first` trusted documents `(hash, text)` in hash order, after hash `after`.
    ///
    /// # Errors
    /// [`PortError`] when Redis does not answer.
    pub async fn trusted_page(&self, after: Option<&str>, first: usize) -> Result<Vec<(String, String)>, PortError> {
        let key = self.keys.trusted_documents();
        let mut conn = self.conn.clone();
        let mut hashes: Vec<String> = redis::cmd("HKEYS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        hashes.sort_unstable();
        let start = after.map_or(0, |a| hashes.partition_point(|h| h.as_str() <= a));
        let page: Vec<String> = hashes.into_iter().skip(start).take(first).collect();
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&page)
            .query_async(&mut conn)
            .await
            .map_err(port_err)?;
        Ok(page
            .into_iter()
            .zip(texts)
            .filter_map(|(h, t)| t.map(|t| (h, t)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lower_case_hex_sha256_of_the_utf8_text() {
        // The examples of the GraphQL-over-HTTP persisted documents appendix.
        assert_eq!(
            document_hash("query($id:ID!){user(id:$id){name}}"),
            "71f7dc5758652baac68e4a10c50be732b741c892ade2883a99358f52b555286b"
        );
        assert_eq!(
            document_hash("query ($id: ID!) {\n  user(id: $id) {\n    name\n  }\n}"),
            "7dba4bd717b41f10434822356a93c32b1fb4907b983e854300ad839f84cdcd6e"
        );
        assert!(is_document_hash(&document_hash("{ __typename }")));
        assert!(!is_document_hash(&document_hash("x").to_uppercase()));
        assert!(!is_document_hash("abc"));
    }
}

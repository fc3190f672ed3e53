//! Persisted documents: Apollo's automatic persisted queries (APQ), GraphQL-over-HTTP
//! `documentId`s, and the trusted-documents mode (docs/SECURITY.md §Trusted documents).
//!
//! A document is addressed by the lower-case hex SHA-256 of its text
//! ([`persistence::redis::persisted::document_hash`]). An operation of `/graphql` names its
//! document in one of three ways ([`Source`]):
//!
//! * a `query` text alone — it runs as it is;
//! * a hash alone (`extensions.persistedQuery = {version: 1, sha256Hash}` or
//!   `documentId: "sha256:…"`) — the text is looked up (this instance's memory, then Redis,
//!   shared by every instance); unknown: `PERSISTED_QUERY_NOT_FOUND`, to which APQ clients
//!   answer by sending the text with its hash;
//! * a `query` with its hash — the hash must be the text's (`PERSISTED_QUERY_HASH_MISMATCH`);
//!   the text runs, and, once it passed validation, is registered under the hash (APQ).
//!
//! With `http.trusted_documents = "enforce"` only **trusted** documents run — those an operator
//! registered (`registerTrustedDocuments`, `big-market trust-documents`) — whether sent as text
//! or by hash; anything else is refused with `OPERATION_NOT_TRUSTED` before it is parsed, and
//! clients cannot register documents. Admin tokens may run any document, so operators can
//! bootstrap and use GraphiQL. `/graphql/ws` applies the same rule ([`TrustedOnly`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Context, Object, Result, ServerError, ServerResult, SimpleObject, Variables};
use domain::ErrorCode;
use persistence::redis::PersistedDocuments;
use persistence::redis::persisted::{document_hash, is_document_hash};
use serde_json::{Map, Value, json};

use super::access;
use super::audit::audited;
use super::error::{EdgeCode, with_code};
use crate::auth::{Identity, Role};
use crate::settings::TrustedDocuments;
use crate::state::AppState;

/// The only `extensions.persistedQuery.version`.
pub const APQ_VERSION: i64 = 1;

/// Texts this instance keeps by hash, in bytes (beyond, it starts over).
const KNOWN_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Trusted documents one `registerTrustedDocuments` call may add.
pub const MAX_DOCUMENTS_PER_CALL: usize = 500;

/// How an operation names its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `query` text and no hash.
    Text,
    /// A hash and no text: look it up.
    Hash(String),
    /// A `query` text with its (checked) hash: register it (APQ).
    Register(String),
}

type Refusal = (EdgeCode, String);

fn bad(message: impl Into<String>) -> Refusal {
    (EdgeCode::BadRequest, message.into())
}

/// The hash of `extensions.persistedQuery` (`{version: 1, sha256Hash: "<64 hex>"}`),
/// lower-cased.
///
/// # Errors
/// `BAD_REQUEST` for another shape, another version or a hash that is not 64 hex digits.
pub fn persisted_query_hash(value: &Value) -> Result<String, Refusal> {
    let Value::Object(pq) = value else {
        return Err(bad("`extensions.persistedQuery` must be an object"));
    };
    match pq.get("version") {
        Some(Value::Number(n)) if n.as_i64() == Some(APQ_VERSION) => {}
        Some(v) => {
            return Err(bad(format!(
                "unsupported persisted query version {v}: only version {APQ_VERSION} is supported"
            )));
        }
        None => return Err(bad("`extensions.persistedQuery` has no `version`")),
    }
    match pq.get("sha256Hash") {
        Some(Value::String(h)) => hash_of(h).ok_or_else(|| {
            bad("`extensions.persistedQuery.sha256Hash` must be the hex SHA-256 of the document (64 hex digits)")
        }),
        _ => Err(bad("`extensions.persistedQuery` has no `sha256Hash` string")),
    }
}

/// The hash of a GraphQL-over-HTTP `documentId`: `sha256:<64 hex>` (or the bare hex digits).
///
/// # Errors
/// `BAD_REQUEST` for any other identifier.
pub fn document_id_hash(id: &str) -> Result<String, Refusal> {
    hash_of(id.strip_prefix("sha256:").unwrap_or(id)).ok_or_else(|| {
        bad(format!(
            "`documentId` {id:?} is not `sha256:` followed by 64 hex digits"
        ))
    })
}

fn hash_of(hex: &str) -> Option<String> {
    let lower = hex.to_ascii_lowercase();
    is_document_hash(&lower).then_some(lower)
}

/// The source of an operation from its `query`, `documentId` and `extensions.persistedQuery`
/// (both ids, when sent, must agree).
///
/// # Errors
/// `BAD_REQUEST` for neither text nor id, a text with a `documentId`, or ids that differ;
/// `PERSISTED_QUERY_HASH_MISMATCH` for a text whose SHA-256 is not the hash sent with it.
pub fn source(query: Option<&str>, document_id: Option<String>, apq: Option<String>) -> Result<Source, Refusal> {
    let hash = match (document_id.clone(), apq) {
        (Some(d), Some(a)) if d != a => {
            return Err(bad("`documentId` and `extensions.persistedQuery.sha256Hash` differ"));
        }
        (d, a) => d.or(a),
    };
    match (query, hash) {
        (None, None) => Err(bad("the request has no `query` (a string)")),
        (None, Some(h)) => Ok(Source::Hash(h)),
        (Some(_), Some(_)) if document_id.is_some() => Err(bad("send either `query` or `documentId`, not both")),
        (Some(_), None) => Ok(Source::Text),
        (Some(q), Some(h)) => {
            let actual = document_hash(q);
            if actual == h {
                Ok(Source::Register(h))
            } else {
                Err((
                    EdgeCode::PersistedQueryHashMismatch,
                    format!("the query's SHA-256 is {actual}, not the persisted query hash {h}"),
                ))
            }
        }
    }
}

/// Takes `documentId` and `extensions.persistedQuery` out of an operation's parameters and
/// gives its [`Source`] (`query` is its text, if any).
///
/// # Errors
/// As [`source`]; `BAD_REQUEST` for a `documentId` that is not a string.
pub fn take_source(params: &mut Map<String, Value>, query: Option<&str>) -> Result<Source, Refusal> {
    let document_id = match params.remove("documentId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(document_id_hash(&id)?),
        Some(_) => return Err(bad("`documentId` must be a string")),
    };
    let apq = match params.get_mut("extensions") {
        Some(Value::Object(ext)) => match ext.remove("persistedQuery") {
            None | Some(Value::Null) => None,
            Some(pq) => Some(persisted_query_hash(&pq)?),
        },
        _ => None,
    };
    source(query, document_id, apq)
}

fn refusal(code: EdgeCode, message: impl Into<String>) -> ServerError {
    super::error::server_error(code, message)
}

/// `0001` for a store that did not answer (logged).
fn unavailable(e: &domain::ports::PortError) -> ServerError {
    tracing::error!(error = %e, "reading persisted documents from Redis failed");
    let mut err = ServerError::new("internal error", None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", ErrorCode::Unknown.code());
    ext.set("info", ErrorCode::Unknown.info());
    err.extensions = Some(ext);
    err
}

fn not_found() -> ServerError {
    // The message is the one Apollo's clients look for.
    refusal(EdgeCode::PersistedQueryNotFound, "PersistedQueryNotFound")
}

fn not_trusted(hash: &str) -> ServerError {
    refusal(
        EdgeCode::OperationNotTrusted,
        format!("document sha256:{hash} is not a trusted document (http.trusted_documents = \"enforce\")"),
    )
}

/// Texts known by hash, bounded by their bytes.
#[derive(Default)]
struct Known {
    texts: HashMap<String, Arc<str>>,
    bytes: usize,
    /// The store's removal generation the texts belong to.
    generation: i64,
    /// When the generation was last read.
    checked_at: Option<std::time::Instant>,
}

/// How often an instance reads the removal generation (while documents are looked up): a
/// removed trusted document stops running everywhere within about this long.
pub const GENERATION_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Persisted documents of one instance: the shared Redis store, the mode, and the texts this
/// instance already found (a hash names one text forever; they are dropped when trusted
/// documents are removed, which every instance notices within [`GENERATION_CHECK`]).
pub struct PersistedQueries {
    store: PersistedDocuments,
    mode: TrustedDocuments,
    max_document_bytes: usize,
    known: Mutex<Known>,
}

impl PersistedQueries {
    /// Over `store`, in `mode`; registered documents may be `max_document_bytes` long.
    pub fn new(store: PersistedDocuments, mode: TrustedDocuments, max_document_bytes: usize) -> Self {
        Self {
            store,
            mode,
            max_document_bytes,
            known: Mutex::new(Known::default()),
        }
    }

    /// The mode.
    pub fn mode(&self) -> TrustedDocuments {
        self.mode
    }

    /// The Redis store.
    pub fn store(&self) -> &PersistedDocuments {
        &self.store
    }

    fn remembered(&self, hash: &str) -> Option<Arc<str>> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .texts
            .get(hash)
            .cloned()
    }

    /// Keeps `text` if the texts still belong to `generation` (a text found before a removal
    /// that another request noticed meanwhile is not kept).
    fn remember(&self, hash: &str, text: &str, generation: i64) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.generation != generation || known.texts.contains_key(hash) {
            return;
        }
        if known.bytes + text.len() > KNOWN_MAX_BYTES {
            known.texts.clear();
            known.bytes = 0;
        }
        known.bytes += text.len();
        known.texts.insert(hash.to_owned(), text.into());
    }

    /// Makes `query` the text to run for an operation of `identity` named by `source` (a
    /// [`Source::Hash`] is looked up; other sources came with their text) and says whether to
    /// register it under a hash once it ran ([`Self::register`]).
    ///
    /// # Errors
    /// `PERSISTED_QUERY_NOT_FOUND` for an unknown hash; `OPERATION_NOT_TRUSTED` in enforce mode;
    /// `0001` when Redis does not answer (within its deadline).
    pub async fn resolve(
        &self,
        source: Source,
        query: &mut String,
        identity: &Identity,
    ) -> Result<Option<String>, ServerError> {
        let admin = matches!(identity, Identity::Caller { role: Role::Admin, .. });
        match (self.mode, source) {
            (TrustedDocuments::Off, Source::Text) => Ok(None),
            (TrustedDocuments::Off, Source::Register(hash)) => Ok(Some(hash)),
            (_, Source::Hash(hash)) => {
                *query = self.lookup(&hash).await?.to_string();
                Ok(None)
            }
            (TrustedDocuments::Enforce, Source::Text | Source::Register(_)) if admin => Ok(None),
            (TrustedDocuments::Enforce, Source::Text) => {
                self.check_trusted(&document_hash(query)).await?;
                Ok(None)
            }
            (TrustedDocuments::Enforce, Source::Register(hash)) => {
                self.check_trusted(&hash).await?;
                Ok(None)
            }
        }
    }

    /// Drops the kept texts when trusted documents were removed since they were found
    /// (reading the store's generation at most once per [`GENERATION_CHECK`]; a store that does
    /// not answer keeps them); the generation the kept texts belong to.
    async fn follow_removals(&self) -> i64 {
        {
            let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            if known.checked_at.is_some_and(|t| t.elapsed() < GENERATION_CHECK) {
                return known.generation;
            }
            known.checked_at = Some(std::time::Instant::now());
        }
        let read = self.store.generation().await;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        match read {
            Ok(generation) if generation != known.generation => {
                known.texts.clear();
                known.bytes = 0;
                known.generation = generation;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the trusted documents' generation"),
        }
        known.generation
    }

    /// The text of `hash`: a trusted document, or (mode `off`) a client-registered one.
    async fn lookup(&self, hash: &str) -> Result<Arc<str>, ServerError> {
        let generation = self.follow_removals().await;
        if let Some(text) = self.remembered(hash) {
            return Ok(text);
        }
        let found = match self.mode {
            TrustedDocuments::Off => self.store.find(hash).await,
            TrustedDocuments::Enforce => self.store.find_trusted(hash).await,
        };
        match found {
            Ok(Some(text)) if document_hash(&text) == hash => {
                self.remember(hash, &text, generation);
                Ok(text.into())
            }
            Ok(Some(_)) => {
                tracing::error!(hash, "a stored persisted document does not have its hash; ignored");
                Err(not_found())
            }
            Ok(None) => Err(not_found()),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Is the document of `hash` trusted? (Only positive answers are kept.)
    ///
    /// # Errors
    /// `OPERATION_NOT_TRUSTED`, or `0001` when Redis does not answer.
    pub async fn check_trusted(&self, hash: &str) -> Result<(), ServerError> {
        let generation = self.follow_removals().await;
        if self.remembered(hash).is_some() {
            return Ok(());
        }
        match self.store.find_trusted(hash).await {
            Ok(Some(text)) => {
                self.remember(hash, &text, generation);
                Ok(())
            }
            Ok(None) => Err(not_trusted(hash)),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Registers `text` under `hash` (checked to be its SHA-256) for every instance; a store
    /// that does not answer is logged (the operation already ran).
    pub async fn register(&self, hash: &str, text: &str) {
        if let Err(e) = self.store.register(hash, text).await {
            tracing::warn!(error = %e, hash, "could not register a persisted query");
            return;
        }
        let generation = self.known.lock().unwrap_or_else(PoisonError::into_inner).generation;
        self.remember(hash, text, generation);
    }

    /// Checks documents to trust: each at most the size limit and parsing as GraphQL; gives
    /// `(hash, text)` of each.
    ///
    /// # Errors
    /// The first document refused, by its index and why.
    pub fn checked(&self, documents: Vec<String>) -> std::result::Result<Vec<(String, String)>, String> {
        documents
            .into_iter()
            .enumerate()
            .map(|(i, text)| match checked_document(&text, self.max_document_bytes) {
                Ok(hash) => Ok((hash, text)),
                Err(why) => Err(format!("document {i}: {why}")),
            })
            .collect()
    }
}

/// The hash of `text` if it can be a trusted document: at most `max_bytes` and parsing as a
/// GraphQL document with an operation.
///
/// # Errors
/// Why not.
pub fn checked_document(text: &str, max_bytes: usize) -> std::result::Result<String, String> {
    let hash = document_hash(text);
    if text.len() > max_bytes {
        return Err(format!(
            "sha256:{hash} is {} bytes; at most {max_bytes} are accepted (http.max_query_bytes)",
            text.len()
        ));
    }
    async_graphql::parser::parse_query(text).map_err(|e| format!("sha256:{hash} is not a GraphQL document: {e}"))?;
    Ok(hash)
}

/// The documents of a manifest file: a `.json` manifest — an object of hash → text (what
/// graphql-codegen's client preset writes to `persisted-documents.json`) or Apollo's
/// `{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}, …]}` — as
/// `(its hash, text)`; any other file is one document, its whole text (`(None, text)`).
///
/// # Errors
/// JSON that is neither shape.
pub fn manifest_documents(content: &str, json: bool) -> std::result::Result<Vec<(Option<String>, String)>, String> {
    if !json {
        return Ok(vec![(None, content.to_owned())]);
    }
    let value: Value = serde_json::from_str(content).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut manifest) = value else {
        return Err("a manifest is a JSON object".into());
    };
    if manifest.get("format").and_then(Value::as_str) == Some("apollo-persisted-query-manifest") {
        let Some(Value::Array(operations)) = manifest.remove("operations") else {
            return Err("an Apollo manifest has an `operations` array".into());
        };
        return operations
            .into_iter()
            .enumerate()
            .map(|(i, op)| match (op.get("id"), op.get("body")) {
                (Some(Value::String(id)), Some(Value::String(body))) => Ok((Some(id.clone()), body.clone())),
                _ => Err(format!("operation {i} has no `id` and `body` strings")),
            })
            .collect();
    }
    manifest
        .into_iter()
        .map(|(hash, text)| match text {
            Value::String(text) => Ok((Some(hash), text)),
            _ => Err(format!("the value of {hash:?} is not a document text")),
        })
        .collect()
}

/// Checks a manifest's documents against their hashes: `(hash, text)` of each.
///
/// # Errors
/// A document too large or not GraphQL, or listed under another hash than its SHA-256 (a
/// manifest made with SHA-1, graphql-codegen's default).
pub fn checked_manifest(
    documents: Vec<(Option<String>, String)>,
    max_bytes: usize,
) -> std::result::Result<Vec<(String, String)>, String> {
    documents
        .into_iter()
        .map(|(listed, text)| {
            let hash = checked_document(&text, max_bytes)?;
            match listed {
                Some(id) if id.strip_prefix("sha256:").unwrap_or(&id).to_ascii_lowercase() != hash => Err(format!(
                    "the document listed as {id} has the SHA-256 {hash}: make the manifest with SHA-256 \
                     (graphql-codegen: `persistedDocuments: {{ hashAlgorithm: 'sha256' }}`)"
                )),
                _ => Ok((hash, text)),
            }
        })
        .collect()
}

/// `big-market trust-documents FILE…`: registers the documents of manifests and `.graphql`
/// files as trusted, all or none; prints each hash.
///
/// # Errors
/// A file that cannot be read or holds a refused document; Redis not answering.
pub async fn trust_documents(settings: &crate::settings::Settings, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let max_bytes = settings.http.max_query_bytes.max(64);
    let mut documents = Vec::new();
    for file in files {
        let content = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        let json = file.extension().is_some_and(|x| x.eq_ignore_ascii_case("json"));
        let listed = manifest_documents(&content, json).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        documents.extend(checked_manifest(listed, max_bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?);
    }
    documents.sort();
    documents.dedup();
    let redis = persistence::redis::connect_with(&settings.redis.url, &settings.redis.deadlines())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "connecting to Redis ({}): {e}",
                crate::state::redact(&settings.redis.url)
            )
        })?;
    let store = PersistedDocuments::new(
        redis,
        persistence::redis::Keys::new(settings.redis.key_prefix.clone()),
        None,
    );
    let added = store.trust(&documents).await?;
    for (hash, _) in &documents {
        println!("sha256:{hash}");
    }
    tracing::info!(documents = documents.len(), new = added, "trusted documents registered");
    eprintln!("{} trusted documents ({added} new)", documents.len());
    Ok(())
}

/// The rule of enforce mode on `/graphql/ws`, whose schema has extensions: a document that is
/// not trusted is refused before it is parsed (admin tokens excepted). Documents are sent as
/// text there (no hash-only requests).
pub struct TrustedOnly(pub Arc<PersistedQueries>);

impl ExtensionFactory for TrustedOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TrustedOnlyCheck(self.0.clone()))
    }
}

struct TrustedOnlyCheck(Arc<PersistedQueries>);

#[async_trait::async_trait]
impl Extension for TrustedOnlyCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let admin = matches!(
            ctx.data_opt::<Identity>(),
            Some(Identity::Caller { role: Role::Admin, .. })
        );
        if !admin {
            self.0.check_trusted(&document_hash(query)).await?;
        }
        next.run(ctx, query, variables).await
    }
}

/// One trusted document.
#[derive(SimpleObject, Debug, Clone)]
pub struct TrustedDocument {
    /// The lower-case hex SHA-256 of the text (`extensions.persistedQuery.sha256Hash`;
    /// `documentId` is `sha256:` followed by it).
    pub hash: String,
    /// The text.
    pub document: String,
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("trusted documents: Redis failed", e)
}

/// Largest page of `trustedDocuments`.
const MAX_PAGE: i32 = 100;

/// Trusted-document queries (admin).
#[derive(Default)]
pub struct TrustedDocumentQuery;

#[Object]
impl TrustedDocumentQuery {
    /// The trusted documents, in hash order; forward pagination (`first` ≤ 100, default 20;
    /// `after` = a previous `endCursor`). Admin only.
    async fn trusted_documents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Documents per page (0–100, default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> Result<super::scalars::Page<TrustedDocument>> {
        access::admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = super::error::page_size(first, MAX_PAGE)?;
        if let Some(a) = after.as_deref()
            && !is_document_hash(a)
        {
            return Err(with_code(ErrorCode::IllegalParameter, format!("invalid cursor {a:?}")));
        }
        query(
            None::<String>,
            None::<String>,
            Some(first),
            None,
            |_, _, first, _| async move {
                let want = first.unwrap_or(20);
                let mut page = app
                    .persisted
                    .store()
                    .trusted_page(after.as_deref(), want + 1)
                    .await
                    .map_err(internal)?;
                let has_next = page.len() > want;
                page.truncate(want);
                let mut conn = Connection::new(after.is_some(), has_next);
                conn.edges.extend(
                    page.into_iter()
                        .map(|(hash, document)| Edge::new(hash.clone(), TrustedDocument { hash, document })),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
        .map(super::scalars::Page)
    }
}

/// Trusted-document mutations (admin, audited).
#[derive(Default)]
pub struct TrustedDocumentMutation;

#[Object]
impl TrustedDocumentMutation {
    /// Trusts GraphQL documents (at most 500 per call; each at most `http.max_query_bytes` and
    /// parsing as GraphQL) for every instance, and returns their hashes in the order given.
    /// With `http.trusted_documents = "enforce"`, only trusted documents run. Errors: `0002`
    /// for a refused document (none is added). Admin only, audited (with the hashes).
    async fn register_trusted_documents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The document texts, exactly as clients will send them.")] documents: Vec<String>,
    ) -> Result<Vec<String>> {
        let hashes: Vec<String> = documents.iter().map(|d| document_hash(d)).collect();
        let arguments = json!({ "count": documents.len(), "hashes": hashes.iter().take(MAX_DOCUMENTS_PER_CALL).collect::<Vec<_>>() });
        audited(ctx, "registerTrustedDocuments", arguments, async {
            let app = ctx.data::<Arc<AppState>>()?;
            if documents.len() > MAX_DOCUMENTS_PER_CALL {
                return Err(with_code(
                    ErrorCode::IllegalParameter,
                    format!("at most {MAX_DOCUMENTS_PER_CALL} documents per call"),
                ));
            }
            let checked = app
                .persisted
                .checked(documents)
                .map_err(|why| with_code(ErrorCode::IllegalParameter, why))?;
            app.persisted.store().trust(&checked).await.map_err(internal)?;
            Ok(hashes)
        })
        .await
    }

    /// Stops trusting documents (at most 500 hashes per call, lower-case hex SHA-256 as
    /// `registerTrustedDocuments` returns them) on every instance: each instance drops the
    /// texts it keeps in process within about a second, after which, with
    /// `http.trusted_documents = "enforce"`, they are refused with `OPERATION_NOT_TRUSTED`.
    /// Returns how many of them were trusted. Errors: `0002` for a malformed hash (none is
    /// removed). Admin only, audited (with the hashes).
    async fn remove_trusted_documents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Hashes of the documents to stop trusting.")] hashes: Vec<String>,
    ) -> Result<i32> {
        let arguments =
            json!({ "count": hashes.len(), "hashes": hashes.iter().take(MAX_DOCUMENTS_PER_CALL).collect::<Vec<_>>() });
        audited(ctx, "removeTrustedDocuments", arguments, async {
            let app = ctx.data::<Arc<AppState>>()?;
            if hashes.len() > MAX_DOCUMENTS_PER_CALL {
                return Err(with_code(
                    ErrorCode::IllegalParameter,
                    format!("at most {MAX_DOCUMENTS_PER_CALL} hashes per call"),
                ));
            }
            if let Some((i, bad)) = hashes.iter().enumerate().find(|(_, h)| !is_document_hash(h)) {
                return Err(with_code(
                    ErrorCode::IllegalParameter,
                    format!("hashes[{i}] ({bad:?}) is not a lower-case hex SHA-256"),
                ));
            }
            let removed = app.persisted.store().untrust(&hashes).await.map_err(internal)?;
            Ok(i32::try_from(removed).unwrap_or(i32::MAX))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "{ __typename }";

    fn ext(pq: Value) -> Map<String, Value> {
        let mut params = Map::new();
        params.insert("extensions".into(), json!({ "persistedQuery": pq, "other": 1 }));
        params
    }

    #[test]
    fn the_apq_extension_names_a_version_1_sha256() {
        let h = document_hash(Q);
        let mut params = ext(json!({ "version": 1, "sha256Hash": h.to_uppercase() }));
        assert_eq!(take_source(&mut params, None), Ok(Source::Hash(h.clone())));
        // The extension is taken out; other extensions stay.
        assert_eq!(params["extensions"], json!({ "other": 1 }));
        let mut params = ext(json!({ "version": 1, "sha256Hash": h }));
        assert_eq!(take_source(&mut params, Some(Q)), Ok(Source::Register(h.clone())));
        for bad_pq in [
            json!({ "version": 2, "sha256Hash": h }),
            json!({ "sha256Hash": h }),
            json!({ "version": 1 }),
            json!({ "version": 1, "sha256Hash": "abc" }),
            json!("x"),
        ] {
            let (code, message) = take_source(&mut ext(bad_pq.clone()), None).unwrap_err();
            assert_eq!(code, EdgeCode::BadRequest, "{bad_pq}: {message}");
        }
        let (_, message) = take_source(&mut ext(json!({ "version": 2, "sha256Hash": h })), None).unwrap_err();
        assert!(message.contains("version 2"), "{message}");
    }

    #[test]
    fn a_text_must_have_the_hash_sent_with_it() {
        let other = document_hash("{ other }");
        let (code, message) = take_source(&mut ext(json!({ "version": 1, "sha256Hash": other })), Some(Q)).unwrap_err();
        assert_eq!(code, EdgeCode::PersistedQueryHashMismatch);
        assert!(message.contains(&document_hash(Q)), "{message}");
        assert_eq!(take_source(&mut Map::new(), Some(Q)), Ok(Source::Text));
        assert_eq!(take_source(&mut Map::new(), None).unwrap_err().0, EdgeCode::BadRequest);
    }

    #[test]
    fn document_ids_are_sha256_prefixed() {
        let h = document_hash(Q);
        let mut params = Map::new();
        params.insert("documentId".into(), json!(format!("sha256:{h}")));
        assert_eq!(take_source(&mut params, None), Ok(Source::Hash(h.clone())));
        assert_eq!(document_id_hash(&h), Ok(h.clone()));
        assert!(document_id_hash("md5:abc").is_err());
        let mut both = Map::new();
        both.insert("documentId".into(), json!(format!("sha256:{h}")));
        assert!(take_source(&mut both, Some(Q)).is_err(), "a text and a documentId");
        let mut differ = ext(json!({ "version": 1, "sha256Hash": document_hash("{ x }") }));
        differ.insert("documentId".into(), json!(h));
        assert!(take_source(&mut differ, None).is_err(), "two different ids");
    }

    #[test]
    fn manifests_of_codegen_and_apollo_and_graphql_files() {
        let h = document_hash(Q);
        let codegen = json!({ h.clone(): Q }).to_string();
        assert_eq!(
            manifest_documents(&codegen, true),
            Ok(vec![(Some(h.clone()), Q.to_owned())])
        );
        let apollo = json!({
            "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": h, "name": "T", "type": "query", "body": Q }]
        })
        .to_string();
        assert_eq!(
            manifest_documents(&apollo, true),
            Ok(vec![(Some(h.clone()), Q.to_owned())])
        );
        assert_eq!(manifest_documents(Q, false), Ok(vec![(None, Q.to_owned())]));
        assert!(manifest_documents("[]", true).is_err());
        assert!(manifest_documents(r#"{"a": 1}"#, true).is_err());

        assert_eq!(
            checked_manifest(vec![(Some(format!("sha256:{h}")), Q.to_owned())], 1024),
            Ok(vec![(h.clone(), Q.to_owned())])
        );
        // A SHA-1 manifest (graphql-codegen's default) is refused with the way out.
        let sha1 = "0".repeat(40);
        let why = checked_manifest(vec![(Some(sha1), Q.to_owned())], 1024).unwrap_err();
        assert!(why.contains("hashAlgorithm"), "{why}");
        assert!(checked_manifest(vec![(None, "{ a ".to_owned())], 1024).is_err());
        assert!(checked_manifest(vec![(None, Q.to_owned())], 4).is_err());
    }
}

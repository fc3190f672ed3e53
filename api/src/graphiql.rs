//! GraphiQL at `/graphiql`, served by the binary itself: no CDN, no request to another origin.
//!
//! The page (`api/assets/graphiql/index.html`), its script and stylesheet, and the browser
//! builds of React and GraphiQL (`api/assets/graphiql/vendor`, written by `tools/graphiql`) are
//! embedded with `include_bytes!`. Each file is served at `/graphiql/assets/<hash>/<name>`,
//! where `<hash>` is a digest of its content: the path changes whenever the content does, so
//! the files are cached for a year as immutable. The page itself is revalidated on every load.
//!
//! Queries and mutations run over `POST /graphql`, subscriptions over `/graphql/ws`
//! (graphql-transport-ws); the headers editor's JSON is both the HTTP headers and the
//! `connection_init` payload (`api/assets/graphiql/page.js`).
//!
//! The page's Content-Security-Policy allows its own origin only ([`CONTENT_SECURITY_POLICY`]).

use std::sync::LazyLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Path};
use poem::{IntoResponse, Request, Response, handler};

use crate::compress::Encoding;

/// The Content-Security-Policy of the page: scripts, styles, requests and sockets of the page's
/// own origin only (`'self'` covers `ws:`/`wss:` to the same host and port).
///
/// Two exceptions, both needed by GraphiQL and neither able to load anything from elsewhere:
/// `style-src 'unsafe-inline'`, because GraphiQL inserts `<style>` elements at run time (its
/// settings and shortcut dialogs, through Radix's scroll lock, whose rules depend on the
/// scrollbar width, so no hash fits) and CodeMirror's search and jump-to-line bars carry `style`
/// attributes; and `data:` fonts and images, which GraphiQL's stylesheet embeds (its fonts,
/// CodeMirror's lint markers). No `eval`, no inline script, no frame may embed the page. The
/// browser test (api/tests/api/graphiql.rs) opens the dialogs and fails on any violation.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; font-src data:; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the page's asset paths start.
const ASSETS_PATH: &str = "/graphiql/assets";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: [Asset; 6] = [
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/vendor/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/vendor/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/vendor/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("../assets/graphiql/vendor/graphiql.min.css"),
    },
    Asset {
        name: "page.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/page.js"),
    },
    Asset {
        name: "page.css",
        content_type: CSS,
        bytes: include_bytes!("../assets/graphiql/page.css"),
    },
];

const TEMPLATE: &str = include_str!("../assets/graphiql/index.html");

/// 64-bit FNV-1a of `bytes`, as 16 hex digits: the version part of an asset's path.
fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Each asset's digest, in the order of [`ASSETS`].
static DIGESTS: LazyLock<Vec<String>> = LazyLock::new(|| ASSETS.iter().map(|a| digest(a.bytes)).collect());

/// The page: the template with every `{{name}}` replaced by that asset's versioned path.
static PAGE: LazyLock<String> = LazyLock::new(|| render(TEMPLATE, "/graphql", "/graphql/ws"));

fn render(template: &str, endpoint: &str, subscription_endpoint: &str) -> String {
    let mut html = template
        .replace("{{endpoint}}", endpoint)
        .replace("{{subscription_endpoint}}", subscription_endpoint);
    for (file, hash) in ASSETS.iter().zip(DIGESTS.iter()) {
        html = html.replace(
            &format!("{{{{{}}}}}", file.name),
            &format!("{ASSETS_PATH}/{hash}/{}", file.name),
        );
    }
    html
}

fn with_headers(mut resp: Response, headers: &[(header::HeaderName, &'static str)]) -> Response {
    for (name, value) in headers {
        resp.headers_mut().insert(name.clone(), HeaderValue::from_static(value));
    }
    resp
}

/// `GET /graphiql`: the page.
#[handler]
pub async fn page() -> Response {
    with_headers(
        PAGE.as_str().into_response(),
        &[
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    )
}

/// How `GET /graphiql/assets/…` compresses: as the compression middleware would (`http.
/// compress_min_bytes`, 0 = never), but each file once per encoding, then from memory.
#[derive(Debug, Clone, Copy)]
pub struct AssetCompression {
    /// Smaller files are sent as they are; 0: never compress.
    pub min_bytes: usize,
}

/// Each asset encoded once per encoding (`None` if the encoder failed: sent as it is).
static ENCODED: [[std::sync::OnceLock<Option<Vec<u8>>>; 2]; ASSETS.len()] =
    [const { [const { std::sync::OnceLock::new() }; 2] }; ASSETS.len()];

/// `file` in `encoding`, encoded on a blocking thread the first time.
async fn encoded(index: usize, encoding: Encoding) -> Option<&'static [u8]> {
    let slot = &ENCODED[index][usize::from(encoding == Encoding::Gzip)];
    if let Some(done) = slot.get() {
        return done.as_deref();
    }
    let file = &ASSETS[index];
    let done = tokio::task::spawn_blocking(move || slot.get_or_init(|| encoding.encode(file.bytes).ok()))
        .await
        .ok()?;
    done.as_deref()
}

/// `GET /graphiql/assets/:hash/:name`: an embedded file, cached by the browser as immutable and
/// compressed once per encoding (so the compression middleware passes it through); 404 for an
/// unknown name or a hash that is not its content's (a stale path).
#[handler]
pub async fn asset(
    Path((hash, name)): Path<(String, String)>,
    req: &Request,
    compression: Data<&AssetCompression>,
) -> Response {
    let found = ASSETS
        .iter()
        .zip(DIGESTS.iter())
        .position(|(a, h)| a.name == name && *h == hash);
    let Some(index) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let file = &ASSETS[index];
    let encoding = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::compress::choose)
        .filter(|_| compression.min_bytes > 0 && file.bytes.len() >= compression.min_bytes);
    let mut resp = match encoding {
        Some(encoding) => match encoded(index, encoding).await {
            Some(body) => {
                let mut resp = body.into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.name()));
                resp
            }
            None => file.bytes.into_response(),
        },
        None => file.bytes.into_response(),
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    with_headers(
        resp,
        &[
            (header::CONTENT_TYPE, file.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_its_versioned_same_origin_path() {
        let html = PAGE.as_str();
        assert!(!html.contains("{{"), "an unreplaced placeholder: {html}");
        for (file, hash) in ASSETS.iter().zip(DIGESTS.iter()) {
            assert!(
                html.contains(&format!("\"{ASSETS_PATH}/{hash}/{}\"", file.name)),
                "{}",
                file.name
            );
        }
        for attr in ["src=\"", "href=\""] {
            for (i, _) in html.match_indices(attr) {
                let value = &html[i + attr.len()..];
                assert!(
                    value.starts_with(ASSETS_PATH) || value.starts_with("data:"),
                    "not a same-origin asset: {}",
                    &value[..value.find('"').unwrap_or(value.len())]
                );
            }
        }
        assert!(html.contains("data-endpoint=\"/graphql\""));
    }

    #[test]
    fn digests_differ_with_content() {
        assert_eq!(digest(b"").len(), 16);
        assert_ne!(digest(b"a"), digest(b"b"));
        let unique: std::collections::HashSet<_> = DIGESTS.iter().collect();
        assert_eq!(unique.len(), ASSETS.len());
    }
}

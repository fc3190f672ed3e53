//! GraphiQL at `/graphiql` (api/src/graphiql.rs): served by the binary with no CDN, and working
//! in a real browser — headless Chromium, driven over the DevTools protocol, that can reach
//! 127.0.0.1 only, runs a query and a subscription.
//!
//! Needs Chromium: `apt-get install -y chromium` (`.ci/run` installs it), or a Chrome/Chromium
//! binary named by `BIG_MARKET_TEST_CHROMIUM`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use test_support::app::{TestApp, spawn_app, spawn_app_with};

/// The page's `src` / `href` values.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in [" src=\"", " href=\""] {
        for (i, _) in html.match_indices(attr) {
            let value = &html[i + attr.len()..];
            found.push(value[..value.find('"').unwrap()].to_owned());
        }
    }
    found
}

async fn get(app: &TestApp, path: &str, accept_encoding: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.address));
    if let Some(e) = accept_encoding {
        req = req.header("accept-encoding", e);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_come_from_the_binary_with_a_same_origin_csp_long_caching_and_compression() {
    use std::io::Read as _;
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    let page = get(&app, "/graphiql", None).await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, api::graphiql::CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "connect-src 'self';",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-eval") && !csp.contains("http"), "{csp}");
    assert_eq!(headers["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    let assets = links(&html);
    assert!(assets.len() >= 6, "{assets:?}");
    let mut compressed = 0;
    for link in &assets {
        if link.starts_with("data:") {
            continue;
        }
        assert!(link.starts_with("/graphiql/assets/"), "not a same-origin asset: {link}");
        let plain = get(&app, link, None).await;
        assert_eq!(plain.status(), 200, "{link}");
        let want = if link.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            plain.headers()["content-type"].to_str().unwrap().starts_with(want),
            "{link}: {:?}",
            plain.headers()["content-type"]
        );
        assert_eq!(
            plain.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{link}"
        );
        assert!(plain.headers().get("content-encoding").is_none());
        let plain = plain.bytes().await.unwrap();
        // Compressed by the compression middleware when asked to (they are text), from its
        // threshold on.
        let br = get(&app, link, Some("br, gzip")).await;
        if plain.len() >= app.settings.http.compress_min_bytes {
            assert_eq!(br.headers()["content-encoding"], "br", "{link}");
            let br = br.bytes().await.unwrap();
            let mut back = Vec::new();
            brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut back).unwrap();
            assert_eq!(back, plain, "{link}");
            assert!(br.len() < plain.len(), "{link}");
            compressed += 1;
        }
        // Another hash than the content's is not that file.
        let (dir, name) = link.rsplit_once('/').unwrap();
        let stale = format!("{}/0000000000000000/{name}", dir.rsplit_once('/').unwrap().0);
        assert_eq!(get(&app, &stale, None).await.status(), 404, "{stale}");
    }
    assert!(compressed >= 4, "{compressed} compressed");
    let js = &assets.iter().find(|l| l.ends_with("/graphiql.min.js")).unwrap();
    assert_eq!(
        get(&app, &js.replace("graphiql.min.js", "nope.js"), None)
            .await
            .status(),
        404
    );
    // Switched off, the assets are gone with the page.
    let off = spawn_app_with(|s| {
        s.http.graphiql = false;
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    assert_eq!(get(&off, "/graphiql", None).await.status(), 404);
    assert_eq!(get(&off, js, None).await.status(), 404);
    off.cleanup().await;
    app.cleanup().await;
}

/// Chromium's binary: `BIG_MARKET_TEST_CHROMIUM`, else the first of the usual names on `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("BIG_MARKET_TEST_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "BIG_MARKET_TEST_CHROMIUM={} is not a file",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Chromium is not installed, and the GraphiQL browser test needs it: `apt-get install -y chromium` \
         (.ci/run does), or set BIG_MARKET_TEST_CHROMIUM to a Chrome/Chromium binary"
    );
}

/// A headless Chromium of its own (profile, process group), killed and removed on drop.
struct Browser {
    child: std::process::Child,
    profile: PathBuf,
    port: u16,
}

impl Browser {
    async fn launch(binary: &Path) -> Self {
        use std::os::unix::process::CommandExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let profile = std::env::temp_dir().join(format!("bm-graphiql-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(profile.join("chromium.log")).unwrap();
        let child = std::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                // No network but 127.0.0.1: every other host resolves to nothing, and would go
                // through a proxy that is not there (loopback bypasses proxies).
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--proxy-server=127.0.0.1:9",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut browser = Self {
            child,
            profile,
            port: 0,
        };
        // Chromium writes the DevTools port it picked into the profile.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(browser.profile.join("DevToolsActivePort"))
                && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
            {
                browser.port = port;
                break;
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("Chromium exited ({status}) before it listened:\n{}", browser.log());
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port within 30 s:\n{}",
                browser.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The DevTools session of the browser's first tab.
    async fn page(&self) -> Page {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let url = loop {
            let targets: Value = client
                .get(format!("http://127.0.0.1:{}/json/list", self.port))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(url) = targets
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                break url.to_owned();
            }
            assert!(Instant::now() < deadline, "Chromium has no tab: {targets}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        let mut page = Page {
            ws,
            next_id: 0,
            events: Vec::new(),
            log: self.log(),
        };
        for domain in ["Page", "Runtime", "Network", "Log"] {
            page.call(&format!("{domain}.enable"), json!({})).await;
        }
        // Every document records the CSP violations it sees (the DevTools script runs whatever
        // the page's policy says).
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": "window.__cspViolations = []; document.addEventListener('securitypolicyviolation', \
                   (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));" }),
        )
        .await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser and its helpers (renderer, GPU, zygote) are the process group it leads.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A DevTools protocol session with one tab; keeps every event it receives.
struct Page {
    ws: Ws,
    next_id: u64,
    events: Vec<Value>,
    log: String,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(Message::text(
                json!({ "id": id, "method": method, "params": params }).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer from Chromium within 60 s"));
            let Some(msg) = next else {
                panic!("{method}: Chromium closed the DevTools socket")
            };
            let msg = msg.unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r["exceptionDetails"].is_null(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    async fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({ "url": url })).await;
        assert!(r["errorText"].is_null(), "{url}: {r}");
    }

    /// Polls `expression` until it is truthy (within 60 s: CI runs tests side by side on few
    /// cores) and returns it.
    async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.eval(expression).await;
            if !(v.is_null() || v == false || v == "") {
                return v;
            }
            if Instant::now() > deadline {
                let response = self.eval(RESPONSE).await;
                let body = self
                    .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                    .await;
                panic!(
                    "{what}: not seen within 60 s.\nresponse pane: {response}\npage text: {body}\n\
                     console and errors: {:#?}\nChromium log: {}",
                    self.problems(),
                    self.log
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Console errors and warnings, uncaught exceptions, failed loads.
    fn problems(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
                    "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "warning" => {
                        Some(format!("console.{}: {}", p["type"], p["args"]))
                    }
                    "Log.entryAdded" if p["entry"]["level"] == "error" || p["entry"]["level"] == "warning" => {
                        Some(format!("log {}: {}", p["entry"]["source"], p["entry"]["text"]))
                    }
                    "Network.loadingFailed" => Some(format!("load failed: {p}")),
                    _ => None,
                }
            })
            .collect()
    }

    /// Checks the document shown before leaving it: no CSP violation, no uncaught exception.
    async fn assert_clean(&mut self) {
        let violations = self.eval("window.__cspViolations").await;
        assert_eq!(violations, json!([]), "CSP violations: {:#?}", self.problems());
        let thrown: Vec<&Value> = self
            .events
            .iter()
            .filter(|e| e["method"] == "Runtime.exceptionThrown")
            .collect();
        assert!(thrown.is_empty(), "uncaught exceptions: {thrown:#?}");
    }

    /// Loads GraphiQL at `url` and waits until its editors are there.
    async fn open_graphiql(&mut self, url: &str) {
        self.navigate(url).await;
        self.wait_for(
            "GraphiQL's query editor and run button",
            "!!(document.querySelector('.graphiql-query-editor .CodeMirror') \
               && document.querySelector('.graphiql-execute-button'))",
        )
        .await;
    }

    /// Clicks the element that `selector` finds.
    async fn click(&mut self, selector: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const b = document.querySelector({}); if (b) b.click(); return !!b; }})()",
                json!(selector)
            ))
            .await;
        assert_eq!(found, true, "nothing to click at {selector}");
    }

    /// Presses GraphiQL's run button.
    async fn run(&mut self) {
        self.click(".graphiql-execute-button").await;
    }

    /// Waits until the response pane shows JSON whose `data.<field>` is not null; returns it.
    async fn result(&mut self, field: &str) -> Value {
        let text = self
            .wait_for(
                &format!("a result with data.{field} in the response pane"),
                &format!(
                    "(() => {{ const t = {RESPONSE}; try {{ const r = JSON.parse(t); \
                       return r.data && r.data.{field} ? t : ''; }} catch (e) {{ return ''; }} }})()"
                ),
            )
            .await;
        serde_json::from_str(text.as_str().unwrap()).unwrap()
    }
}

/// The text of GraphiQL's response pane (a CodeMirror editor).
const RESPONSE: &str = "(() => { const cm = document.querySelector('.graphiql-response .CodeMirror'); \
     return cm && cm.CodeMirror ? cm.CodeMirror.getValue() \
       : (document.querySelector('.graphiql-response') || { innerText: '' }).innerText; })()";

/// GraphiQL, offline: with Chromium able to reach 127.0.0.1 only, the page loads from the binary,
/// a query typed into the editor runs over HTTP, a query with a token from the `headers` URL
/// parameter too, and a subscription streams an event over `/graphql/ws` (the headers went in
/// `connection_init`). The page requested nothing from another origin and broke no CSP rule.
#[tokio::test]
async fn graphiql_runs_a_query_and_a_subscription_in_headless_chromium_without_network() {
    let binary = chromium();
    let app = spawn_app().await;
    // One event of xiaofuge's, so that the subscription's history has something to stream.
    app.rig_draws_to_award_101().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9014, outBusinessNo: "graphiql-1") { orderId } }"#)
        .await;
    let drawn = app
        .ok(r#"mutation { draw(userId: "xiaofuge", activityId: 100301) { messageId } }"#)
        .await;
    let message_id = drawn["draw"]["messageId"].as_str().unwrap().to_owned();

    let browser = Browser::launch(&binary).await;
    let mut page = browser.page().await;
    let graphiql = format!("{}/graphiql", app.address);

    // 1. A public query, typed into the query editor, run with the run button.
    page.open_graphiql(&graphiql).await;
    let query = "{ strategy(strategyId: 100006) { strategyId } }";
    page.eval(
        "(() => { const cm = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror; \
           cm.focus(); cm.execCommand('selectAll'); return true; })()",
    )
    .await;
    page.call("Input.insertText", json!({ "text": query })).await;
    let typed = page
        .eval("document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()")
        .await;
    assert_eq!(typed, query);
    page.run().await;
    let result = page.result("strategy").await;
    assert_eq!(result["data"]["strategy"]["strategyId"], "100006", "{result}");
    // The rest of GraphiQL works under the page's CSP too: the documentation explorer (from
    // introspection) and the dialogs, which insert <style> elements.
    page.click("[aria-label='Show Documentation Explorer']").await;
    page.wait_for(
        "the documentation explorer's root types",
        "!!document.querySelector('.graphiql-doc-explorer-root-type')",
    )
    .await;
    for dialog in ["Open settings dialog", "Open short keys dialog"] {
        page.click(&format!("[aria-label='{dialog}']")).await;
        page.wait_for(dialog, "!!document.querySelector('.graphiql-dialog')")
            .await;
        page.click(".graphiql-dialog-close").await;
        page.wait_for("the dialog closed", "!document.querySelector('.graphiql-dialog')")
            .await;
    }
    page.assert_clean().await;

    // 2. A query that needs a token: the `headers` URL parameter fills the headers editor, and
    //    GraphiQL sends them as HTTP headers.
    let headers = json!({ "Authorization": format!("Bearer {}", app.admin_token) }).to_string();
    let task = format!(r#"{{ task(messageId: "{message_id}") {{ messageId state }} }}"#);
    let url = reqwest::Url::parse_with_params(&graphiql, [("query", task.as_str()), ("headers", &headers)]).unwrap();
    page.open_graphiql(url.as_str()).await;
    page.run().await;
    let result = page.result("task").await;
    assert_eq!(result["data"]["task"]["messageId"], message_id.as_str(), "{result}");
    page.assert_clean().await;

    // 3. A subscription: over /graphql/ws with graphql-transport-ws, the same headers as the
    //    connection_init payload; xiaofuge's history streams at least the draw's event.
    let subscription = r#"subscription { taskStatus(userId: "xiaofuge") { messageId state } }"#;
    let url = reqwest::Url::parse_with_params(&graphiql, [("query", subscription), ("headers", &headers)]).unwrap();
    page.open_graphiql(url.as_str()).await;
    page.run().await;
    let event = page.result("taskStatus").await;
    assert_eq!(event["data"]["taskStatus"]["messageId"], message_id.as_str(), "{event}");
    assert!(event["data"]["taskStatus"]["state"].is_string(), "{event}");
    page.assert_clean().await;

    // Nothing but this app was asked for anything.
    let ws_url = format!("{}/graphql/ws", app.address.replacen("http://", "ws://", 1));
    let mut requested = Vec::new();
    let mut sockets = Vec::new();
    let mut init = None;
    for e in &page.events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or_default() {
            "Network.requestWillBeSent" => requested.push(p["request"]["url"].as_str().unwrap().to_owned()),
            "Network.webSocketCreated" => sockets.push(p["url"].as_str().unwrap().to_owned()),
            "Network.webSocketFrameSent" => {
                let frame: Value = serde_json::from_str(p["response"]["payloadData"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null);
                if frame["type"] == "connection_init" {
                    init = Some(frame);
                }
            }
            _ => {}
        }
    }
    let origin = format!("{}/", app.address);
    let foreign: Vec<&String> = requested
        .iter()
        .filter(|u| !u.starts_with(&origin) && !u.starts_with("data:") && *u != "about:blank")
        .collect();
    assert!(foreign.is_empty(), "requests to another origin: {foreign:?}");
    assert!(
        requested.iter().any(|u| u.contains("/graphiql/assets/")),
        "{requested:?}"
    );
    assert!(!sockets.is_empty(), "no WebSocket opened");
    assert!(sockets.iter().all(|u| *u == ws_url), "{sockets:?}");
    let init = init.expect("a connection_init frame");
    assert_eq!(
        init["payload"]["Authorization"],
        format!("Bearer {}", app.admin_token),
        "{init}"
    );
    drop(browser);
    app.cleanup().await;
}

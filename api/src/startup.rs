//! Building and running the application: listener, routes, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Tracing;
use poem::{EndpointExt, Route, Server, get};

use crate::settings::Settings;

/// Distinct operation texts whose parsed documents `POST /graphql` keeps.
const DOCUMENT_CACHE_ENTRIES: usize = 1024;
use crate::state::AppState;
use crate::workers::Workers;
use crate::{graphql, routes};

/// A bound, ready-to-run server. Binding happens in [`Application::build`] so callers (tests)
/// can use port 0 and read the real port.
pub struct Application {
    port: u16,
    acceptor: crate::conn::HeadDeadlineAcceptor<poem::listener::TcpAcceptor>,
    app: poem::endpoint::BoxEndpoint<'static>,
    workers: Workers,
    idle_timeout: Duration,
    metrics: Option<crate::metrics::MetricsListener>,
}

/// The token verifier of `settings`, refusing the development secret off loopback.
///
/// # Errors
/// Bad keys, or no configured key while `http.host` is not a loopback address.
pub fn authenticator(settings: &Settings) -> anyhow::Result<crate::auth::Authenticator> {
    use crate::auth::{SecretSource, is_loopback};
    if settings.auth.secret.is_empty() && settings.auth.jwks_file.is_empty() && !is_loopback(&settings.http.host) {
        anyhow::bail!(
            "http.host {} is not a loopback address, so the development token secret is not used: \
             set auth.secret (BIG_MARKET_AUTH__SECRET, at least 32 bytes) or auth.jwks_file",
            settings.http.host
        );
    }
    let (auth, source) = crate::auth::Authenticator::new(&settings.auth)?;
    if source == SecretSource::Development {
        tracing::warn!(
            file = %settings.auth.dev_secret_file,
            "tokens are verified with the development secret (loopback only); set auth.secret for a deployment"
        );
    }
    Ok(auth)
}

impl Application {
    /// Connects the services and binds the listener.
    ///
    /// # Errors
    /// When a service cannot be reached, the address cannot be bound or an award gateway is
    /// misconfigured.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::workers::award_distributors(&settings)?;
        let exposure = crate::metrics::exposure(&settings, true)?;
        let state = AppState::connect(&settings).await?;
        let workers = Workers::start_observed(
            &settings,
            &state.db,
            &state.redis,
            state.nudge.clone(),
            Some(rebate_settlement(&state)),
            crate::workers::Roles {
                relay: settings.relay.enabled,
                consumers: settings.consumers.enabled,
            },
            Some(&state.metrics.persistence),
        );
        let metrics_endpoint = || crate::metrics::MetricsEndpoint::new(&settings.metrics, state.metrics.clone());
        let metrics = match &exposure {
            crate::metrics::Exposure::Listener(addr) => {
                Some(crate::metrics::MetricsListener::bind(addr, metrics_endpoint()).await?)
            }
            _ => None,
        };
        let auth = Arc::new(authenticator(&settings)?);
        let schema = graphql::build(Some(state.clone()), &settings.http);
        let ws = routes::GraphQLWs {
            auth: auth.clone(),
            max_subscriptions_per_connection: settings.http.max_subscriptions_per_connection.max(1),
            schema: schema.clone(),
            idle_timeout: (settings.http.ws_idle_timeout_secs > 0)
                .then(|| Duration::from_secs(settings.http.ws_idle_timeout_secs)),
            ping_every: Duration::from_secs(settings.http.ws_ping_secs.max(1)),
            init_timeout: Duration::from_secs(settings.http.ws_init_timeout_secs.max(1)),
            allowed_origins: settings.http.cors_allow_origins.clone(),
        };
        let mut route = Route::new()
            .at(
                "/graphql",
                crate::http::GraphQLHttp {
                    schema: graphql::build_http(Some(state.clone()), &settings.http),
                    fast_schema: graphql::build_http_fast(Some(state.clone()), &settings.http),
                    documents: Arc::new(graphql::documents::DocumentCache::new(
                        graphql::operation_limits(&settings.http),
                        DOCUMENT_CACHE_ENTRIES,
                    )),
                    auth,
                    limits: crate::http::RequestLimits {
                        max_body_bytes: settings.http.max_body_bytes.max(1024),
                        max_query_bytes: settings.http.max_query_bytes.max(64),
                        max_batch: settings.http.max_batch.max(1),
                    },
                    persisted: state.persisted.clone(),
                    metrics: Some(state.metrics.clone()),
                },
            )
            .at("/graphql/ws", get(ws))
            .at("/health", get(routes::health))
            .at("/ready", get(routes::ready));
        if exposure == crate::metrics::Exposure::ApiListener {
            route = route.at("/metrics", get(metrics_endpoint()));
        }
        if settings.http.graphiql {
            route = route.at("/graphiql", get(crate::graphiql::page)).at(
                "/graphiql/assets/:hash/:name",
                get(crate::graphiql::asset).data(crate::graphiql::AssetCompression {
                    min_bytes: settings.http.compress_min_bytes,
                }),
            );
        }
        let app = route
            .data(state)
            .with_if(
                settings.http.compress_min_bytes > 0,
                crate::compress::Compress {
                    min_bytes: settings.http.compress_min_bytes,
                },
            )
            .with(Tracing);
        let origins = &settings.http.cors_allow_origins;
        let app = if origins.is_empty() {
            app.boxed()
        } else {
            // Bearer tokens, not cookies: no credentials mode.
            app.with(
                poem::middleware::Cors::new()
                    .allow_origins(origins.iter().map(String::as_str))
                    .allow_methods([poem::http::Method::GET, poem::http::Method::POST])
                    .allow_headers(["content-type", "authorization", "accept", "traceparent"])
                    .expose_headers([crate::telemetry::TRACERESPONSE])
                    .max_age(600),
            )
            .boxed()
        };
        let addr = format!("{}:{}", settings.http.host, settings.http.port);
        let acceptor = TcpListener::bind(addr.clone())
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        let acceptor = crate::conn::HeadDeadlineAcceptor::new(
            acceptor,
            Duration::from_secs(settings.http.header_read_timeout_secs.max(1)),
        );
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .unwrap_or(settings.http.port);
        Ok(Self {
            port,
            acceptor,
            app,
            workers,
            idle_timeout: Duration::from_secs(settings.http.idle_timeout_secs.max(1)),
            metrics,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener (`metrics.listen`), when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(crate::metrics::MetricsListener::port)
    }

    /// Serves until Ctrl-C / SIGTERM, then drains in-flight requests (up to 10 s). Connections
    /// silent for `http.idle_timeout_secs` are closed.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(http.port = self.port, "big-market listening");
        let metrics = self.metrics.map(crate::metrics::MetricsListener::spawn);
        Server::new_with_acceptor(self.acceptor)
            .idle_timeout(self.idle_timeout)
            .run_with_graceful_shutdown(self.app, shutdown_signal(), Some(Duration::from_secs(10)))
            .await?;
        self.workers.stop().await;
        if let Some(m) = metrics {
            m.abort();
        }
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// The `send_rebate` use case over the state's services.
fn rebate_settlement(state: &AppState) -> Arc<domain::credit::rebate::RebateSettlement> {
    Arc::new(domain::credit::rebate::RebateSettlement::new(
        state.activity.clone(),
        state.credit.clone(),
    ))
}

/// `big-market relay`: the outbox relay and the consumers, without the HTTP API.
///
/// # Errors
/// When the databases or Redis cannot be reached.
pub async fn run_relay(settings: &Settings) -> anyhow::Result<()> {
    crate::workers::award_distributors(settings)?;
    let exposure = crate::metrics::exposure(settings, false)?;
    // The consumers apply rebates through the same services as `serve`.
    let state = AppState::connect(settings).await?;
    let workers = Workers::start_observed(
        settings,
        &state.db,
        &state.redis,
        state.nudge.clone(),
        Some(rebate_settlement(&state)),
        crate::workers::Roles {
            relay: true,
            consumers: settings.consumers.enabled,
        },
        Some(&state.metrics.persistence),
    );
    // The relay has no API listener: its metrics are served only on `metrics.listen`.
    let metrics = match exposure {
        crate::metrics::Exposure::Listener(addr) => Some(
            crate::metrics::MetricsListener::bind(
                &addr,
                crate::metrics::MetricsEndpoint::new(&settings.metrics, state.metrics.clone()),
            )
            .await?
            .spawn(),
        ),
        _ => None,
    };
    tracing::info!("relay running");
    shutdown_signal().await;
    workers.stop().await;
    if let Some(m) = metrics {
        m.abort();
    }
    Ok(())
}

/// `big-market rebuild-projections`: drops and rebuilds the user read models.
///
/// # Errors
/// When MySQL or Redis cannot be reached.
pub async fn rebuild_projections(settings: &Settings) -> anyhow::Result<()> {
    let db = persistence::Databases::connect(&settings.database_settings()).await?;
    let redis = persistence::redis::connect_with(&settings.redis.url, &settings.redis.deadlines()).await?;
    let keys = persistence::redis::Keys::new(settings.redis.key_prefix.clone());
    let views = persistence::redis::UserViews::new(redis.clone(), keys.clone());
    let tasks = persistence::redis::TaskStream::open(redis, &settings.redis.url, keys)?;
    let calendar = domain::activity::BusinessCalendar::new(settings.business.utc_offset_minutes)
        .ok_or_else(|| anyhow::anyhow!("business.utc_offset_minutes must be within ±23:59"))?;
    let now = chrono::Utc::now();
    let report =
        persistence::mysql::read_side::rebuild(&db, &views, &tasks, &calendar.day(now), &calendar.month(now)).await?;
    tracing::info!(?report, "read models rebuilt");
    println!("{report:?}");
    Ok(())
}

/// `big-market migrate`: creates and migrates the config DB and every shard DB.
///
/// # Errors
/// When a database cannot be reached or a migration fails.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    migration::migrate_all(&settings.database.config_url, &settings.database.shard_urls).await?;
    tracing::info!(shards = settings.database.shard_urls.len(), "databases migrated");
    Ok(())
}

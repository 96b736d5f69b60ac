//! Start-up and shutdown: open the stores, embedder and LLM client chosen by
//! configuration, bootstrap the first admin key, bind the listener (port 0 works;
//! [`Application::port`] tells the real one), serve (with the ingest worker, unless
//! `ingest.worker` is off) until SIGINT/SIGTERM, drain in-flight requests, stop the
//! worker, and close the stores. [`run_worker`] runs the ingest worker alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::embed::Embedder;
use crate::http::state::{AppState, Services};
use crate::llm::ChatClient;
use crate::services::audit::AuditService;
use crate::services::auth::AuthService;
use crate::services::budget::ReadBudget;
use crate::services::generate::GenerateService;
use crate::services::graphs::GraphService;
use crate::services::health::HealthService;
use crate::services::hybrid::HybridService;
use crate::services::ingest::IngestService;
use crate::services::metrics::MetricsService;
use crate::services::quota::Quotas;
use crate::services::ratelimit::RateLimits;
use crate::services::snapshots::SnapshotService;
use crate::services::vectors::VectorService;
use crate::store::open::Stores;
use crate::store::{GraphStore, VectorStore};

mod offline;
pub use offline::{MigrateArgs, migrate, snapshot_stopped};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("opening {store} store: {message}")]
    Store {
        store: &'static str,
        message: String,
    },
    #[error("{0}")]
    Tls(String),
}

pub struct Application {
    listener: TcpListener,
    /// The plain listener for probes and metrics (`server.admin_port`).
    admin: Option<TcpListener>,
    tls: Option<Arc<crate::http::tls::Reloading>>,
    state: AppState,
    closing: Closing,
    port: u16,
    admin_port: Option<u16>,
    bootstrap_key: Option<String>,
}

fn store_err(store: &'static str) -> impl Fn(crate::store::StoreError) -> StartError {
    move |e| StartError::Store {
        store,
        message: e.message,
    }
}

/// The stores that must be closed (flushed and released) at shutdown.
#[derive(Clone)]
struct Closing {
    audit: AuditService,
    vectors: Arc<dyn VectorStore>,
    graph: Arc<dyn GraphStore>,
}

/// Opens every store, the embedder and the LLM client chosen by configuration, builds
/// each service once, and bootstraps the first admin key; shared by `serve` and
/// `worker`.
async fn open_state(settings: Settings) -> Result<(AppState, Closing, Option<String>), StartError> {
    let data_dir = settings.server.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let stores = crate::store::open::open(&settings, &metrics)
        .await
        .map_err(|e| StartError::Store {
            store: e.store,
            message: e.error.message,
        })?;
    let embedder = crate::embed::from_settings(&settings.embedder, metrics.clone())
        .map_err(store_err("embedder"))?;
    let llm = ChatClient::from_settings(&settings.llm)
        .map_err(store_err("llm"))?
        .map(Arc::new);
    let auth_failed = |message| StartError::Store {
        store: "auth",
        message,
    };
    let auth = AuthService::new(
        stores.auth.clone(),
        settings.auth.clone(),
        &data_dir,
        metrics.clone(),
    )
    .map_err(auth_failed)?;
    let bootstrap_key = auth
        .bootstrap(&data_dir)
        .await
        .map_err(|e| auth_failed(e.to_string()))?;
    let closing = Closing {
        audit: AuditService::start(
            &settings.audit,
            stores.audit.clone(),
            metrics.clone(),
            settings.auth.bootstrap_tenant.clone(),
        ),
        vectors: stores.vectors.clone(),
        graph: stores.graph.clone(),
    };
    let audit = closing.audit.clone();
    let state = services(
        Arc::new(settings),
        stores,
        metrics,
        (embedder, llm),
        auth,
        audit,
    );
    Ok((state, closing, bootstrap_key))
}

/// Builds each service once from the open stores and clients.
fn services(
    settings: Arc<Settings>,
    stores: Stores,
    metrics: Arc<crate::metrics::Metrics>,
    (embedder, llm): (Arc<dyn Embedder>, Option<Arc<ChatClient>>),
    auth: AuthService,
    audit: AuditService,
) -> AppState {
    let rate_limits = RateLimits::new(
        &settings.rate_limit,
        stores.rate_limits.clone(),
        metrics.clone(),
    )
    .map(Arc::new);
    let quotas = Quotas::new(
        &settings.limits,
        (stores.vectors.clone(), stores.graph.clone()),
        metrics.clone(),
    );
    let limits = &settings.limits;
    let budget = ReadBudget::new(
        limits.read_budget_bytes.get(),
        limits.read_budget_per_tenant_bytes.get(),
        &metrics,
    );
    let vectors = VectorService::new(
        settings.clone(),
        stores.vectors.clone(),
        embedder.clone(),
        (quotas.clone(), budget.clone()),
    );
    let hybrid = HybridService::new(settings.clone(), stores.graph.clone(), vectors.clone());
    let ingest = IngestService::new(
        settings.clone(),
        stores.vectors.clone(),
        stores.graph.clone(),
        stores.events.clone(),
        embedder,
        metrics.clone(),
        vectors.clone(),
    );
    let snapshots = Arc::new(SnapshotService::new(
        stores.backups.clone(),
        settings.server.data_dir.clone(),
        settings.auth.bootstrap_tenant.clone(),
        settings.snapshots.keep.get(),
        crate::store::open::space(&settings),
    ));
    AppState::new(Services {
        auth: Arc::new(auth),
        audit,
        graphs: GraphService::new(settings.clone(), stores.graph.clone(), (quotas, budget)),
        generate: GenerateService::new(settings.clone(), llm, hybrid.clone()),
        scrape: MetricsService {
            metrics: metrics.clone(),
            events: stores.events.clone(),
            vectors: stores.vectors.clone(),
            space: crate::store::open::space(&settings),
        },
        settings,
        vectors,
        hybrid,
        ingest,
        snapshots,
        health: HealthService { stores },
        metrics,
        rate_limits,
    })
}

impl Closing {
    /// Flushes and releases the stores; called once, last.
    async fn close(&self) {
        self.audit.close().await;
        if let Err(e) = self.vectors.close().await {
            tracing::error!(error = %e, "closing the vector store");
        }
        if let Err(e) = self.graph.close().await {
            tracing::error!(error = %e, "closing the graph store");
        }
    }
}

/// `ragbrain worker`: the ingest worker alone, until SIGINT/SIGTERM.
pub async fn run_worker(settings: Settings) -> Result<(), StartError> {
    let (state, closing, _) = open_state(settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(crate::services::ingest::worker::run(
        state.ingest.clone(),
        stop_rx,
    ));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = worker.await;
    closing.close().await;
    tracing::info!("stopped");
    Ok(())
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let admin_addr = (settings.server.admin_port != 0)
            .then(|| format!("{}:{}", settings.server.host, settings.server.admin_port));
        let tls =
            crate::http::tls::Reloading::open(&settings.server.tls).map_err(StartError::Tls)?;
        let (state, closing, bootstrap_key) = open_state(settings).await?;
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?
            .port();
        let admin = match admin_addr {
            Some(addr) => {
                Some(
                    TcpListener::bind(&addr)
                        .await
                        .map_err(|source| StartError::Bind {
                            addr: addr.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let admin_port = admin
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        Ok(Self {
            listener,
            admin,
            tls,
            state,
            closing,
            port,
            admin_port,
            bootstrap_key,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the plain probes-and-metrics listener, when one is configured.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// The admin key created on this start, if the key store was empty.
    pub fn bootstrap_key(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM (or `shutdown` resolves), then drains and closes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let grace = Duration::from_millis(state.settings.server.shutdown_grace_ms);
        let (stop_worker, stop_rx) = watch::channel(false);
        let worker = state.settings.ingest.worker.then(|| {
            tokio::spawn(crate::services::ingest::worker::run(
                state.ingest.clone(),
                stop_rx,
            ))
        });
        let server = &state.settings.server;
        let limits = crate::http::serve::ConnectionLimits {
            header_read_timeout: server.header_read_timeout_ms.get(),
            idle_timeout: server.idle_timeout_ms.get(),
            max_connections: server.max_connections.get(),
        };
        let admin_router = crate::http::admin_router(self.state.clone());
        let router = crate::http::router(self.state);
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let graph = self.closing.graph.clone();
        if let Some(tls) = &self.tls {
            tls.clone().watch(server.tls.reload_ms.get());
        }
        let (admin, admin_stop) = spawn_admin(self.admin, admin_router, limits);
        let serve =
            crate::http::serve::serve(self.listener, router, limits, self.tls, async move {
                shutdown.await;
                graph.interrupt_queries();
                let _ = admin_stop.send(true);
                let _ = stopped_tx.send(());
            });
        let serve = tokio::spawn(async move {
            serve.await;
            Ok::<(), std::io::Error>(())
        });
        // Once shutdown starts, in-flight requests get `grace` to finish.
        let drained = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            joined = serve => joined.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            () = drained => {
                tracing::warn!("shutdown grace period elapsed with requests still running");
                Ok(())
            }
        };
        // The worker finishes the batch in hand (it is idempotent, so being cut off
        // by the grace period only means the batch is replayed on the next start).
        let _ = stop_worker.send(true);
        for task in [worker, admin].into_iter().flatten() {
            let _ = tokio::time::timeout(grace, task).await;
        }
        self.closing.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Serves the plain probes-and-metrics listener, when there is one, until the returned
/// sender says stop.
fn spawn_admin(
    listener: Option<TcpListener>,
    router: axum::Router,
    limits: crate::http::serve::ConnectionLimits,
) -> (Option<JoinHandle<()>>, watch::Sender<bool>) {
    let (stop, mut stopped) = watch::channel(false);
    let task = listener.map(|listener| {
        tokio::spawn(crate::http::serve::serve(
            listener,
            router,
            limits,
            None,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    });
    (task, stop)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}

//! The accept loop and connection hygiene: every connection is served by hyper's HTTP/1
//! with an explicit header-read timeout, closed after `server.idle_timeout_ms` without a
//! request in flight, dropped when its client has taken nothing of a response for as
//! long (so an unread answer cannot hold its memory, or its room in the read budget,
//! for good), and counted against `server.max_connections`. At that bound (and
//! whenever accepting fails because the process is out of file descriptors) the
//! connection idle longest is closed for each new one, so probes and real clients still
//! get in while a crowd of idle connections is held open. Shutdown closes idle
//! connections at once and lets the others finish their request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The connection settings of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Activity of one connection, read by the idle timer and by eviction.
struct Activity {
    /// Milliseconds since the registry's epoch at the end of the last request.
    last_active_ms: AtomicU64,
    /// Requests whose response (including a streamed body) is not finished.
    in_flight: AtomicUsize,
    /// When a response's body last handed hyper a frame, while the next waits for the
    /// client to take that one; [`NOT_WAITING`] while the body waits on the server (a
    /// stream between events) or no body is being sent.
    handed_ms: AtomicU64,
    close: tokio::sync::Notify,
}

/// [`Activity::handed_ms`] when nothing waits for the client.
const NOT_WAITING: u64 = u64::MAX;

/// Open connections, to bound them and to pick the one to close.
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self) -> (u64, Arc<Activity>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            last_active_ms: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            handed_ms: AtomicU64::new(NOT_WAITING),
            close: tokio::sync::Notify::new(),
        });
        self.open().insert(id, activity.clone());
        (id, activity)
    }

    /// Asks the connection idle longest (or, if none is idle, the oldest) to close, and
    /// forgets it so that the next eviction picks another.
    fn evict_one(&self) {
        let mut open = self.open();
        let idle = |a: &Arc<Activity>| a.in_flight.load(Ordering::Relaxed) == 0;
        let victim = open
            .iter()
            .min_by_key(|(id, a)| (!idle(a), a.last_active_ms.load(Ordering::Relaxed), **id))
            .map(|(id, _)| *id);
        if let Some(activity) = victim.and_then(|id| open.remove(&id)) {
            activity.close.notify_one();
        }
    }
}

/// Holds a request as in flight until its response body is finished or dropped.
struct InFlight {
    activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(activity: &Arc<Activity>, registry: &Arc<Registry>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            activity: activity.clone(),
            registry: registry.clone(),
        }
    }
}

/// A response body, holding its request in flight until it is finished or dropped, that
/// notes when it hands hyper a frame: hyper asks for the next one only once the client
/// has taken enough of the last, so a frame handed long ago means a client that stopped
/// reading, where a body that answered `Pending` is the server's to finish.
struct Watched {
    body: Body,
    in_flight: InFlight,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        let handed = match polled {
            Poll::Ready(Some(Ok(_))) => self.in_flight.registry.now_ms(),
            _ => NOT_WAITING,
        };
        let activity = &self.in_flight.activity;
        activity.handed_ms.store(handed, Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity
            .last_active_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.activity
            .handed_ms
            .store(NOT_WAITING, Ordering::Relaxed);
    }
}

/// The open-file limit's soft value, raised to the hard one; connections are bounded
/// below it so the stores always have descriptors left.
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Descriptors kept for everything but client connections: store files, log segments,
/// backend connections, the Cypher sandbox's pipes.
const RESERVED_FILES: u64 = 256;

/// `max_connections`, lowered to fit the open-file limit.
pub fn effective_max_connections(configured: usize) -> usize {
    match raise_open_file_limit() {
        Some(files) => {
            let room = files.saturating_sub(RESERVED_FILES).max(files / 2).max(1);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for every
/// connection to finish (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<crate::http::tls::Reloading>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max_connections = effective_max_connections(limits.max_connections);
    tracing::info!(max_connections, "accepting connections");
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        open: Mutex::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors (or a connection reset before it was accepted):
                // free one and try again shortly.
                tracing::warn!(error = %e, "accepting a connection failed");
                registry.evict_one();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if registry.open().len() >= max_connections {
            registry.evict_one();
        }
        let connection = Connection {
            registry: registry.clone(),
            router: router.clone(),
            limits,
            tls: tls.clone(),
            stop: stop_rx.clone(),
        };
        tokio::spawn(connection.serve(stream, peer));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver; `closed` resolves when the last ends.
    drop(stop_rx);
    stop_tx.closed().await;
}

/// What the idle timer found.
enum Quiet {
    /// Nothing in flight and no activity for the idle timeout.
    Idle,
    /// A response's client has taken nothing for this many milliseconds.
    Stalled(u64),
    Busy,
}

struct Connection {
    registry: Arc<Registry>,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<crate::http::tls::Reloading>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let Some(tls) = self.tls.clone() else {
            return self.drive(stream, peer).await;
        };
        // The handshake gets the time a request's header gets.
        let accept = tls.acceptor().accept(stream);
        match tokio::time::timeout(self.limits.header_read_timeout, accept).await {
            Ok(Ok(stream)) => self.drive(stream, peer).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn drive<IO>(mut self, stream: IO, peer: SocketAddr)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (id, activity) = self.registry.register();
        let service = {
            let (router, activity, registry) =
                (self.router.clone(), activity.clone(), self.registry.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                let in_flight = InFlight::begin(&activity, &registry);
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = router.clone().oneshot(request.map(Body::new));
                async move {
                    let response = response.await.unwrap_or_else(|e: Infallible| match e {});
                    // The request stays in flight until its body is sent or dropped.
                    Ok::<_, Infallible>(response.map(|body| Body::new(Watched { body, in_flight })))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let idle = self.limits.idle_timeout;
        let mut closing = false;
        loop {
            let idle_since = activity.last_active_ms.load(Ordering::Relaxed);
            let idle_deadline = self.registry.epoch + Duration::from_millis(idle_since) + idle;
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = activity.close.notified(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = self.stop.changed(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                // Also while closing: a client that stops reading would hold a graceful
                // close, and the shutdown waiting for it, open.
                () = tokio::time::sleep_until(idle_deadline.into()) => {
                    match self.quiet_since(&activity, idle_since) {
                        Quiet::Stalled(ms) => {
                            tracing::info!(%peer, stalled_ms = ms, "dropped a connection whose \
                                client took nothing of its response for the idle timeout");
                            break;
                        }
                        Quiet::Idle if !closing => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        // Closing already: look again one idle period from now.
                        Quiet::Idle => activity
                            .last_active_ms
                            .store(self.registry.now_ms(), Ordering::Relaxed),
                        Quiet::Busy => {}
                    }
                }
            }
        }
        self.registry.open().remove(&id);
    }

    /// At the idle deadline: whether the connection has had nothing in flight and no
    /// activity since `idle_since` (it closes), or a response whose client has taken
    /// nothing for the idle timeout (it is dropped). A busy one is looked at again one
    /// idle period from now.
    fn quiet_since(&self, activity: &Activity, idle_since: u64) -> Quiet {
        let in_flight = activity.in_flight.load(Ordering::Relaxed);
        if in_flight == 0 && activity.last_active_ms.load(Ordering::Relaxed) == idle_since {
            return Quiet::Idle;
        }
        let now = self.registry.now_ms();
        let handed = activity.handed_ms.load(Ordering::Relaxed);
        let stalled = now.saturating_sub(handed);
        if handed != NOT_WAITING && stalled >= self.limits.idle_timeout.as_millis() as u64 {
            return Quiet::Stalled(stalled);
        }
        if in_flight > 0 {
            activity.last_active_ms.store(now, Ordering::Relaxed);
        }
        Quiet::Busy
    }
}

/// Answers that refuse a request before its body is read (no or bad credentials, no
/// scope, too large) close the connection, and say so with `Connection: close`: the
/// unread body cannot be skipped safely, and a client still sending it would otherwise
/// meet a reset instead of the answer.
pub async fn close_after_refusal(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut response = next.run(request).await;
    let refused = matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::PAYLOAD_TOO_LARGE
    );
    if has_body && refused {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

//! Runs one admitted client Cypher query on the embedded engine in a forked child
//! process, so that what the query costs is bounded by the operating system rather than
//! by the engine's cooperation.
//!
//! grafeo checks its deadline only between result chunks and has no memory budget, so a
//! single expression (a huge list, a string doubled in a loop of `WITH` clauses) can run
//! for minutes and take gigabytes inside the server. Here the query runs in a copy of
//! the server made by `fork()` (copy-on-write: the graph is shared, not copied), with
//! `RLIMIT_AS` set to its size at the fork plus `limits.query_memory_bytes`, a CPU-time
//! limit, and every inherited descriptor but its result pipe closed. The server reads
//! the result from the pipe and kills the child at the deadline; a child that runs out
//! of its memory budget aborts. The server's own memory never grows with the query, a
//! 504 frees the query's slot and core at once, a cancelled request kills the child
//! through a drop guard, and shutdown kills every running child at once (503) so that
//! draining never waits for a query.
//!
//! Forks are made by one long-lived thread while it holds the read gate exclusively
//! (every engine call, read or write, holds it shared) and the graph catalogue lock, so
//! no engine call of another
//! thread is half-way through (holding one of grafeo's internal locks) in the child; a
//! child that still found a lock held would only hang until the deadline kills it. A
//! fork takes a few milliseconds, during which engine reads wait. That thread is the
//! children's parent thread: `PR_SET_PDEATHSIG` kills them if the server dies.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use grafeo::{GrafeoDB, Role, Value};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::graph_values::{engine, to_grafeo, to_json};
use super::lock;
use crate::domain::graph::{CypherQuery, CypherResult};
use crate::domain::principal::Tenant;
use crate::store::client_cypher;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// What a sandboxed query may use.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    pub timeout: Duration,
    pub memory_bytes: u64,
}

/// The tenant graph a query reads.
pub(super) struct Target {
    /// The engine's named graph of the tenant.
    pub graph: String,
    pub tenant: Tenant,
}

/// The thread that forks the children (see the module docs), and the children alive.
pub(super) struct Forker {
    jobs: Mutex<mpsc::Sender<Job>>,
    running: Arc<Mutex<HashSet<libc::pid_t>>>,
    /// Set when shutdown begins: running children are killed, no new one is forked.
    stopping: Arc<AtomicBool>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Forker {
    pub(super) fn start() -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cypher-sandbox".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .map_err(|e| StoreError::internal(format!("starting the Cypher sandbox: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(tx),
            running: Arc::default(),
            stopping: Arc::default(),
        })
    }

    /// Kills every running child and refuses new queries.
    pub(super) fn interrupt(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for pid in lock(&self.running).iter() {
            // SAFETY: a registered pid is our child and not reaped yet (it leaves the
            // set before it is reaped), so it cannot have been reused.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }

    fn shutting_down() -> StoreError {
        StoreError::unavailable("the server is shutting down")
    }

    fn submit(&self, job: Job) -> StoreResult<()> {
        lock(&self.jobs)
            .send(job)
            .map_err(|_| StoreError::internal("the Cypher sandbox thread has stopped"))
    }
}

/// The child's answer on the pipe.
#[derive(Serialize, Deserialize)]
enum Outcome {
    Rows(CypherResult),
    Invalid(String),
    Timeout(String),
    Failed(String),
}

/// A running child, registered with the forker while it runs; dropping it before it
/// was reaped kills it.
struct Child {
    pid: libc::pid_t,
    reaped: bool,
    running: Arc<Mutex<HashSet<libc::pid_t>>>,
}

impl Child {
    fn register(pid: libc::pid_t, forker: &Forker) -> Self {
        lock(&forker.running).insert(pid);
        if forker.stopping.load(Ordering::SeqCst) {
            // Forked while shutdown began: `interrupt` may have missed it.
            // SAFETY: our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        Self {
            pid,
            reaped: false,
            running: forker.running.clone(),
        }
    }

    /// Reaps the child and returns its wait status.
    async fn reap(mut self) -> StoreResult<libc::c_int> {
        lock(&self.running).remove(&self.pid);
        let pid = self.pid;
        self.reaped = true;
        tokio::task::spawn_blocking(move || wait(pid))
            .await
            .map_err(|e| StoreError::internal(format!("Cypher sandbox: {e}")))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        lock(&self.running).remove(&self.pid);
        // SAFETY: the pid is our unreaped child, so it cannot have been reused.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let pid = self.pid;
        // Reaping waits for the kernel to tear the child down; not on this thread.
        let _ = std::thread::Builder::new()
            .name("cypher-reaper".into())
            .spawn(move || wait(pid));
    }
}

/// Waits for `pid` to end and returns its wait status.
fn wait(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return status;
        }
    }
}

/// The engine a fork copies. The embedded graph store implements it; the sandbox knows
/// nothing else of the store.
pub(super) trait Forkable: Send + Sync + 'static {
    fn forker(&self) -> &Forker;

    /// Runs `fork` while no other thread is inside the engine (every engine call and
    /// every graph creation excluded), passing the database the child will query.
    fn while_quiet(&self, fork: &mut dyn FnMut(&GrafeoDB));
}

/// Runs `query` on `graph` in a child process within `limits`.
pub(super) async fn run<E: Forkable>(
    inner: Arc<E>,
    target: Target,
    query: CypherQuery,
    limits: SandboxLimits,
) -> StoreResult<CypherResult> {
    if inner.forker().stopping.load(Ordering::SeqCst) {
        return Err(Forker::shutting_down());
    }
    let query_max_result = query.max_result_bytes;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let forking = inner.clone();
    inner.forker().submit(Box::new(move || {
        // A request cancelled while its child was forked leaves no one to stop it.
        if let Err(Ok((pid, _pipe))) =
            tx.send(fork_child(forking.as_ref(), &target, &query, limits))
        {
            drop(Child::register(pid, forking.forker()));
        }
    }))?;
    let (pid, pipe) = rx
        .await
        .map_err(|_| StoreError::internal("the Cypher sandbox dropped a query"))??;
    let child = Child::register(pid, inner.forker());
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe)
        .map_err(|e| StoreError::internal(format!("Cypher sandbox pipe: {e}")))?;
    let mut output = Vec::new();
    // The child refuses a larger result itself; this bounds what a broken one can send.
    let cap = (query_max_result as u64).saturating_add(64 << 10);
    let mut pipe = pipe.take(cap + 1);
    let read = pipe.read_to_end(&mut output);
    let deadline = limits.timeout + Duration::from_millis(250);
    match tokio::time::timeout(deadline, read).await {
        Err(_) => return Err(client_cypher::deadline_passed()),
        Ok(Err(e)) => return Err(StoreError::internal(format!("Cypher sandbox pipe: {e}"))),
        Ok(Ok(_)) if output.len() as u64 > cap => {
            return Err(client_cypher::result_too_large(query_max_result));
        }
        Ok(Ok(_)) => {}
    }
    let status = child.reap().await?;
    if inner.forker().stopping.load(Ordering::SeqCst) && output.is_empty() {
        return Err(Forker::shutting_down());
    }
    outcome(&output, status, limits)
}

fn over_budget(limits: SandboxLimits) -> StoreError {
    StoreError::invalid(format!(
        "the query was stopped: it exceeded the memory budget of client Cypher ({} MiB)",
        limits.memory_bytes >> 20
    ))
}

fn outcome(output: &[u8], status: libc::c_int, limits: SandboxLimits) -> StoreResult<CypherResult> {
    if let Ok(outcome) = serde_json::from_slice::<Outcome>(output) {
        return match outcome {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Invalid(m) => Err(StoreError::invalid(m)),
            Outcome::Timeout(m) => Err(StoreError::timeout(m)),
            Outcome::Failed(m) => Err(StoreError::internal(m)),
        };
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        if signal == libc::SIGXCPU || signal == libc::SIGKILL {
            return Err(client_cypher::deadline_passed());
        }
        tracing::warn!(signal, "a client Cypher query's process ended by a signal");
        return Err(over_budget(limits));
    }
    Err(StoreError::internal(format!(
        "the Cypher sandbox ended without an answer (wait status {status})"
    )))
}

/// Forks the child that runs the query; in the parent, returns its pid and the read end
/// of its result pipe.
fn fork_child(
    inner: &impl Forkable,
    target: &Target,
    query: &CypherQuery,
    limits: SandboxLimits,
) -> StoreResult<(libc::pid_t, OwnedFd)> {
    let address_space = address_space_bytes();
    let parent = std::process::id() as libc::pid_t;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it creates.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut pid = -1;
    inner.while_quiet(&mut |db| {
        // SAFETY: the child only runs `child_main`, which never returns; see the module
        // docs for why the engine's state is consistent in it.
        pid = unsafe { libc::fork() };
        if pid == 0 {
            let confine = Confinement {
                limits,
                address_space,
                parent,
                pipe: write_end.as_raw_fd(),
            };
            child_main(db, target, query, confine);
        }
    });
    if pid < 0 {
        return Err(os_error("fork"));
    }
    drop(write_end);
    Ok((pid, read_end))
}

fn os_error(what: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Unavailable,
        format!("Cypher sandbox {what}: {}", std::io::Error::last_os_error()),
    )
}

/// The process's virtual size, from `/proc/self/statm`.
fn address_space_bytes() -> u64 {
    let mut text = String::new();
    let pages = std::fs::File::open("/proc/self/statm")
        .and_then(|mut f| f.read_to_string(&mut text))
        .ok()
        .and_then(|_| text.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

/// What the child confines itself to.
struct Confinement {
    limits: SandboxLimits,
    /// The process's virtual size at the fork; the memory budget comes on top.
    address_space: u64,
    /// The server's pid, to notice a server that died before the child set its
    /// parent-death signal.
    parent: libc::pid_t,
    /// The write end of the result pipe.
    pipe: libc::c_int,
}

/// The child: confine itself, run the query, write the outcome, exit without running
/// any destructor of the parent's state.
fn child_main(db: &GrafeoDB, target: &Target, query: &CypherQuery, c: Confinement) -> ! {
    // SAFETY: system calls on this process only; `_exit` never returns.
    unsafe {
        let out = confine(c);
        let bytes = answer(db, target, query);
        let mut written = 0;
        while written < bytes.len() {
            let n = libc::write(out, bytes[written..].as_ptr().cast(), bytes.len() - written);
            if n <= 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                libc::_exit(1);
            }
            written += n as usize;
        }
        libc::_exit(0)
    }
}

/// The child's confinement: killed with its parent (and gone if the parent already
/// is), address space and CPU time capped, its answer pipe on fd 3, stdio on
/// `/dev/null`, every other descriptor closed. Returns the answer's descriptor.
///
/// # Safety
/// Call only in the forked child: it changes this process's limits and descriptors.
unsafe fn confine(c: Confinement) -> libc::c_int {
    let Confinement {
        limits,
        address_space,
        parent,
        pipe,
    } = c;
    const OUT: libc::c_int = 3;
    // SAFETY: system calls on this process only; `_exit` never returns.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        let memory = libc::rlimit {
            rlim_cur: address_space.saturating_add(limits.memory_bytes),
            rlim_max: address_space.saturating_add(limits.memory_bytes),
        };
        libc::setrlimit(libc::RLIMIT_AS, &memory);
        let seconds = limits.timeout.as_secs() + 2;
        let cpu = libc::rlimit {
            rlim_cur: seconds,
            rlim_max: seconds + 1,
        };
        libc::setrlimit(libc::RLIMIT_CPU, &cpu);
        if pipe != OUT && libc::dup2(pipe, OUT) != OUT {
            libc::_exit(1);
        }
        // The engine's or the allocator's last words (a failed allocation prints one)
        // must not interleave with the server's JSON log lines.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..=2 {
                libc::dup2(null, fd);
            }
        }
        libc::syscall(
            libc::SYS_close_range,
            libc::c_long::from(OUT + 1),
            libc::c_long::from(u32::MAX),
            0 as libc::c_long,
        );
    }
    OUT
}

/// Runs the query and encodes its outcome (a panic in the engine is a failure, an
/// answer over the result limit a refusal).
fn answer(db: &GrafeoDB, target: &Target, query: &CypherQuery) -> Vec<u8> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match run_read_only(db, &target.graph, &target.tenant, query) {
            Ok(rows) => Outcome::Rows(rows),
            Err(e) => match e.kind {
                ErrorKind::Invalid => Outcome::Invalid(e.message),
                ErrorKind::Timeout => Outcome::Timeout(e.message),
                _ => Outcome::Failed(e.message),
            },
        }
    }))
    .unwrap_or_else(|_| Outcome::Failed("the graph engine panicked".into()));
    let bytes = serde_json::to_vec(&outcome).unwrap_or_default();
    if bytes.len() <= query.max_result_bytes {
        return bytes;
    }
    let refusal = client_cypher::result_too_large(query.max_result_bytes);
    serde_json::to_vec(&Outcome::Invalid(refusal.message)).unwrap_or_default()
}

/// Runs admitted client Cypher on `graph` in a read-only session; the sandboxed child
/// calls it.
fn run_read_only(
    db: &GrafeoDB,
    graph: &str,
    tenant: &Tenant,
    query: &CypherQuery,
) -> StoreResult<CypherResult> {
    let session = db.session_with_role(Role::ReadOnly);
    session.use_graph(graph);
    let mut p: std::collections::HashMap<String, Value> = query
        .params
        .iter()
        .map(|(k, v)| (k.clone(), to_grafeo(v)))
        .collect();
    p.insert("tenant".into(), Value::from(tenant.as_str()));
    let result = session
        .execute_cypher_with_params(&query.query, p)
        .map_err(engine)?;
    let truncated = result.rows().len() > query.max_rows;
    let rows = result
        .rows()
        .iter()
        .take(query.max_rows)
        .map(|r| r.iter().map(to_json).collect())
        .collect();
    Ok(CypherResult {
        columns: result.columns.clone(),
        rows,
        truncated,
    })
}

//! The `ragbrain` command: parse the CLI, load configuration, build and run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod progress;
use ragbrain::app::Application;
use ragbrain::config::Settings;

/// jemalloc, as Qdrant uses: with glibc's allocator the server spent about a fifth of
/// its CPU in `malloc`/`free` while ingesting, and its RSS after the load tests was
/// 12–69% higher (docs/PERFORMANCE.md, "The allocator" and "The soak again").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread returns freed pages to
/// the OS, instead of the request that happens to allocate next.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true".as_ptr());

/// `const char *` as jemalloc declares `malloc_conf`.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points to a static, immutable C string.
unsafe impl Sync for MallocConf {}

#[derive(Parser)]
#[command(
    name = "ragbrain",
    version,
    about = "RAG server over vectors and a knowledge graph"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default), with the ingest worker unless ingest.worker is false.
    Serve(ServeArgs),
    /// Run only the ingest worker: consume the event log into vectors and graph.
    Worker(ServeArgs),
    /// Snapshots of the embedded stores (see docs/OPERATIONS.md, "Backups").
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Copy keys, collections, graphs and ingest statuses from the stores of one
    /// configuration into those of another (see docs/OPERATIONS.md, "Moving to
    /// production engines"); the source's server must be stopped.
    Migrate(MigrateCli),
    /// Exit 0 when the server answers 200 at the URL (for container health checks, where
    /// the image has no curl).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/health/live")]
        url: String,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Snapshot the data directory of a server that is not running into FILE (for a
    /// running server, POST /admin/snapshots).
    Create {
        #[command(flatten)]
        args: ServeArgs,
        /// The snapshot file to write (`.tar.zst`).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore FILE into an empty (or new) data directory.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The data directory to fill; it must be empty or missing.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct MigrateCli {
    /// The configuration whose stores are copied.
    #[arg(long)]
    from_config: PathBuf,
    /// The configuration whose stores receive the copy.
    #[arg(long)]
    to_config: PathBuf,
    /// Copy only this tenant's data.
    #[arg(long)]
    tenant: Option<String>,
    /// Where progress is kept, so an interrupted run resumes (removed when done).
    #[arg(long, default_value = "ragbrain-migrate.state.json")]
    state: PathBuf,
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on (server.host).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one (server.port).
    #[arg(long)]
    port: Option<u16>,
    /// Where data is kept (server.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML file layered over the defaults; also RAGBRAIN_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn settings(args: ServeArgs) -> Result<Settings, String> {
    let file = args
        .config
        .or_else(|| std::env::var_os("RAGBRAIN_CONFIG").map(PathBuf::from));
    let mut settings = Settings::load(file.as_deref()).map_err(|e| e.to_string())?;
    if let Some(host) = args.host {
        settings.server.host = host;
    }
    if let Some(port) = args.port {
        settings.server.port = port;
    }
    if let Some(dir) = args.data_dir {
        settings.server.data_dir = dir;
    }
    Ok(settings)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, worker_only) = match cli.command {
        Some(Command::Serve(args)) => (args, false),
        Some(Command::Worker(args)) => (args, true),
        Some(Command::Healthcheck { url }) => return healthcheck(&url).await,
        Some(Command::Snapshot(command)) => return snapshot(command).await,
        Some(Command::Migrate(args)) => return migrate(args).await,
        None => (cli.serve, false),
    };
    let settings = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ragbrain: {e}");
            return ExitCode::from(2);
        }
    };
    let mut traces = ragbrain::telemetry::init(&settings.log, &settings.telemetry);
    let data_dir = settings.server.data_dir.clone();
    let json_logs = settings.log.format == ragbrain::config::LogFormat::Json;
    if worker_only {
        return match ragbrain::app::run_worker(settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ragbrain: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("ragbrain: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = app.bootstrap_key() {
        let path = data_dir.join("bootstrap-admin.key");
        // JSON logs go to log pipelines, which must never receive a secret: they get
        // the file's path only. A person reading text logs gets the key itself.
        if json_logs {
            tracing::warn!(path = %path.display(), "created the first admin key; read it from the file");
        } else {
            eprintln!(
                "ragbrain: created the first admin key (shown once; also saved to {}):\n{key}",
                path.display()
            );
        }
    }
    tracing::info!(port = app.port(), "listening");
    let code = match app.run_until_stopped().await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ragbrain: {e}");
            1
        }
    };
    // The stores are closed and everything acknowledged is on disk. Exit now rather
    // than let the runtime wait for a background index build, which may run for
    // minutes; the next start carries on from the operation log. Spans still buffered
    // are exported first (exit runs no destructors).
    traces.shutdown();
    std::process::exit(code)
}

async fn snapshot(command: SnapshotCommand) -> ExitCode {
    let done = match command {
        SnapshotCommand::Create { args, out } => match settings(args) {
            Ok(settings) => ragbrain::app::snapshot_stopped(settings, &out)
                .await
                .map(|s| {
                    format!(
                        "wrote {} ({} bytes; {})",
                        out.display(),
                        s.bytes,
                        s.manifest.stores.join(", ")
                    )
                }),
            Err(e) => {
                eprintln!("ragbrain: {e}");
                return ExitCode::from(2);
            }
        },
        SnapshotCommand::Restore { file, data_dir } => {
            ragbrain::services::snapshots::restore(&file, &data_dir).map(|m| {
                format!(
                    "restored {} into {} ({})",
                    file.display(),
                    data_dir.display(),
                    m.stores.join(", ")
                )
            })
        }
    };
    match done {
        Ok(line) => {
            println!("ragbrain: {line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ragbrain: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(cli: MigrateCli) -> ExitCode {
    let load =
        |path: &PathBuf| Settings::load(Some(path)).map_err(|e| format!("{}: {e}", path.display()));
    let tenant = match cli
        .tenant
        .as_deref()
        .map(ragbrain::domain::principal::Tenant::parse)
    {
        Some(None) => {
            eprintln!("ragbrain: --tenant: not a valid tenant name");
            return ExitCode::from(2);
        }
        other => other.flatten(),
    };
    let (from, to) = match (load(&cli.from_config), load(&cli.to_config)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("ragbrain: {e}");
            return ExitCode::from(2);
        }
    };
    let _traces = ragbrain::telemetry::init(&from.log, &from.telemetry);
    let name = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let fingerprint = format!(
        "{} -> {}{}",
        name(&cli.from_config).display(),
        name(&cli.to_config).display(),
        tenant
            .as_ref()
            .map(|t| format!(" (tenant {t})"))
            .unwrap_or_default()
    );
    let args = ragbrain::app::MigrateArgs {
        from,
        to,
        tenant,
        state_file: cli.state,
        fingerprint,
    };
    let mut bar = progress::Bar::new();
    let report = match ragbrain::app::migrate(args, &mut |p| bar.show(&p)).await {
        Ok(report) => report,
        Err(e) => {
            bar.clear();
            eprintln!("ragbrain: migration stopped: {e}");
            return ExitCode::FAILURE;
        }
    };
    if report.resumed {
        println!("resumed an interrupted migration");
    }
    println!("{:<40} {:>12} {:>12}", "count check", "source", "target");
    for c in &report.checks {
        let mark = if c.source == c.target {
            ""
        } else {
            "  MISMATCH"
        };
        println!("{:<40} {:>12} {:>12}{mark}", c.what, c.source, c.target);
    }
    match report.mismatches().count() {
        0 => {
            println!("ragbrain: migration complete; every count matches");
            ExitCode::SUCCESS
        }
        n => {
            eprintln!("ragbrain: {n} counts differ between source and target");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(url: &str) -> ExitCode {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build();
    match client.map(|c| c.get(url).send()) {
        Ok(request) => match request.await {
            Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
            Ok(r) => {
                eprintln!("ragbrain: {url} answered {}", r.status());
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("ragbrain: {url}: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ragbrain: {e}");
            ExitCode::FAILURE
        }
    }
}

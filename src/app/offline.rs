//! The commands that open the stores without serving: a snapshot of a stopped server's
//! data directory, and a migration from one configuration's stores to another's.

use std::sync::Arc;

use crate::config::Settings;
use crate::services::snapshots::SnapshotService;
use crate::store::open::Stores;

/// `ragbrain snapshot create`: a snapshot of the embedded stores under
/// `settings.server.data_dir` into `out`, for a server that is not running (its stores
/// hold file locks, so a running one is reported, not copied: take that one's through
/// `POST /admin/snapshots`).
pub async fn snapshot_stopped(
    settings: Settings,
    out: &std::path::Path,
) -> Result<crate::services::snapshots::Snapshot, String> {
    let data_dir = settings.server.data_dir.clone();
    if !data_dir.is_dir() {
        return Err(format!(
            "data directory {} does not exist",
            data_dir.display()
        ));
    }
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let stores = crate::store::open::open(&settings, &metrics)
        .await
        .map_err(|e| format!("opening {} store: {}", e.store, e.error.message))?;
    let service = SnapshotService::new(
        stores.backups.clone(),
        data_dir,
        settings.auth.bootstrap_tenant.clone(),
        settings.snapshots.keep.get(),
        crate::store::open::space(&settings),
    );
    let taken = service.create_at(out).await.map_err(|e| e.to_string());
    close_offline(&stores).await;
    taken
}

/// Closes the stores a command opened without serving (so the embedded ones are
/// flushed and their locks released).
async fn close_offline(stores: &Stores) {
    for closed in [stores.vectors.close().await, stores.graph.close().await] {
        if let Err(e) = closed {
            tracing::warn!(error = %e, "closing a store");
        }
    }
}

/// Where a migration copies from and to, and where it keeps its progress.
pub struct MigrateArgs {
    pub from: Settings,
    pub to: Settings,
    pub tenant: Option<crate::domain::principal::Tenant>,
    pub state_file: std::path::PathBuf,
    /// Names this migration (its two configurations and tenant) in the state file.
    pub fingerprint: String,
}

/// `ragbrain migrate`: opens the stores of both configurations and copies the first's
/// into the second ([`Migration`](crate::services::migrate::Migration)).
pub async fn migrate(
    args: MigrateArgs,
    progress: &mut crate::services::migrate::ProgressFn<'_>,
) -> Result<crate::services::migrate::Report, String> {
    let source_dir = &args.from.server.data_dir;
    if args.from.uses_embedded_store() && !source_dir.is_dir() {
        return Err(format!(
            "the source's data directory {} does not exist",
            source_dir.display()
        ));
    }
    if args.from.uses_embedded_store()
        && args.to.uses_embedded_store()
        && source_dir == &args.to.server.data_dir
    {
        return Err(format!(
            "both configurations keep embedded stores in {}; give the target another \
             server.data_dir",
            source_dir.display()
        ));
    }
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let open = |settings: Settings, side: &'static str| {
        let metrics = metrics.clone();
        async move {
            crate::store::open::open(&settings, &metrics)
                .await
                .map_err(|e| {
                    format!(
                        "opening the {side}'s {} store: {}",
                        e.store, e.error.message
                    )
                })
        }
    };
    let from = open(args.from, "source").await?;
    let to = match open(args.to, "target").await {
        Ok(to) => to,
        Err(e) => {
            close_offline(&from).await;
            return Err(e);
        }
    };
    let migration = crate::services::migrate::Migration {
        from,
        to,
        tenant: args.tenant,
        state_file: args.state_file,
        fingerprint: args.fingerprint,
    };
    let report = migration.run(progress).await.map_err(|e| e.to_string());
    close_offline(&migration.from).await;
    close_offline(&migration.to).await;
    report
}

//! Snapshots of the embedded stores: one compressed file (`.tar.zst`) with the layout
//! of a data directory, taken while the server runs, and its restore into an empty
//! directory. Each store copies itself as of a moment after the snapshot began
//! ([`crate::store::backup`]), so the file holds every write acknowledged before then.
//! The production backends (Qdrant, Neo4j, Kafka, Redis) are backed up by their own
//! tools and are not in it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::domain::principal::{Principal, Scope};
use crate::services::auth::SECRET_FILE;
use crate::services::error::ServiceError;
use crate::store::backup::{Backup, io_err, tree_bytes, with_suffix};
use crate::store::embedded::space::Space;
use crate::store::{StoreError, StoreResult, blocking};

/// The manifest's name inside a snapshot, and the format it describes.
const MANIFEST: &str = "snapshot.json";
const FORMAT: u32 = 1;
/// zstd's default level: most of the gain for a fraction of the time of higher ones.
const LEVEL: i32 = 3;

/// What a snapshot holds, written into it as [`MANIFEST`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    pub format: u32,
    /// Milliseconds since the Unix epoch when the snapshot began.
    pub started_ms: u64,
    /// The stores copied, in the order they were.
    pub stores: Vec<String>,
}

/// A snapshot taken.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// The file's name under `<data_dir>/snapshots`.
    pub name: String,
    pub bytes: u64,
    pub manifest: Manifest,
    pub elapsed_ms: u64,
}

/// A snapshot file on disk.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SnapshotFile {
    pub name: String,
    pub bytes: u64,
}

pub struct SnapshotService {
    backups: Vec<Arc<dyn Backup>>,
    data_dir: PathBuf,
    /// Admins of this tenant are the operators, who alone may take snapshots (one
    /// holds every tenant's data).
    bootstrap_tenant: String,
    /// Files kept under [`SnapshotService::dir`].
    keep: usize,
    /// One snapshot at a time.
    running: tokio::sync::Mutex<()>,
    /// A snapshot into the data directory needs room for its staging copy.
    space: Space,
}

impl SnapshotService {
    /// `backups`: the embedded stores, in the order they are to be copied.
    pub fn new(
        backups: Vec<Arc<dyn Backup>>,
        data_dir: PathBuf,
        bootstrap_tenant: String,
        keep: usize,
        space: Space,
    ) -> Self {
        Self {
            backups,
            data_dir,
            bootstrap_tenant,
            keep,
            running: tokio::sync::Mutex::new(()),
            space,
        }
    }

    /// Where snapshots taken through the API are kept.
    pub fn dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }

    fn check_operator(&self, who: &Principal) -> Result<(), ServiceError> {
        if who.tenant.as_str() == self.bootstrap_tenant && who.allows(Scope::Admin) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "snapshots hold every tenant's data: only operators (admins of the \
                 bootstrap tenant) may take or list them"
                    .into(),
            ))
        }
    }

    /// Takes a snapshot for `who` into `<data_dir>/snapshots`. It runs as a task of its
    /// own, so a caller that stops waiting (or the request deadline) does not cut it
    /// short; the file appears once complete.
    pub async fn take(self: &Arc<Self>, who: &Principal) -> Result<Snapshot, ServiceError> {
        self.check_operator(who)?;
        let service = self.clone();
        tokio::spawn(async move { service.create().await })
            .await
            .map_err(|e| ServiceError::Internal(format!("snapshot task: {e}")))?
    }

    /// The snapshots under `<data_dir>/snapshots` for `who`, oldest first.
    pub fn list_for(&self, who: &Principal) -> Result<Vec<SnapshotFile>, ServiceError> {
        self.check_operator(who)?;
        self.list()
    }

    /// Takes a snapshot into `<data_dir>/snapshots`, then deletes the oldest files
    /// beyond the number kept. Names sort by time (UUID v7). Refused (507) unless the
    /// disk has room for the staging copy beyond the stores' reserve.
    pub async fn create(&self) -> Result<Snapshot, ServiceError> {
        let name = format!("snapshot-{}.tar.zst", uuid::Uuid::now_v7());
        let dir = self.dir();
        let (data_dir, skip) = (self.data_dir.clone(), dir.clone());
        let staging =
            blocking(move || tree_bytes(&data_dir, &skip).map_err(io_err("sizing the stores")))
                .await?;
        self.space.check_for(staging)?;
        std::fs::create_dir_all(&dir).map_err(io_err("creating the snapshot directory"))?;
        let snapshot = self.create_at(&dir.join(&name)).await?;
        let files = self.list()?;
        for old in files.iter().take(files.len().saturating_sub(self.keep)) {
            if let Err(e) = std::fs::remove_file(dir.join(&old.name)) {
                tracing::warn!(snapshot = %old.name, error = %e, "could not delete an old snapshot");
            }
        }
        Ok(snapshot)
    }

    /// The path of the snapshot file `name` for `who`, if it is one of the files
    /// [`SnapshotService::list`] shows (never a path the caller built).
    pub fn file_for(&self, who: &Principal, name: &str) -> Result<(PathBuf, u64), ServiceError> {
        self.check_operator(who)?;
        self.list()?
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| (self.dir().join(&f.name), f.bytes))
            .ok_or_else(|| ServiceError::NotFound(format!("no snapshot named {name:?}")))
    }

    /// The snapshot file `name` for `who`: its size and its bytes, read in chunks by a
    /// blocking task as the stream is consumed (a dropped stream stops it). The file
    /// is open before this returns, so deleting it meanwhile does not cut the copy.
    pub fn read_for(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<
        (
            u64,
            impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + use<>,
        ),
        ServiceError,
    > {
        let (path, bytes) = self.file_for(who, name)?;
        let mut file = File::open(path).map_err(io_err("opening a snapshot"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let chunk = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    break;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        Ok((bytes, stream))
    }

    /// Deletes the snapshot file `name` for `who`.
    pub fn delete_for(&self, who: &Principal, name: &str) -> Result<(), ServiceError> {
        let (path, _) = self.file_for(who, name)?;
        std::fs::remove_file(path)
            .map_err(io_err("deleting a snapshot"))
            .map_err(Into::into)
    }

    /// Takes a snapshot into the file `out`, which appears only once complete.
    pub async fn create_at(&self, out: &Path) -> Result<Snapshot, ServiceError> {
        if self.backups.is_empty() {
            return Err(ServiceError::NotConfigured(
                "snapshots cover the embedded stores, and this server uses none".into(),
            ));
        }
        let _one = self.running.try_lock().map_err(|_| {
            ServiceError::Conflict("a snapshot is being taken; try again once it ends".into())
        })?;
        let started = Instant::now();
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let staging = with_suffix(out, ".staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io_err("clearing old staging"))?;
        }
        std::fs::create_dir_all(&staging).map_err(io_err("creating the snapshot staging"))?;
        let result = self.fill(&staging, started_ms).await;
        let packed = match result {
            Ok(manifest) => {
                let (staging, out) = (staging.clone(), out.to_owned());
                blocking(move || pack(&staging, &out).map(|bytes| (bytes, manifest))).await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&staging);
        let (bytes, manifest) = packed?;
        let name = out.file_name().unwrap_or_default().to_string_lossy().into();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(snapshot = %out.display(), bytes, elapsed_ms, "snapshot taken");
        Ok(Snapshot {
            name,
            bytes,
            manifest,
            elapsed_ms,
        })
    }

    /// Copies every store into `staging`, then the token-signing secret (tokens issued
    /// before the snapshot still verify after a restore) and the manifest.
    async fn fill(&self, staging: &Path, started_ms: u64) -> StoreResult<Manifest> {
        let mut stores = Vec::new();
        for backup in &self.backups {
            backup.backup(staging).await?;
            stores.push(backup.name().to_owned());
        }
        let secret = self.data_dir.join(SECRET_FILE);
        if secret.exists() {
            std::fs::copy(&secret, staging.join(SECRET_FILE))
                .map_err(io_err("copying the token secret"))?;
        }
        let manifest = Manifest {
            format: FORMAT,
            started_ms,
            stores,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| StoreError::internal(format!("snapshot manifest: {e}")))?;
        std::fs::write(staging.join(MANIFEST), json).map_err(io_err("writing the manifest"))?;
        Ok(manifest)
    }

    /// The snapshots under `<data_dir>/snapshots`, oldest first.
    pub fn list(&self) -> Result<Vec<SnapshotFile>, ServiceError> {
        let entries = match std::fs::read_dir(self.dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("reading the snapshot directory")(e).into()),
        };
        let mut files: Vec<SnapshotFile> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let meta = entry.metadata().ok()?;
                (meta.is_file() && name.ends_with(".tar.zst")).then_some(SnapshotFile {
                    name,
                    bytes: meta.len(),
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

/// Writes the tree under `staging` as a zstd-compressed tar to `out`, through a
/// temporary name, synced before the rename. Returns the file's size.
fn pack(staging: &Path, out: &Path) -> StoreResult<u64> {
    let tmp = with_suffix(out, ".tmp");
    let write = || -> std::io::Result<u64> {
        let file = File::create(&tmp)?;
        let encoder = zstd::Encoder::new(BufWriter::new(file), LEVEL)?;
        let mut tar = tar::Builder::new(encoder);
        tar.follow_symlinks(false);
        tar.append_dir_all(".", staging)?;
        let mut writer = tar.into_inner()?.finish()?;
        writer.flush()?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        std::fs::rename(&tmp, out)?;
        if let Some(parent) = out.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(bytes)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("writing the snapshot")(e)
    })
}

/// Unpacks the snapshot `file` into `data_dir`, which must be empty or missing, and
/// returns its manifest. A server started on `data_dir` then serves what the snapshot
/// holds (an interrupted restore leaves a directory to delete before trying again).
pub fn restore(file: &Path, data_dir: &Path) -> Result<Manifest, String> {
    let empty = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(format!("{}: {e}", data_dir.display())),
    };
    if !empty {
        return Err(format!(
            "{} is not empty; restore into a new directory",
            data_dir.display()
        ));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let opened = File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let decoder = zstd::Decoder::new(BufReader::new(opened))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    // `unpack` refuses entries that would land outside `data_dir`.
    tar::Archive::new(decoder)
        .unpack(data_dir)
        .map_err(|e| format!("{} is not a readable snapshot: {e}", file.display()))?;
    let manifest = std::fs::read(data_dir.join(MANIFEST))
        .map_err(|_| format!("{} holds no {MANIFEST}: not a snapshot", file.display()))?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| format!("{}: {MANIFEST}: {e}", file.display()))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{} has format {}; this server reads format {FORMAT}",
            file.display(),
            manifest.format
        ));
    }
    std::fs::remove_file(data_dir.join(MANIFEST)).map_err(|e| e.to_string())?;
    Ok(manifest)
}

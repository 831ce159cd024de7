//! Object storage through `object_store`: a local directory (the default), S3 or any
//! S3-compatible store, GCS or Azure. Large files go up in parts.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::config::{Backend, StorageConfig};

/// Files up to this size go up in one request; larger ones in parts of this size.
const PART_BYTES: usize = 8 << 20;

/// A configured object store.
#[derive(Debug, Clone)]
pub struct Store {
    /// Built at once for the cloud stores; for the local one at first use, so a tern that never
    /// records never creates its directory.
    cell: Arc<std::sync::OnceLock<Arc<dyn ObjectStore>>>,
    /// The same store where it can presign URLs (S3, GCS, Azure).
    signer: Option<Arc<dyn Signer>>,
    /// The local directory, for the local backend.
    local_dir: Option<std::path::PathBuf>,
    prefix: Key,
    url_ttl: Duration,
    describe: String,
}

/// What a backend is built into: the store, its URL signer, the local directory, a description.
type Built = (
    Option<Arc<dyn ObjectStore>>,
    Option<Arc<dyn Signer>>,
    Option<std::path::PathBuf>,
    String,
);

/// Storage failed (misconfigured, unreachable, refused), or the local file to upload could not
/// be read.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// What happened.
    pub message: String,
    /// The local file was the problem (gone, unreadable): retrying will not help.
    pub local: bool,
}

impl StoreError {
    /// A storage error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            local: false,
        }
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        StoreError::new(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::new(e.to_string())
    }
}

/// The file to upload could not be read.
fn unreadable(path: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError {
        message: format!("{}: {e}", path.display()),
        local: true,
    }
}

impl Store {
    /// Builds the store `config` describes. Nothing is contacted yet (see [`Store::probe`]).
    pub fn new(config: &StorageConfig) -> Result<Self, StoreError> {
        let needs_bucket = config.backend != Backend::Local;
        if needs_bucket && config.bucket.is_empty() {
            return Err(StoreError::new(format!(
                "recording.storage.bucket is required for the {:?} backend",
                config.backend
            )));
        }
        let (inner, signer, local_dir, describe): Built = match config.backend {
            Backend::Local => {
                let dir = std::path::absolute(&config.local_dir)?;
                let describe = format!("local directory {}", dir.display());
                (None, None, Some(dir), describe)
            }
            Backend::S3 => {
                let mut b =
                    object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
                if let Some(id) = &config.access_key_id {
                    b = b.with_access_key_id(id);
                }
                if let Some(secret) = &config.secret_access_key {
                    b = b.with_secret_access_key(secret);
                }
                let endpoint = config
                    .endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                if let Some(endpoint) = &endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let region = config
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".into());
                let s3 = Arc::new(b.with_region(region).build()?);
                let describe = format!(
                    "S3 bucket {} at {}",
                    config.bucket,
                    endpoint.as_deref().unwrap_or("AWS")
                );
                (Some(s3.clone()), Some(s3), None, describe)
            }
            Backend::Gcs => {
                let gcs = Arc::new(
                    object_store::gcp::GoogleCloudStorageBuilder::from_env()
                        .with_bucket_name(&config.bucket)
                        .build()?,
                );
                let describe = format!("GCS bucket {}", config.bucket);
                (Some(gcs.clone()), Some(gcs), None, describe)
            }
            Backend::Azure => {
                let az = Arc::new(
                    object_store::azure::MicrosoftAzureBuilder::from_env()
                        .with_container_name(&config.bucket)
                        .build()?,
                );
                let describe = format!("Azure container {}", config.bucket);
                (Some(az.clone()), Some(az), None, describe)
            }
        };
        let prefix = Key::parse(config.prefix.trim_matches('/'))
            .map_err(|e| StoreError::new(format!("recording.storage.prefix: {e}")))?;
        let cell = Arc::new(std::sync::OnceLock::new());
        if let Some(inner) = inner {
            let _ = cell.set(inner);
        }
        Ok(Self {
            cell,
            signer,
            local_dir,
            prefix,
            url_ttl: Duration::from_secs(config.url_ttl_secs.max(1)),
            describe,
        })
    }

    /// The object store, made now for the local directory the first time it is needed.
    fn inner(&self) -> Result<&Arc<dyn ObjectStore>, StoreError> {
        if let Some(s) = self.cell.get() {
            return Ok(s);
        }
        let dir = self
            .local_dir
            .as_ref()
            .ok_or_else(|| StoreError::new("no store"))?;
        std::fs::create_dir_all(dir)?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true);
        let _ = self.cell.set(Arc::new(fs));
        self.cell
            .get()
            .ok_or_else(|| StoreError::new("store not made"))
    }

    /// What the store is, for logs and errors.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The key prefix of a recording or broadcast: `<prefix>/<room>/<id>` (the room name
    /// percent-encoded where a key cannot hold it).
    pub fn key_prefix(&self, room: &str, id: &str) -> String {
        self.prefix.clone().join(room).join(id).to_string()
    }

    /// Checks that the store takes writes: puts and deletes a small object.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let key = self.prefix.clone().join(".tern-probe");
        self.inner()?
            .put(&key, PutPayload::from_static(b"ok"))
            .await?;
        let _ = self.inner()?.delete(&key).await;
        Ok(())
    }

    /// Uploads a small object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.inner()?
            .put(&parse(key)?, PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Uploads the file at `path` (in parts when large); returns its size and SHA-256 (hex).
    pub async fn upload_file(
        &self,
        path: &std::path::Path,
        key: &str,
    ) -> Result<(u64, String), StoreError> {
        let key = parse(key)?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| unreadable(path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| unreadable(path, e))?
            .len();
        let mut hash = Sha256::new();
        if size as usize <= PART_BYTES {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)
                .await
                .map_err(|e| unreadable(path, e))?;
            hash.update(&bytes);
            let n = bytes.len() as u64;
            self.inner()?.put(&key, PutPayload::from(bytes)).await?;
            return Ok((n, hex(&hash.finalize())));
        }
        let upload = self.inner()?.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let read = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(unreadable(path, e));
                }
            };
            hash.update(&buf[..read]);
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..read]);
            n += read as u64;
        }
        writer.finish().await?;
        Ok((n, hex(&hash.finalize())))
    }

    /// Reads a small object.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .inner()?
            .get(&parse(key)?)
            .await?
            .bytes()
            .await?
            .to_vec())
    }

    /// The ids stored under `room` (recordings or broadcasts, by the store's prefix).
    async fn ids_of(&self, room: &str) -> Result<Vec<String>, StoreError> {
        let under = self.prefix.clone().join(room);
        let listed = self.inner()?.list_with_delimiter(Some(&under)).await?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(String::from))
            .collect())
    }

    /// The manifests (`manifest.json`) stored under `room`, but those of the ids `skip` names;
    /// unreadable ones are left out.
    pub async fn manifests_of<T: serde::de::DeserializeOwned>(
        &self,
        room: &str,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for id in self.ids_of(room).await.unwrap_or_default() {
            if skip(&id) {
                continue;
            }
            let key = format!("{}/manifest.json", self.key_prefix(room, &id));
            if let Ok(bytes) = self.get(&key).await
                && let Ok(m) = serde_json::from_slice(&bytes)
            {
                out.push(m);
            }
        }
        out
    }

    /// The manifest of `id`, whatever its room (one listing, then one read per room).
    pub async fn find_manifest<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let rooms = self
            .inner()?
            .list_with_delimiter(Some(&self.prefix))
            .await?;
        for room in rooms.common_prefixes {
            let key = room.join(id).join("manifest.json");
            match self.inner()?.get(&key).await {
                Ok(got) => return Ok(serde_json::from_slice(&got.bytes().await?).ok()),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Where a client downloads `key`: a presigned URL, or for the local backend the file.
    pub async fn download(&self, key: &str) -> Result<Download, StoreError> {
        let key = parse(key)?;
        if let Some(dir) = &self.local_dir {
            let mut path = dir.clone();
            for part in key.parts() {
                path.push(part.as_ref());
            }
            return Ok(Download::File(path));
        }
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| StoreError::new("this store cannot sign URLs"))?;
        let url = signer
            .signed_url(http::Method::GET, &key, self.url_ttl)
            .await?;
        Ok(Download::Url(url.to_string()))
    }

    /// Deletes an object (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner()?.delete(&parse(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// How a client fetches a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// A presigned URL.
    Url(String),
    /// A local file tern serves itself.
    File(std::path::PathBuf),
}

fn parse(key: &str) -> Result<Key, StoreError> {
    Key::parse(key).map_err(|e| StoreError::new(format!("bad key {key}: {e}")))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, hex.
pub async fn file_sha256(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let read = file.read(&mut buf).await?;
        if read == 0 {
            return Ok((n, hex(&hash.finalize())));
        }
        hash.update(&buf[..read]);
        n += read as u64;
    }
}

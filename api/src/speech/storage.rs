//! Audio objects: voice samples and generated speech, in a local directory or S3-compatible
//! storage through the `object_store` crate.
//!
//! Keys are built here from the tenant id and row ids only (`tenants/{tenant}/voices/{id}/sample`,
//! `tenants/{tenant}/generations/{id}.{ext}`); nothing a client sends becomes part of a key, and
//! each part is a single path segment, so no key can climb out of its tenant's prefix.

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder,
    local::LocalFileSystem, path::Path,
};
use uuid::Uuid;

use crate::config::StorageLocation;

/// Errors reading or writing audio; never shown to clients (they become 500s or 404s).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("audio object not found")]
    NotFound,
    #[error("audio storage: {0}")]
    Backend(#[from] object_store::Error),
    #[error("audio storage: {0}")]
    Invalid(String),
}

/// An object's bytes (or a range of them) as a stream, with the object's full size.
pub struct AudioStream {
    pub size: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// Where audio lives. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AudioStorage {
    store: Arc<dyn ObjectStore>,
}

impl AudioStorage {
    pub fn new(location: &StorageLocation) -> anyhow::Result<AudioStorage> {
        let store: Arc<dyn ObjectStore> = match location {
            StorageLocation::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the audio directory {}: {e}", dir.display())
                })?;
                // Cleanup removes directories a delete leaves empty, so a deleted tenant's
                // prefix disappears from disk too.
                Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true))
            }
            StorageLocation::S3(url) => {
                Arc::new(AmazonS3Builder::from_env().with_url(url.as_str()).build()?)
            }
        };
        Ok(AudioStorage { store })
    }

    /// A store of the caller's choosing (tests, other backends).
    pub fn with_store(store: Arc<dyn ObjectStore>) -> AudioStorage {
        AudioStorage { store }
    }

    fn tenant_prefix(tenant_id: &str) -> Result<Path, StorageError> {
        // Tenant ids are Clerk ids (`org_…`, `user_…`); anything else is refused rather than
        // escaped, so two tenants can never share a prefix.
        let valid = !tenant_id.is_empty()
            && tenant_id.len() <= 128
            && tenant_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(StorageError::Invalid(format!(
                "tenant id {tenant_id:?} cannot name a storage prefix"
            )));
        }
        Ok(Path::from_iter(["tenants", tenant_id]))
    }

    /// The key of a custom voice's reference sample.
    pub fn voice_sample_key(tenant_id: &str, voice_id: Uuid) -> Result<String, StorageError> {
        let prefix = Self::tenant_prefix(tenant_id)?;
        Ok(prefix
            .join("voices")
            .join(voice_id.to_string())
            .join("sample")
            .to_string())
    }

    /// The key of a generation's audio; `extension` is one of the API's output formats.
    pub fn generation_key(
        tenant_id: &str,
        generation_id: Uuid,
        extension: &'static str,
    ) -> Result<String, StorageError> {
        let prefix = Self::tenant_prefix(tenant_id)?;
        Ok(prefix
            .join("generations")
            .join(format!("{generation_id}.{extension}"))
            .to_string())
    }

    /// Keys come from the database, written by the functions above; they are parsed again so a
    /// malformed one is refused instead of used.
    fn path(key: &str) -> Result<Path, StorageError> {
        let path = Path::parse(key).map_err(|e| StorageError::Invalid(e.to_string()))?;
        if !key.starts_with("tenants/") {
            return Err(StorageError::Invalid(format!("unexpected key {key}")));
        }
        Ok(path)
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&Self::path(key)?, PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Stores `bytes` under `key`, then runs `record` (the insert of the row that points at
    /// the object). When `record` fails the object is removed again, so no object outlives a
    /// row that was never written.
    pub async fn put_then<T, E>(
        &self,
        key: &str,
        bytes: Bytes,
        record: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        self.put(key, bytes).await?;
        let recorded = record.await;
        if recorded.is_err()
            && let Err(error) = self.delete(key).await
        {
            tracing::warn!(key, %error, "could not remove the object of an unrecorded row");
        }
        recorded
    }

    /// The whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        match self.store.get(&Self::path(key)?).await {
            Ok(result) => Ok(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// The object's size in bytes.
    pub async fn size(&self, key: &str) -> Result<u64, StorageError> {
        match self.store.head(&Self::path(key)?).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the object, or the bytes in `range` (which the caller has checked against the
    /// size).
    pub async fn stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<AudioStream, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        match self.store.get_opts(&Self::path(key)?, options).await {
            Ok(result) => {
                let size = result.meta.size;
                let range = result.range.clone();
                let body = result
                    .into_stream()
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .boxed();
                Ok(AudioStream { size, range, body })
            }
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes one object; an object already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object of a tenant (its voice samples and generated audio), e.g. when
    /// the workspace is deleted. Returns how many objects went.
    pub async fn delete_tenant(&self, tenant_id: &str) -> Result<u64, StorageError> {
        let prefix = Self::tenant_prefix(tenant_id)?;
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = 0u64;
        let mut results = self.store.delete_stream(locations);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }
}

/// A storage failure in a request is ours to report, without its details.
impl From<StorageError> for crate::error::ApiError {
    fn from(error: StorageError) -> Self {
        crate::error::ApiError::internal(error)
    }
}

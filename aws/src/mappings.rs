//! The mapping store on S3: one object in a bucket with versioning, each publish a
//! new object version. The functions look at its ETag (a `HEAD`) to know it
//! changed; `mapping history` lists its versions, each named by its text's digest
//! (kept in the object's metadata, so a listing reads no text).

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime as S3Time};
use chrono::{DateTime, Utc};
use ghl_capi::ports::mappings::{
    Listed, MappingStore, MappingStoreError, Published, names, version_of,
};

/// The metadata key naming a version's digest.
const VERSION_KEY: &str = "mapping-version";

/// The live mapping's object.
#[derive(Debug, Clone)]
pub struct S3Mappings {
    client: Client,
    bucket: String,
    key: String,
}

/// An S3 client for `sdk`: path-style when an endpoint is set (an emulator has no
/// per-bucket host names).
pub fn s3_client(sdk: &SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

fn at(time: Option<&S3Time>) -> Option<DateTime<Utc>> {
    time.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl S3Mappings {
    pub fn new(client: Client, bucket: impl Into<String>, key: impl Into<String>) -> Self {
        S3Mappings {
            client,
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn failed(&self, e: impl std::error::Error + Send + Sync + 'static) -> MappingStoreError {
        MappingStoreError::new(self.place(), e)
    }

    /// The text of one object version (the live one without `version_id`), `None`
    /// when there is none.
    async fn text(&self, version_id: Option<&str>) -> Result<Option<Published>, MappingStoreError> {
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await;
        let object = match answer {
            Ok(object) => object,
            Err(e) => match e.into_service_error() {
                e if e.is_no_such_key() => return Ok(None),
                e => return Err(self.failed(e)),
            },
        };
        let when = at(object.last_modified());
        let bytes = object.body.collect().await.map_err(|e| self.failed(e))?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| self.failed(e))?;
        Ok(Some(Published::new(text, when)))
    }

    /// The object's versions, newest first, with S3's ids.
    async fn versions(&self, limit: usize) -> Result<Vec<(String, Listed)>, MappingStoreError> {
        let answer = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(&self.key)
            .max_keys(i32::try_from(limit.min(1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| self.failed(e.into_service_error()))?;
        let mut listed = Vec::new();
        for v in answer.versions() {
            let (Some(id), Some(key)) = (v.version_id(), v.key()) else {
                continue;
            };
            if key != self.key {
                continue;
            }
            let head = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .version_id(id)
                .send()
                .await
                .map_err(|e| self.failed(e.into_service_error()))?;
            let version = match head.metadata().and_then(|m| m.get(VERSION_KEY)) {
                Some(version) => version.clone(),
                // Put there by hand: named by its text.
                None => match self.text(Some(id)).await? {
                    Some(published) => published.listed.version,
                    None => continue,
                },
            };
            let size = usize::try_from(v.size().unwrap_or(0)).unwrap_or(0);
            listed.push((
                id.to_owned(),
                Listed {
                    version,
                    at: at(v.last_modified()),
                    size,
                },
            ));
        }
        listed.sort_by_key(|(_, l)| std::cmp::Reverse(l.at));
        listed.truncate(limit);
        Ok(listed)
    }
}

impl MappingStore for S3Mappings {
    fn place(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    async fn mark(&self) -> Result<Option<String>, MappingStoreError> {
        let answer = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        match answer {
            Ok(head) => Ok(head
                .version_id()
                .or(head.e_tag())
                .map(str::to_owned)
                .or(Some(String::new()))),
            Err(e) => match e.into_service_error() {
                e if e.is_not_found() => Ok(None),
                e => Err(self.failed(e)),
            },
        }
    }

    async fn live(&self) -> Result<Option<Published>, MappingStoreError> {
        self.text(None).await
    }

    async fn history(&self, limit: usize) -> Result<Vec<Listed>, MappingStoreError> {
        Ok(self
            .versions(limit)
            .await?
            .into_iter()
            .map(|(_, listed)| listed)
            .collect())
    }

    async fn read(&self, version: &str) -> Result<Option<Published>, MappingStoreError> {
        let versions = self.versions(100).await?;
        match versions.iter().find(|(_, listed)| names(version, listed)) {
            Some((id, _)) => self.text(Some(id)).await,
            None => Ok(None),
        }
    }

    async fn publish(&self, text: &str) -> Result<Listed, MappingStoreError> {
        let version = version_of(text);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/toml")
            .metadata(VERSION_KEY, &version)
            .body(ByteStream::from(text.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| self.failed(e.into_service_error()))?;
        Ok(Listed {
            version,
            at: Some(Utc::now()),
            size: text.len(),
        })
    }
}

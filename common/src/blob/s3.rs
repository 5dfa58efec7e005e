//! S3 (and S3-compatible: MinIO, s3s-fs, ...) blob store.

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_credential_types::Credentials;
use aws_sdk_s3::{
    Client,
    config::http::HttpResponse,
    error::{DisplayErrorContext, SdkError},
    primitives::ByteStream,
    types::{
        BucketLocationConstraint, CompletedMultipartUpload, CompletedPart,
        CreateBucketConfiguration,
    },
};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{BlobError, BlobStore, validate_key};

/// Used when neither the URL nor the environment names a region; S3-compatible servers
/// generally accept any region.
const DEFAULT_REGION: &str = "us-east-1";

/// Part size of streamed uploads: above S3's 5 MiB minimum, and the most a streamed
/// upload holds in memory at once.
pub const MULTIPART_PART_BYTES: usize = 8 * 1024 * 1024;

/// Fills `buf` (cleared first) with up to `MULTIPART_PART_BYTES` from `reader`.
async fn read_part(
    reader: &mut (dyn AsyncRead + Send + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    buf.clear();
    let mut limited = reader.take(MULTIPART_PART_BYTES as u64);
    limited.read_to_end(buf).await?;
    Ok(())
}

/// What an `s3://` storage URL says.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub bucket: String,
    /// Prepended (with a `/`) to every key; empty for none. From the URL path.
    pub key_prefix: String,
    /// `region=`; otherwise the standard chain (AWS_REGION, profile), else us-east-1.
    pub region: Option<String>,
    /// `endpoint=`; selects path-style addressing (what self-hosted servers expect).
    pub endpoint: Option<String>,
    /// `access_key=` and `secret_key=`; otherwise the standard credentials chain.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("key_prefix", &self.key_prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Options {
    /// Parses `s3://bucket[/prefix]?region=..&endpoint=..&access_key=..&secret_key=..`.
    pub fn from_url(url: &str) -> Result<S3Options, BlobError> {
        let invalid = |reason: String| BlobError::InvalidUrl {
            // Never echo a secret back into logs.
            url: url.split('?').next().unwrap_or_default().to_string(),
            reason,
        };
        // The URL parser would silently resolve `..`; refuse it instead.
        if url.split('?').next().unwrap_or_default().contains("..") {
            return Err(invalid("'..' is not allowed".into()));
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if parsed.scheme() != "s3" {
            return Err(invalid("scheme must be s3".into()));
        }
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("missing bucket name".into()))?
            .to_string();
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(invalid(format!(
                "bucket {bucket:?} must be 3-63 characters of a-z 0-9 . -"
            )));
        }
        let key_prefix = parsed.path().trim_matches('/').to_string();
        if !key_prefix.is_empty() {
            validate_key(&key_prefix).map_err(|e| invalid(format!("key prefix: {e}")))?;
        }
        let mut options = S3Options {
            bucket,
            key_prefix,
            ..S3Options::default()
        };
        for (name, value) in parsed.query_pairs() {
            let value = Some(value.into_owned()).filter(|v| !v.is_empty());
            match name.as_ref() {
                "region" => options.region = value,
                "endpoint" => options.endpoint = value,
                "access_key" => options.access_key = value,
                "secret_key" => options.secret_key = value,
                other => return Err(invalid(format!("unknown parameter {other:?}"))),
            }
        }
        if options.access_key.is_some() != options.secret_key.is_some() {
            return Err(invalid(
                "access_key and secret_key must be given together".into(),
            ));
        }
        if let Some(endpoint) = &options.endpoint {
            let ok = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(invalid(format!(
                    "endpoint {endpoint:?} must be an http(s) URL"
                )));
            }
        }
        Ok(options)
    }
}

#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    key_prefix: String,
    region: String,
}

fn sdk_error<E, R>(operation: String, err: SdkError<E, R>) -> BlobError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // The SDK's own Display is terse ("service error"); keep the full context in the
    // message so that a log line says what actually went wrong.
    let operation = format!("{operation}: {}", DisplayErrorContext(&err));
    BlobError::unavailable(operation, err)
}

fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

impl S3BlobStore {
    /// Builds a client; no request is made (call [`BlobStore::check`] for that).
    pub async fn connect(options: S3Options) -> Result<S3BlobStore, BlobError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Bounded so that a dead endpoint makes `check()` and uploads fail in
            // seconds instead of hanging an HTTP request.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let (Some(access), Some(secret)) = (&options.access_key, &options.secret_key) {
            loader = loader.credentials_provider(Credentials::new(
                access.clone(),
                secret.clone(),
                None,
                None,
                "storage-url",
            ));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        let region = shared
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        if shared.region().is_none() {
            builder = builder.region(Region::new(DEFAULT_REGION));
        }
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .endpoint_url(endpoint.clone())
                .force_path_style(true);
        }
        Ok(S3BlobStore {
            client: Client::from_conf(builder.build()),
            bucket: options.bucket,
            key_prefix: options.key_prefix,
            region,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it does not exist. Never called implicitly: creating
    /// buckets is an operator's decision (tests and `scripts/` use it).
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(sdk_error(format!("head bucket {}", self.bucket), e)),
        }
        let mut create = self.client.create_bucket().bucket(&self.bucket);
        if self.region != DEFAULT_REGION {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(format!("create bucket {}", self.bucket), e)),
        }
    }

    fn object_key(&self, key: &str) -> Result<String, BlobError> {
        validate_key(key)?;
        Ok(if self.key_prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.key_prefix)
        })
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        let object_key = self.object_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error(format!("put {}/{object_key}", self.bucket), e))?;
        Ok(())
    }

    /// One part in memory at a time: a `put_object` when the whole upload fits in
    /// one part, else a multipart upload (aborted on any failure, so no parts linger).
    async fn put_stream(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        content_type: &str,
    ) -> Result<u64, BlobError> {
        let object_key = self.object_key(key)?;
        let op = |what: &str| format!("{what} {}/{object_key}", self.bucket);
        let mut buf = Vec::with_capacity(MULTIPART_PART_BYTES);
        read_part(reader, &mut buf)
            .await
            .map_err(|e| BlobError::unavailable(op("read the upload for"), e))?;
        if buf.len() < MULTIPART_PART_BYTES {
            let len = buf.len() as u64;
            self.put(key, Bytes::from(buf), content_type).await?;
            return Ok(len);
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&object_key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| sdk_error(op("start multipart upload of"), e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| {
                BlobError::unavailable(op("start multipart upload of"), "no upload id returned")
            })?
            .to_string();
        let parts = async {
            let mut parts = Vec::new();
            let mut total = 0u64;
            while !buf.is_empty() {
                let number = parts.len() as i32 + 1;
                total += buf.len() as u64;
                let body = ByteStream::from(std::mem::take(&mut buf));
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&object_key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| sdk_error(op(&format!("upload part {number} of")), e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .build(),
                );
                buf = Vec::with_capacity(MULTIPART_PART_BYTES);
                read_part(reader, &mut buf)
                    .await
                    .map_err(|e| BlobError::unavailable(op("read the upload for"), e))?;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&object_key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error(op("complete multipart upload of"), e))?;
            Ok::<u64, BlobError>(total)
        }
        .await;
        if parts.is_err() {
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&object_key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = abort {
                tracing::warn!(key = %object_key, error = %DisplayErrorContext(&e), "could not abort a failed multipart upload");
            }
        }
        parts
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, BlobError> {
        let object_key = self.object_key(key)?;
        let op = || format!("get {}/{object_key} into {}", self.bucket, dest.display());
        let mut output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || status_of(&e) == Some(404) =>
            {
                return Err(BlobError::NotFound(key.to_string()));
            }
            Err(e) => return Err(sdk_error(op(), e)),
        };
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?;
        let mut total = 0u64;
        while let Some(chunk) = output
            .body
            .try_next()
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?
        {
            total += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| BlobError::unavailable(op(), e))?;
        }
        file.flush()
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?;
        Ok(total)
    }

    async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let object_key = self.object_key(key)?;
        let op = || format!("get {}/{object_key}", self.bucket);
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || status_of(&e) == Some(404) =>
            {
                return Err(BlobError::NotFound(key.to_string()));
            }
            Err(e) => return Err(sdk_error(op(), e)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| BlobError::unavailable(op(), e))?;
        Ok(body.into_bytes())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let object_key = self.object_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // S3 answers 204 for a missing key; some compatible servers answer 404.
            Err(e) if status_of(&e) == Some(404) && !is_missing_bucket(&e) => Ok(()),
            Err(e) => Err(sdk_error(format!("delete {}/{object_key}", self.bucket), e)),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| sdk_error(format!("head bucket {}", self.bucket), e))?;
        Ok(())
    }
}

/// A 404 on delete that means the bucket itself is missing is a real error.
fn is_missing_bucket<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "NoSuchBucket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_storage_urls() {
        let o = S3Options::from_url(
            "s3://photos/tenant-a?region=ap-south-1&endpoint=http://127.0.0.1:9000&access_key=ak&secret_key=sk",
        )
        .unwrap();
        assert_eq!(o.bucket, "photos");
        assert_eq!(o.key_prefix, "tenant-a");
        assert_eq!(o.region.as_deref(), Some("ap-south-1"));
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(o.access_key.as_deref(), Some("ak"));
        assert!(!format!("{o:?}").contains("sk\""), "secret leaked: {o:?}");

        let o = S3Options::from_url("s3://attendance-photos").unwrap();
        assert_eq!(o.key_prefix, "");
        assert_eq!(o.region, None);
        assert_eq!(o.endpoint, None);
    }

    #[test]
    fn rejects_bad_storage_urls() {
        for url in [
            "s3://",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket?access_key=only",
            "s3://bucket?endpoint=127.0.0.1:9000",
            "s3://bucket?colour=blue",
            "s3://bucket/../x",
            "http://bucket",
        ] {
            let err = S3Options::from_url(url).unwrap_err();
            assert!(matches!(err, BlobError::InvalidUrl { .. }), "{url}: {err}");
        }
        let err =
            S3Options::from_url("s3://bucket?access_key=a&secret_key=topsecret&x=1").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}

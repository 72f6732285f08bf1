//! Which object store an output URL names, opened with credentials from the environment.

use crate::{Error, Result};
use object_store::ObjectStore;
use object_store::path::Path;
use std::sync::Arc;

/// An output on object storage: the store and the root path of the lake in it.
#[derive(Debug, Clone)]
pub struct Lake {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) root: Path,
    pub(crate) url: String,
}

impl Lake {
    /// Whether `output` names object storage (a URL with a scheme) rather than a local directory.
    pub fn is_url(output: &str) -> bool {
        output.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
        })
    }

    /// Opens `s3://bucket/prefix`, `gs://…`, `az://…`, `abfss://…` or `file:///path`. Credentials,
    /// region and endpoint come from the standard variables of each cloud (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`); for S3, a profile of `~/.aws/credentials` and `~/.aws/config` (`AWS_PROFILE`,
    /// else `default`) fills what the variables leave out. A URL with credentials in it is refused:
    /// they would end up in logs and summaries.
    pub fn open(output: &str) -> Result<Lake> {
        Lake::open_with(output, &[])
    }

    /// Like [`Lake::open`], with settings that override the environment's, by the names of
    /// `object_store`'s configuration keys (`aws_endpoint_url`, `aws_access_key_id`, ...).
    pub fn open_with(output: &str, settings: &[(&str, &str)]) -> Result<Lake> {
        let fail = |detail: String| Error::Url { url: output.to_string(), detail };
        let url = url::Url::parse(output).map_err(|e| fail(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::Url {
                url: format!("{}://…@{}{}", url.scheme(), url.host_str().unwrap_or(""), url.path()),
                detail: "the URL carries credentials".into(),
            });
        }
        let mut options: Vec<(String, String)> = crate::location::aws_profile(&url).unwrap_or_default();
        // The environment wins over the profile: later options override earlier ones.
        options.extend(std::env::vars());
        options.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (store, root) = object_store::parse_url_opts(&url, options).map_err(|e| fail(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        Ok(Lake { store, root, url: output.trim_end_matches('/').to_string() })
    }

    /// Checks that the store refuses a create-only put over an existing object, which every
    /// commit and lease relies on: S3 has honoured `If-None-Match: *` since August 2024 (MinIO,
    /// Ceph and R2 too), Google Cloud Storage and Azure have their own preconditions, local files
    /// a no-clobber link. A store that ignores it would let two workers commit the same org: it
    /// is refused here, before any work, with [`Error::NoConditionalPut`].
    pub async fn check_conditional_put(&self, worker: &str) -> Result<()> {
        use object_store::{ObjectStoreExt, PutMode, PutOptions};
        let nonce = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let relative = format!("_sfetl/probes/{}-{nonce}.json", worker.replace(['/', ':'], "-"));
        let path = self.path(&relative);
        let create = || PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        let what = || format!("writing {}", self.url_of(&relative));
        self.store.put_opts(&path, "{}".into(), create()).await.map_err(Error::store(what()))?;
        let second = self.store.put_opts(&path, "{}".into(), create()).await;
        let _ = self.store.delete(&path).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Ok(_) => Err(Error::NoConditionalPut { url: self.url.clone() }),
            Err(source) => Err(Error::Store { what: what(), source }),
        }
    }

    /// The URL the lake was opened with, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full URL of a path relative to the lake's root, for readers (Spark, polars, DuckDB).
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{}", self.url, relative)
    }

    /// A path relative to the lake's root, as a path in the store.
    pub(crate) fn path(&self, relative: &str) -> Path {
        relative.split('/').filter(|p| !p.is_empty()).fold(self.root.clone(), |path, part| path.join(part))
    }

    /// A path in the store, relative to the lake's root (`None` when outside it).
    pub(crate) fn relative(&self, path: &Path) -> Option<String> {
        let parts: Vec<String> = path.prefix_match(&self.root)?.map(|p| p.as_ref().to_string()).collect();
        Some(parts.join("/"))
    }
}

/// For an `s3://` URL, the static credentials, region and endpoint of the AWS profile
/// (`AWS_PROFILE`, else `default`) in the shared files `~/.aws/credentials` and `~/.aws/config`
/// (or `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`). The AWS CLI's format, documented in
/// "Configuration and credential file settings" of its user guide: `[name]` sections in the
/// credentials file, `[profile name]` (or `[default]`) in the config file, `key = value` lines.
/// Profiles that assume roles or sign in with SSO are not read; use the variables for those.
fn aws_profile(url: &url::Url) -> Option<Vec<(String, String)>> {
    if !matches!(url.scheme(), "s3" | "s3a") {
        return None;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var).map(std::path::PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let mut options = Vec::new();
    let config_section = if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
    for (path, section) in [
        (file("AWS_CONFIG_FILE", ".aws/config"), config_section),
        (file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"), profile.clone()),
    ] {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else { continue };
        for (key, value) in ini_section(&text, &section) {
            let key = match key.as_str() {
                "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" => key,
                "region" => "aws_region".into(),
                "endpoint_url" => "aws_endpoint_url".into(),
                _ => continue,
            };
            options.push((key, value));
        }
    }
    Some(options)
}

/// The `key = value` lines of `[section]` in an INI text (keys lower-cased).
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside
            && !line.starts_with(['#', ';'])
            && let Some((key, value)) = line.split_once('=')
        {
            found.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that overwrites whatever the put's mode says, as an S3-compatible store without
    /// conditional writes does.
    #[derive(Debug)]
    struct Overwriting(object_store::memory::InMemory);

    impl std::fmt::Display for Overwriting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Overwriting")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Overwriting {
        async fn put_opts(
            &self,
            location: &Path,
            payload: object_store::PutPayload,
            _: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0.put_opts(location, payload, object_store::PutOptions::default()).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures_util::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_store_that_ignores_create_only_puts_is_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Local { path: "tmp".into(), source })?;
        Lake::open(&format!("file://{}", dir.path().display()))?.check_conditional_put("host:1").await?;
        let careless = Lake {
            store: Arc::new(Overwriting(object_store::memory::InMemory::new())),
            root: Path::from("lake"),
            url: "s3://careless/lake".into(),
        };
        let refused = careless.check_conditional_put("host:1").await.err().map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(|e| e.contains("s3://careless/lake") && e.contains("If-None-Match")),
            "{refused:?}"
        );
        Ok(())
    }

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(Lake::is_url("s3://bucket/prefix"));
        assert!(Lake::is_url("file:///tmp/lake"));
        assert!(!Lake::is_url("data"));
        assert!(!Lake::is_url("/var/lib/sfetl"));
        assert!(!Lake::is_url("./odd://name"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_repeating_them() {
        let err = Lake::open("s3://AKIAKEY:secretvalue@bucket/prefix").err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("carries credentials"), "{err}");
        assert!(!err.contains("secretvalue") && !err.contains("AKIAKEY"), "{err}");
    }

    #[test]
    fn profile_sections_are_read_from_both_files() {
        let text = "[default]\nregion = eu-west-1\n\n[profile lake]\nregion = us-east-2\nendpoint_url = http://x\n";
        assert_eq!(
            ini_section(text, "profile lake"),
            [("region".to_string(), "us-east-2".to_string()), ("endpoint_url".to_string(), "http://x".to_string())]
        );
        assert_eq!(ini_section(text, "default"), [("region".to_string(), "eu-west-1".to_string())]);
    }

    #[test]
    fn a_file_url_opens_and_maps_relative_paths() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Local { path: "tmp".into(), source })?;
        let lake = Lake::open(&format!("file://{}/lake/", dir.path().display()))?;
        let path = lake.path("users/org=acme/users-1.parquet");
        assert_eq!(lake.relative(&path).as_deref(), Some("users/org=acme/users-1.parquet"));
        assert!(lake.url_of("users").ends_with("/lake/users"), "{}", lake.url_of("users"));
        Ok(())
    }
}

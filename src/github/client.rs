//! The octocrab-backed client: base URL from `GITHUB_API_URL`, token auth, the retry loop, and
//! serialized writes. Every adapter in `github::*` sends through [`GithubClient::send`].
//!
//! Owns: building octocrab, running [`retry::decide`] around each request, the write mutex, error
//! mapping. Must not touch: what to send (adapters) or what it means (pure modules).

use super::Error;
use super::permissions;
use super::retry::{self, RateHeaders, RetryDecision, RetryPolicy};
use http::Method;
use octocrab::Octocrab;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// Where and as whom to talk to GitHub.
#[derive(Clone)]
pub struct GithubConfig {
    /// `GITHUB_API_URL`: `https://api.github.com`, or `https://ghe.example.com/api/v3` on GHES.
    pub api_url: String,
    /// The `github-token` input. Never logged.
    pub token: String,
    /// `GITHUB_REPOSITORY`: `owner/name`.
    pub repository: String,
    pub retry: RetryPolicy,
    /// Per-request read timeout (a hung response is retried like a 5xx).
    pub read_timeout: Duration,
}

impl std::fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubConfig")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("repository", &self.repository)
            .field("retry", &self.retry)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl GithubConfig {
    /// Production defaults: retry policy [`RetryPolicy::default`], 30 s read timeout.
    pub fn new(api_url: &str, token: &str, repository: &str) -> Self {
        GithubConfig {
            api_url: api_url.to_string(),
            token: token.to_string(),
            repository: repository.to_string(),
            retry: RetryPolicy::default(),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// The workflow command that masks `secret` in the job log. The caller prints it on stdout before
/// anything else could echo the value.
pub fn mask_command(secret: &str) -> String {
    crate::runtime::add_mask(secret)
}

/// A raw answer: status, headers and the body as text.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// One GitHub connection for the run. Cheap to share by reference; all adapters are methods on it.
pub struct GithubClient {
    octo: Octocrab,
    owner: String,
    repo: String,
    retry: RetryPolicy,
    writes: Mutex<()>,
    sent: AtomicU64,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl GithubClient {
    pub fn new(config: &GithubConfig) -> Result<Self, Error> {
        let (owner, repo) = config
            .repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| Error::Repository(config.repository.clone()))?;
        let base = config.api_url.trim_end_matches('/');
        let octo = Octocrab::builder()
            .base_uri(base)
            .map_err(|source| Error::Build {
                url: base.to_string(),
                source: Box::new(source),
            })?
            .personal_token(config.token.clone())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(config.read_timeout))
            .build()
            .map_err(|source| Error::Build {
                url: base.to_string(),
                source: Box::new(source),
            })?;
        Ok(GithubClient {
            octo,
            owner: owner.to_string(),
            repo: repo.to_string(),
            retry: config.retry.clone(),
            writes: Mutex::new(()),
            sent: AtomicU64::new(0),
        })
    }

    /// `/repos/{owner}/{repo}` — the prefix of most routes.
    pub fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.repo)
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends one request under the retry policy and decodes a 2xx JSON body into `T`. Writes (every
    /// method but GET) hold the write mutex for the whole exchange, retries included.
    pub async fn send<T: DeserializeOwned, B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let raw = self.send_raw(method.clone(), path, body).await?;
        decode(&method, path, &raw)
    }

    /// As [`GithubClient::send`], returning the raw successful response.
    pub async fn send_raw<B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<RawResponse, Error> {
        self.exchange(method, path, body, || async { Ok(None) }, Ok)
            .await
    }

    /// As [`GithubClient::send`], for a create that must not happen twice. After a failure that
    /// GitHub may have applied anyway (a 5xx, or an answer lost to a timeout), `probe` looks for the
    /// created object before the next attempt; if it finds it, that is the answer. Rate-limit
    /// refusals (429, 403) are never applied, so they are retried without probing.
    pub async fn send_probed<T, B, P, Fut>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        probe: P,
    ) -> Result<T, Error>
    where
        T: DeserializeOwned + Send,
        B: Serialize + Sync + ?Sized,
        P: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<Option<T>, Error>> + Send,
    {
        let m = method.clone();
        self.exchange(method, path, body, probe, |raw| decode(&m, path, &raw))
            .await
    }

    async fn exchange<T, B, P, Fut, D>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        mut probe: P,
        decode_ok: D,
    ) -> Result<T, Error>
    where
        B: Serialize + Sync + ?Sized,
        P: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<Option<T>, Error>> + Send,
        D: Fn(RawResponse) -> Result<T, Error> + Send,
    {
        let _guard = if method == Method::GET {
            None
        } else {
            Some(self.writes.lock().await)
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.once(&method, path, body).await {
                Ok(r) if (200..300).contains(&r.status) => return decode_ok(r),
                other => other,
            };
            let jitter = rand::random::<f64>();
            let (decision, ambiguous) = match &outcome {
                Ok(r) => {
                    let headers = RateHeaders::from_map(&r.headers);
                    let kind = retry::classify(r.status, &headers, &r.body);
                    let d = retry::decide(
                        &self.retry,
                        r.status,
                        &headers,
                        &r.body,
                        attempt,
                        unix_now(),
                        jitter,
                    );
                    (d, kind == retry::FailureKind::Server)
                }
                Err(_) => (retry::decide_transport(&self.retry, attempt, jitter), true),
            };
            match decision {
                RetryDecision::RetryAfter(wait) => {
                    tracing::warn!(
                        %method,
                        path,
                        attempt,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "github request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    if ambiguous
                        && method != Method::GET
                        && let Some(found) = probe().await?
                    {
                        tracing::info!(%method, path, "the failed request had been applied; not sending it again");
                        return Ok(found);
                    }
                }
                RetryDecision::GiveUp(reason) => {
                    return Err(match outcome {
                        Ok(r) => Error::Status {
                            needs: (r.status == 403 && reason == retry::GiveUp::Permanent)
                                .then(|| permissions::missing(method.as_str(), path, &r.headers))
                                .flatten(),
                            method: method.to_string(),
                            path: path.to_string(),
                            status: r.status,
                            message: github_message(&r.body),
                            attempts: attempt,
                            gave_up: reason,
                        },
                        Err(source) => Error::Transport {
                            method: method.to_string(),
                            path: path.to_string(),
                            attempts: attempt,
                            source: Box::new(source),
                        },
                    });
                }
            }
        }
    }

    /// GETs every page of a list (`per_page=100`, following page numbers on the configured base URL
    /// rather than `Link` headers, which may name another host). `list_key` names the array in an
    /// object answer (`check_runs`), or `None` when the answer is the array itself.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        list_key: Option<&str>,
    ) -> Result<Vec<T>, Error> {
        const PER_PAGE: usize = 100;
        const MAX_PAGES: u32 = 100;
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!("{path}{sep}per_page={PER_PAGE}&page={page}");
            let value: serde_json::Value = self.send(Method::GET, &url, None::<&()>).await?;
            let items = match list_key {
                Some(k) => value.get(k).cloned().unwrap_or(serde_json::Value::Null),
                None => value,
            };
            let items: Vec<T> = serde_json::from_value(items).map_err(|source| Error::Decode {
                method: "GET".into(),
                path: url.clone(),
                source,
            })?;
            let n = items.len();
            out.extend(items);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn once<B: Serialize + Sync + ?Sized>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<RawResponse, octocrab::Error> {
        let uri = http::Uri::try_from(path).map_err(|e| octocrab::Error::Other {
            source: Box::new(e),
            backtrace: std::backtrace::Backtrace::capture(),
        })?;
        let mut builder = http::Request::builder().method(method.clone()).uri(uri);
        // Prism (and GitHub) accept this pair; `application/vnd.github+json` alone gets 406 from Prism.
        builder = builder.header(
            http::header::ACCEPT,
            "application/vnd.github+json, application/json",
        );
        let request = self.octo.build_request(builder, body)?;
        let response = self.octo.execute(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self.octo.body_to_string(response).await?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

fn decode<T: DeserializeOwned>(method: &Method, path: &str, raw: &RawResponse) -> Result<T, Error> {
    serde_json::from_str(&raw.body).map_err(|source| Error::Decode {
        method: method.to_string(),
        path: path.to_string(),
        source,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// GitHub's `message` (with its `errors` details, as on a 422), or the start of the body.
fn github_message(body: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str());
    let msg = match (message, parsed.as_ref().and_then(|v| v.get("errors"))) {
        (Some(m), Some(errors)) => format!(
            "{m}: {}",
            errors.to_string().chars().take(500).collect::<String>()
        ),
        (Some(m), None) => m.to_string(),
        (None, _) => body.chars().take(1000).collect(),
    };
    if msg.is_empty() {
        "no message".to_string()
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token never shows in Debug output; the mask command escapes it like GitHub's toolkit.
    #[test]
    fn token_is_never_printed() {
        let cfg = GithubConfig::new("https://ghe.example.com/api/v3", "ghs_s3cr3t%", "o/r");
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        assert_eq!(mask_command("ghs_s3cr3t%"), "::add-mask::ghs_s3cr3t%25");
    }

    /// GITHUB_REPOSITORY must be owner/name.
    #[test]
    fn repository_must_be_owner_slash_name() {
        for bad in ["", "owner", "owner/", "/name", "a/b/c"] {
            let cfg = GithubConfig::new("https://api.github.com", "t", bad);
            assert!(
                matches!(GithubClient::new(&cfg), Err(Error::Repository(_))),
                "{bad}"
            );
        }
    }

    /// GitHub's message and its 422 details make the error; a body without one is quoted briefly.
    #[test]
    fn error_messages_carry_github_details() {
        let m = github_message(
            r#"{"message":"Validation Failed","errors":[{"field":"head_sha","code":"missing"}]}"#,
        );
        assert!(
            m.starts_with("Validation Failed: ") && m.contains("head_sha"),
            "{m}"
        );
        assert_eq!(github_message(""), "no message");
    }
}

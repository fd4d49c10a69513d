//! Notifications: who hears about a deploy — a Slack incoming webhook (how it ended), Datadog (an
//! event for started / succeeded / failed / rolled back) and Sentry (a release when a deploy starts,
//! a deploy of that release when it succeeds).
//!
//! Owns: each vendor's request body (pure, on [`DeployNotice`]), the one HTTP POST they share, and
//! [`Channel`], the one notifier over all of them. Must not touch: decisions — it reports what
//! happened. A notification that cannot be delivered never changes the run's outcome; the caller
//! logs it as a warning. Credentials are never in an error message (`without_url`, headers only).

use crate::inputs::Secret;
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;

/// What happened, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployNotice {
    pub environment: String,
    pub app: String,
    pub image: String,
    /// `deployed`, `rolled back`, `failed`, …
    pub outcome: String,
    /// One line of detail (the trigger that fired, the reason).
    pub detail: String,
    /// Link to the workflow run.
    pub run_url: Option<String>,
    /// True when something went wrong (red attachment, `:rotating_light:`).
    pub alarm: bool,
    pub phase: DeployPhase,
    /// When the deploy started (RFC 3339), for Sentry's `dateStarted`.
    pub started_at: Option<String>,
    /// When this notice is sent (RFC 3339), for Sentry's `dateFinished`.
    pub at: String,
}

/// Where a deploy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployPhase {
    Started,
    Succeeded,
    Failed,
    RolledBack,
}

impl DeployNotice {
    /// Slack's incoming-webhook body: a `text` fallback plus one block of Markdown.
    pub fn slack_payload(&self) -> Value {
        let icon = if self.alarm {
            ":rotating_light:"
        } else {
            ":white_check_mark:"
        };
        let text = format!(
            "{icon} *{}* {} in *{}*: {}",
            self.app, self.outcome, self.environment, self.image
        );
        let mut detail = self.detail.clone();
        if let Some(u) = &self.run_url {
            if !detail.is_empty() {
                detail.push('\n');
            }
            detail.push_str(&format!("<{u}|workflow run>"));
        }
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
        if !detail.is_empty() {
            blocks
                .push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": detail}]}));
        }
        json!({ "text": text, "blocks": blocks })
    }

    /// The image's tag (after the last `:` of the last path segment), else the whole reference.
    fn tag(&self) -> &str {
        let last = self.image.rsplit('/').next().unwrap_or(&self.image);
        match last.rsplit_once(['@', ':']) {
            Some((_, t)) if !t.is_empty() => t,
            _ => &self.image,
        }
    }

    /// Sentry's release version: `<app>@<tag>` (Sentry's own `package@version` convention; no
    /// `/`, newline or tab, at most 200 characters).
    pub fn release_version(&self) -> String {
        let v: String = format!("{}@{}", self.app, self.tag())
            .chars()
            .map(|c| {
                if matches!(c, '/' | '\\' | '\n' | '\t') {
                    '-'
                } else {
                    c
                }
            })
            .take(200)
            .collect();
        v
    }

    /// Datadog v1 event (`POST /api/v1/events`; fields per
    /// <https://docs.datadoghq.com/api/latest/events/#post-an-event>): `title`, `text`, `tags`,
    /// `alert_type` (`info` / `success` / `error`), `aggregation_key` (≤ 100 characters: the
    /// events of one deploy group together), `source_type_name`.
    pub fn datadog_event(&self) -> Value {
        let (what, alert) = match self.phase {
            DeployPhase::Started => ("deploy started", "info"),
            DeployPhase::Succeeded => ("deployed", "success"),
            DeployPhase::Failed => ("deploy failed", "error"),
            DeployPhase::RolledBack => ("rolled back", "error"),
        };
        let mut text = format!(
            "{} {what} in {}: {}",
            self.app, self.environment, self.image
        );
        if !self.detail.is_empty() {
            text.push_str(&format!("\n{}", self.detail));
        }
        if let Some(u) = &self.run_url {
            text.push_str(&format!("\nworkflow run: {u}"));
        }
        let key: String = format!("fm-deploy:{}:{}:{}", self.app, self.environment, self.tag())
            .chars()
            .take(100)
            .collect();
        json!({
            "title": format!("{} {what} in {}", self.app, self.environment),
            "text": text,
            "tags": [
                format!("env:{}", self.environment),
                format!("service:{}", self.app),
                format!("version:{}", self.tag()),
                "source:fm-deploy".to_string(),
            ],
            "alert_type": alert,
            "aggregation_key": key,
            "source_type_name": "fm-deploy",
        })
    }

    /// Sentry "create a new release" body (`POST /api/0/organizations/{org}/releases/`;
    /// <https://docs.sentry.io/api/releases/create-a-new-release-for-an-organization/>).
    /// `refs` is left out: it needs the repository connected to Sentry, else the call fails.
    pub fn sentry_release(&self, project: &str) -> Value {
        json!({ "version": self.release_version(), "projects": [project] })
    }

    /// Sentry "create a deploy" body (`POST …/releases/{version}/deploys/`;
    /// <https://docs.sentry.io/api/releases/create-a-deploy/>): `environment`, `name`, `url`,
    /// `dateStarted`, `dateFinished`.
    pub fn sentry_deploy(&self) -> Value {
        let mut v = json!({
            "environment": self.environment,
            "name": format!("fm-deploy {}", self.tag()),
            "dateFinished": self.at,
        });
        if let Some(u) = &self.run_url {
            v["url"] = json!(u);
        }
        if let Some(s) = &self.started_at {
            v["dateStarted"] = json!(s);
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Never the URL or a key in the message: they are secrets.
    #[error("deliver the {vendor} notification: {reason}")]
    Delivery {
        vendor: &'static str,
        reason: String,
    },
}

/// Where notices go.
pub trait Notifier: Sync {
    fn notify(&self, notice: &DeployNotice) -> impl Future<Output = Result<(), Error>> + Send;
}

/// How a request authenticates.
enum Auth<'a> {
    /// The URL is the credential (Slack).
    None,
    /// A named header (`DD-API-KEY`).
    Header(&'static str, &'a Secret),
    /// `Authorization: Bearer` (Sentry auth token).
    Bearer(&'a Secret),
}

/// The one HTTP client every channel posts through.
#[derive(Clone)]
struct Http(reqwest::Client);

impl Http {
    fn new(vendor: &'static str) -> Result<Self, Error> {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map(Http)
            .map_err(|e| Error::Delivery {
                vendor,
                reason: format!("build the HTTP client: {e}"),
            })
    }

    /// POSTs `body` as JSON; any 2xx is delivered (Sentry answers 208 for a release it has).
    async fn post(
        &self,
        vendor: &'static str,
        url: &str,
        auth: Auth<'_>,
        body: &Value,
    ) -> Result<(), Error> {
        let fail = |reason: String| Error::Delivery { vendor, reason };
        let mut req = self.0.post(url).json(body);
        req = match auth {
            Auth::None => req,
            Auth::Header(name, key) => req.header(name, key.expose()),
            Auth::Bearer(token) => req.bearer_auth(token.expose()),
        };
        // `without_url` keeps a webhook URL (a secret) out of the error text.
        let resp = req
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(fail(format!("the API answered {}", resp.status())))
        }
    }
}

/// A Slack incoming webhook: told how deploys end (not when they start).
pub struct SlackWebhook {
    url: String,
    http: Http,
}

impl SlackWebhook {
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(SlackWebhook {
            url: url.to_string(),
            http: Http::new("Slack")?,
        })
    }
}

impl Notifier for SlackWebhook {
    async fn notify(&self, notice: &DeployNotice) -> Result<(), Error> {
        if notice.phase == DeployPhase::Started {
            return Ok(());
        }
        self.http
            .post("Slack", &self.url, Auth::None, &notice.slack_payload())
            .await
    }
}

/// Datadog's events API on one site (`https://api.datadoghq.com`, `https://api.datadoghq.eu`, …).
pub struct DatadogEvents {
    api: reqwest::Url,
    key: Secret,
    http: Http,
}

impl DatadogEvents {
    pub fn new(api: reqwest::Url, key: Secret) -> Result<Self, Error> {
        Ok(DatadogEvents {
            api,
            key,
            http: Http::new("Datadog")?,
        })
    }
}

impl Notifier for DatadogEvents {
    async fn notify(&self, notice: &DeployNotice) -> Result<(), Error> {
        let url = join(&self.api, &["api", "v1", "events"]);
        let auth = Auth::Header("DD-API-KEY", &self.key);
        self.http
            .post("Datadog", &url, auth, &notice.datadog_event())
            .await
    }
}

/// Sentry's releases API for one organization and project (`https://sentry.io` or self-hosted).
pub struct SentryReleases {
    api: reqwest::Url,
    token: Secret,
    org: String,
    project: String,
    http: Http,
}

impl SentryReleases {
    pub fn new(api: reqwest::Url, token: Secret, org: &str, project: &str) -> Result<Self, Error> {
        Ok(SentryReleases {
            api,
            token,
            org: org.to_string(),
            project: project.to_string(),
            http: Http::new("Sentry")?,
        })
    }
}

impl Notifier for SentryReleases {
    /// Started: the release (so errors from the new version are attributed to it). Succeeded: the
    /// release (idempotent) and its deploy to the environment. A failed or rolled-back version never
    /// served the environment, so it gets no deploy; the previous release stays the latest there.
    async fn notify(&self, notice: &DeployNotice) -> Result<(), Error> {
        if matches!(notice.phase, DeployPhase::Failed | DeployPhase::RolledBack) {
            return Ok(());
        }
        let releases = ["api", "0", "organizations", &self.org, "releases"];
        let auth = || Auth::Bearer(&self.token);
        let body = notice.sentry_release(&self.project);
        let url = join(&self.api, &[&releases[..], &[""]].concat());
        self.http.post("Sentry", &url, auth(), &body).await?;
        if notice.phase == DeployPhase::Succeeded {
            let version = notice.release_version();
            let mut path = releases.to_vec();
            path.extend([version.as_str(), "deploys", ""]);
            let url = join(&self.api, &path);
            self.http
                .post("Sentry", &url, auth(), &notice.sentry_deploy())
                .await?;
        }
        Ok(())
    }
}

/// `base` with `segments` appended, each percent-encoded (a last `""` gives the trailing `/`
/// Sentry's paths end in).
fn join(base: &reqwest::Url, segments: &[&str]) -> String {
    let mut u = base.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty().extend(segments);
    }
    u.to_string()
}

/// Every configured notifier; one type so the caller holds a list.
pub enum Channel {
    Slack(SlackWebhook),
    Datadog(DatadogEvents),
    Sentry(SentryReleases),
}

impl Notifier for Channel {
    async fn notify(&self, notice: &DeployNotice) -> Result<(), Error> {
        match self {
            Channel::Slack(c) => c.notify(notice).await,
            Channel::Datadog(c) => c.notify(notice).await,
            Channel::Sentry(c) => c.notify(notice).await,
        }
    }
}

/// Tells every channel at once; the failures, for the caller to log.
pub async fn notify_all(channels: &[Channel], notice: &DeployNotice) -> Vec<Error> {
    futures::future::join_all(channels.iter().map(|c| c.notify(notice)))
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(alarm: bool) -> DeployNotice {
        DeployNotice {
            environment: "production".into(),
            app: "fm-llm-solver-web".into(),
            image: "ghcr.io/org/fm-llm-solver:abc".into(),
            outcome: if alarm {
                "rolled back".into()
            } else {
                "deployed".into()
            },
            detail: if alarm {
                "trigger `error-rate` fired".into()
            } else {
                String::new()
            },
            run_url: Some("https://github.com/org/repo/actions/runs/1".into()),
            alarm,
            phase: if alarm {
                DeployPhase::RolledBack
            } else {
                DeployPhase::Succeeded
            },
            started_at: Some("2026-12-03T09:00:00Z".into()),
            at: "2026-12-03T09:05:00Z".into(),
        }
    }

    /// A rollback reads as an alarm and names the trigger and the run.
    #[test]
    fn rollback_message() {
        let v = notice(true).slack_payload();
        let text = v["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(":rotating_light: *fm-llm-solver-web* rolled back in *production*"),
            "{text}"
        );
        let ctx = v["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(
            ctx.contains("`error-rate`") && ctx.contains("actions/runs/1"),
            "{ctx}"
        );
    }

    /// A success is not an alarm.
    #[test]
    fn success_message() {
        let v = notice(false).slack_payload();
        assert!(
            v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with(":white_check_mark:"))
        );
    }

    /// Datadog's event and Sentry's bodies carry the documented fields; the release version is
    /// `<app>@<tag>`.
    #[test]
    fn vendor_bodies() {
        let n = notice(true);
        let e = n.datadog_event();
        assert_eq!(e["alert_type"], "error");
        assert_eq!(e["title"], "fm-llm-solver-web rolled back in production");
        assert!(
            e["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("env:production")))
        );
        assert!(
            e["aggregation_key"]
                .as_str()
                .is_some_and(|k| k.len() <= 100)
        );
        assert_eq!(n.release_version(), "fm-llm-solver-web@abc");
        assert_eq!(
            notice(false).sentry_deploy(),
            json!({"environment": "production", "name": "fm-deploy abc",
                   "url": "https://github.com/org/repo/actions/runs/1",
                   "dateStarted": "2026-12-03T09:00:00Z", "dateFinished": "2026-12-03T09:05:00Z"})
        );
        let api = reqwest::Url::parse("http://127.0.0.1:9/sentry/").unwrap();
        assert_eq!(
            join(
                &api,
                &[
                    "api",
                    "0",
                    "organizations",
                    "o",
                    "releases",
                    "a@b c",
                    "deploys",
                    ""
                ]
            ),
            "http://127.0.0.1:9/sentry/api/0/organizations/o/releases/a@b%20c/deploys/"
        );
        let dd = reqwest::Url::parse("https://api.datadoghq.eu").unwrap();
        assert_eq!(
            join(&dd, &["api", "v1", "events"]),
            "https://api.datadoghq.eu/api/v1/events"
        );
    }
}

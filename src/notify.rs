//! Notifications: a Slack incoming webhook told about deploy outcomes and rollbacks.
//!
//! Owns: the message (pure, [`DeployNotice::slack_payload`]) and the one POST (behind [`Notifier`]).
//! Must not touch: decisions — it reports what happened. A notification that cannot be delivered
//! never changes the run's outcome; the caller logs it.

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
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is never in the message: it is a secret.
    #[error("deliver the Slack notification: {0}")]
    Slack(String),
}

/// Where notices go.
pub trait Notifier: Sync {
    fn notify(&self, notice: &DeployNotice) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A Slack incoming webhook.
pub struct SlackWebhook {
    url: String,
    http: reqwest::Client,
}

impl SlackWebhook {
    pub fn new(url: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Slack(format!("build the HTTP client: {e}")))?;
        Ok(SlackWebhook {
            url: url.to_string(),
            http,
        })
    }
}

impl Notifier for SlackWebhook {
    async fn notify(&self, notice: &DeployNotice) -> Result<(), Error> {
        // `without_url` keeps the webhook (a secret) out of the error text.
        let resp = self
            .http
            .post(&self.url)
            .json(&notice.slack_payload())
            .send()
            .await
            .map_err(|e| Error::Slack(e.without_url().to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Error::Slack(format!(
                "the webhook answered {}",
                resp.status()
            )))
        }
    }
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
}

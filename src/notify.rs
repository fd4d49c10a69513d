//! Notifications: Slack / Datadog / Sentry webhooks.

//! The one retry policy for every GitHub call. Pure: (status, headers, attempt, clock, jitter) →
//! retry after X or give up.
//!
//! Owns: which failures are retried (5xx, 429, 403 rate limits, transport errors), how long to wait
//! (`retry-after`, `x-ratelimit-reset`, ≥ 60 s on a secondary limit without a hint, otherwise
//! exponential backoff with jitter), and the cap tests use. Must not touch: the network or the clock
//! (the caller passes `now` and the jitter draw).

use std::time::Duration;

/// Tunables of the retry policy. [`RetryPolicy::default`] is what production uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// First backoff for 5xx / transport errors; doubles each attempt.
    pub base_delay: Duration,
    /// Longest computed backoff (hints from GitHub are not shortened by this).
    pub max_backoff: Duration,
    /// Wait on a secondary rate limit that gives no hint (GitHub: at least one minute).
    pub secondary_min: Duration,
    /// A hint longer than this ends the run instead of waiting (a primary limit resetting in an hour).
    pub max_wait: Duration,
    /// When set, every wait is clamped to this, hints included. Tests use it to stay fast; production
    /// leaves it unset.
    pub cap: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            secondary_min: Duration::from_secs(60),
            max_wait: Duration::from_secs(15 * 60),
            cap: None,
        }
    }
}

/// The rate-limit related response headers, already read as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub retry_after: Option<String>,
    pub ratelimit_remaining: Option<String>,
    pub ratelimit_reset: Option<String>,
}

impl RateHeaders {
    pub fn from_map(h: &http::HeaderMap) -> Self {
        let get = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        RateHeaders {
            retry_after: get("retry-after"),
            ratelimit_remaining: get("x-ratelimit-remaining"),
            ratelimit_reset: get("x-ratelimit-reset"),
        }
    }
}

/// Why a failure was (or was not) retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 5xx, or the connection failed / timed out.
    Server,
    /// 429, or 403 with a rate-limit signal.
    RateLimited,
    /// Anything else: 400, 401, 403 (permissions), 404, 406, 409, 410, 422.
    Permanent,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp(GiveUp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The status is not one that a retry can fix.
    Permanent,
    /// `max_attempts` reached.
    Exhausted,
    /// GitHub asked for a longer wait than `max_wait`.
    WaitTooLong(Duration),
}

/// Classifies a failed response. A 403 is a rate limit when GitHub says so: a `retry-after` header,
/// `x-ratelimit-remaining: 0`, or a body that mentions a rate limit.
pub fn classify(status: u16, headers: &RateHeaders, body: &str) -> FailureKind {
    match status {
        429 => FailureKind::RateLimited,
        403 => {
            let lower = body.to_ascii_lowercase();
            if headers.retry_after.is_some()
                || headers.ratelimit_remaining.as_deref() == Some("0")
                || lower.contains("rate limit")
            {
                FailureKind::RateLimited
            } else {
                FailureKind::Permanent
            }
        }
        500..=599 => FailureKind::Server,
        _ => FailureKind::Permanent,
    }
}

/// Decides after attempt number `attempt` (1-based) failed with `status`. `now_unix` is the current
/// time in seconds; `jitter` a draw in `[0, 1)`.
pub fn decide(
    policy: &RetryPolicy,
    status: u16,
    headers: &RateHeaders,
    body: &str,
    attempt: u32,
    now_unix: u64,
    jitter: f64,
) -> RetryDecision {
    let kind = classify(status, headers, body);
    decide_kind(policy, kind, headers, attempt, now_unix, jitter)
}

/// As [`decide`], for a transport error (connection refused/reset, timeout): retried like a 5xx.
pub fn decide_transport(policy: &RetryPolicy, attempt: u32, jitter: f64) -> RetryDecision {
    decide_kind(
        policy,
        FailureKind::Server,
        &RateHeaders::default(),
        attempt,
        0,
        jitter,
    )
}

fn decide_kind(
    policy: &RetryPolicy,
    kind: FailureKind,
    headers: &RateHeaders,
    attempt: u32,
    now_unix: u64,
    jitter: f64,
) -> RetryDecision {
    let wait = match kind {
        FailureKind::Permanent => return RetryDecision::GiveUp(GiveUp::Permanent),
        FailureKind::Server => backoff(policy, attempt, jitter),
        FailureKind::RateLimited => match hint(headers, now_unix) {
            Some(h) => h + Duration::from_millis(jitter_millis(jitter, 1000)),
            None => policy.secondary_min.max(backoff(policy, attempt, jitter)),
        },
    };
    if attempt >= policy.max_attempts {
        return RetryDecision::GiveUp(GiveUp::Exhausted);
    }
    if wait > policy.max_wait {
        return RetryDecision::GiveUp(GiveUp::WaitTooLong(wait));
    }
    RetryDecision::RetryAfter(match policy.cap {
        Some(cap) => wait.min(cap),
        None => wait,
    })
}

/// `retry-after` (seconds) wins; otherwise `x-ratelimit-reset` when the budget is spent.
fn hint(headers: &RateHeaders, now_unix: u64) -> Option<Duration> {
    if let Some(secs) = headers
        .retry_after
        .as_deref()
        .and_then(|s| s.parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    if let Some(when) = headers
        .retry_after
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
    {
        let at = u64::try_from(when.timestamp()).unwrap_or(0);
        return Some(Duration::from_secs(at.saturating_sub(now_unix)));
    }
    if headers.ratelimit_remaining.as_deref() == Some("0") {
        let reset = headers.ratelimit_reset.as_deref()?.parse::<u64>().ok()?;
        // One extra second: the reset time is rounded down to the second.
        return Some(Duration::from_secs(reset.saturating_sub(now_unix) + 1));
    }
    None
}

/// `base · 2^(attempt−1)`, capped at `max_backoff`, scaled by `1 + jitter` ("equal jitter" upward so
/// concurrent jobs spread out without ever waiting less than the base).
fn backoff(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let raw = policy
        .base_delay
        .saturating_mul(1u32 << exp)
        .min(policy.max_backoff);
    let j = jitter.clamp(0.0, 1.0);
    raw + raw.mul_f64(j).min(policy.max_backoff)
}

fn jitter_millis(jitter: f64, span: u64) -> u64 {
    let j = jitter.clamp(0.0, 1.0);
    // Truncation is intended: a sub-millisecond jitter does not matter.
    let span_f = span as f64;
    let ms = (span_f * j).floor();
    if ms.is_finite() && ms >= 0.0 {
        ms as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn h(retry_after: Option<&str>, remaining: Option<&str>, reset: Option<&str>) -> RateHeaders {
        RateHeaders {
            retry_after: retry_after.map(str::to_string),
            ratelimit_remaining: remaining.map(str::to_string),
            ratelimit_reset: reset.map(str::to_string),
        }
    }

    /// 401/404/422 and a permissions 403 are never retried.
    #[test]
    fn permanent_statuses_give_up_at_once() {
        for s in [400u16, 401, 404, 406, 409, 422] {
            assert_eq!(
                decide(&policy(), s, &h(None, None, None), "", 1, 0, 0.5),
                RetryDecision::GiveUp(GiveUp::Permanent),
                "{s}"
            );
        }
        let body = r#"{"message":"Resource not accessible by integration"}"#;
        assert_eq!(
            decide(
                &policy(),
                403,
                &h(None, Some("4999"), None),
                body,
                1,
                0,
                0.0
            ),
            RetryDecision::GiveUp(GiveUp::Permanent)
        );
    }

    /// 5xx backs off exponentially with upward jitter, and stops after max_attempts.
    #[test]
    fn server_errors_back_off_exponentially() {
        let p = policy();
        let d = |attempt, j| decide(&p, 502, &RateHeaders::default(), "", attempt, 0, j);
        assert_eq!(d(1, 0.0), RetryDecision::RetryAfter(Duration::from_secs(1)));
        assert_eq!(d(2, 0.0), RetryDecision::RetryAfter(Duration::from_secs(2)));
        assert_eq!(d(3, 0.5), RetryDecision::RetryAfter(Duration::from_secs(6)));
        assert_eq!(d(6, 0.0), RetryDecision::GiveUp(GiveUp::Exhausted));
        assert_eq!(
            decide_transport(&p, 1, 0.0),
            RetryDecision::RetryAfter(Duration::from_secs(1))
        );
    }

    /// retry-after is honoured to the second, on 403 secondary limits and 429.
    #[test]
    fn retry_after_is_honoured() {
        let body = r#"{"message":"You have exceeded a secondary rate limit."}"#;
        assert_eq!(
            decide(&policy(), 403, &h(Some("7"), None, None), body, 1, 0, 0.0),
            RetryDecision::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            decide(&policy(), 429, &h(Some("3"), None, None), "", 1, 0, 0.999),
            RetryDecision::RetryAfter(Duration::from_millis(3999))
        );
    }

    /// A spent primary limit waits until x-ratelimit-reset.
    #[test]
    fn ratelimit_reset_is_honoured() {
        let d = decide(
            &policy(),
            403,
            &h(None, Some("0"), Some("1000120")),
            "API rate limit exceeded",
            1,
            1_000_000,
            0.0,
        );
        assert_eq!(d, RetryDecision::RetryAfter(Duration::from_secs(121)));
        let far = decide(
            &policy(),
            403,
            &h(None, Some("0"), Some("1003600")),
            "",
            1,
            1_000_000,
            0.0,
        );
        assert!(matches!(far, RetryDecision::GiveUp(GiveUp::WaitTooLong(_))));
    }

    /// A secondary limit with no hint waits at least 60 s.
    #[test]
    fn secondary_limit_without_hint_waits_a_minute() {
        let body = r#"{"message":"You have exceeded a secondary rate limit"}"#;
        match decide(&policy(), 403, &RateHeaders::default(), body, 1, 0, 0.3) {
            RetryDecision::RetryAfter(w) => assert!(w >= Duration::from_secs(60)),
            other => panic!("expected a retry, got {other:?}"),
        }
        assert!(
            matches!(decide(&policy(), 429, &RateHeaders::default(), "", 2, 0, 0.0), RetryDecision::RetryAfter(w) if w >= Duration::from_secs(60))
        );
    }

    /// The test cap clamps every wait, hints included, without changing what is retried.
    #[test]
    fn cap_clamps_waits() {
        let p = RetryPolicy {
            cap: Some(Duration::from_millis(10)),
            ..policy()
        };
        assert_eq!(
            decide(&p, 429, &h(Some("120"), None, None), "", 1, 0, 0.0),
            RetryDecision::RetryAfter(Duration::from_millis(10))
        );
        assert_eq!(
            decide(&p, 404, &RateHeaders::default(), "", 1, 0, 0.0),
            RetryDecision::GiveUp(GiveUp::Permanent)
        );
    }
}

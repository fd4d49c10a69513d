//! The environment's Lease across apiserver outages: when a waiting run may take it over, and how
//! the holder keeps it.
//!
//! Owns: the takeover rule (a Lease held by another run is free only once the *same* record — same
//! resourceVersion — has gone unrenewed for its full duration on this run's own clock; a renewTime
//! that merely looks old by the wall clock proves nothing), and the renewal task (each renewal
//! retried until the Lease would expire, then the guard says it is lost). Must not decide what a run
//! does once its Lease is lost: that is the deploy's and the blue-green runner's call.

use crate::deploy::cluster::{LeaseLoss, WritePolicy, retry_write};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One version of another run's Lease as a waiting run saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub holder: String,
    pub resource_version: String,
    /// `leaseDurationSeconds` of that version.
    pub duration: Duration,
    /// When this run first saw this version (its own monotonic clock).
    pub first_seen: Instant,
}

/// What a waiting run does about the Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// Free (no holder, or ours already): take it.
    Take,
    /// Held and renewed since last seen (or seen for the first time): keep waiting from `since`.
    Wait(Sighting),
    /// The same version went unrenewed for its full duration since we first saw it: the holder
    /// stopped (its own guard gave up at least as early), take it over.
    TakeOver { previous: String },
}

/// Pure: the takeover rule. `holder` / `resource_version` / `duration` are the Lease just read,
/// `last` the previous sighting, `me` this run's identity.
pub fn takeover(
    holder: &str,
    resource_version: &str,
    duration: Duration,
    me: &str,
    last: Option<&Sighting>,
    now: Instant,
) -> Takeover {
    if holder.is_empty() || holder == me {
        return Takeover::Take;
    }
    match last {
        Some(l) if l.resource_version == resource_version && l.holder == holder => {
            if now.duration_since(l.first_seen) >= l.duration {
                Takeover::TakeOver {
                    previous: holder.to_string(),
                }
            } else {
                Takeover::Wait(l.clone())
            }
        }
        _ => Takeover::Wait(Sighting {
            holder: holder.to_string(),
            resource_version: resource_version.to_string(),
            duration,
            first_seen: now,
        }),
    }
}

/// `MicroTime` on the wire.
pub fn micro_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Keeps the Lease `name` for `me` until aborted: a renewal every `every`, each retried (transient
/// failures, 409 with a fresh read) until the Lease would expire. Sets `lost` and stops when
/// another holder has it or no renewal landed within `duration` of the last one that did (measured
/// from when that renewal was sent, so this run gives up no later than a waiting run may take over).
pub async fn keep(
    api: Api<Lease>,
    name: String,
    me: String,
    duration: Duration,
    lost: Arc<Mutex<Option<LeaseLoss>>>,
) {
    let every = (duration / 3).max(Duration::from_millis(200));
    let client = kube::Client::from(api.clone());
    let mut last_ok = Instant::now();
    let set = |loss: LeaseLoss| {
        tracing::error!(lease = %name, %loss, "lost the deploy lease");
        if let Ok(mut l) = lost.lock() {
            *l = Some(loss);
        }
    };
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        let left = (last_ok + duration).saturating_duration_since(sent);
        let policy = WritePolicy {
            budget: left,
            max_delay: Duration::from_millis(500),
            ..WritePolicy::DEFAULT
        };
        let what = format!("renew lease {name}");
        let renewed = retry_write(&what, policy, &client, |_| {
            let (api, name, me) = (api.clone(), name.clone(), me.clone());
            async move {
                let mut current = api.get(&name).await?;
                let h = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                if h != me {
                    return Ok(Some(h));
                }
                if let Some(spec) = current.spec.as_mut() {
                    spec.renew_time = serde_json::from_value(json!(micro_now()))
                        .map_err(kube::Error::SerdeError)?;
                }
                // The resourceVersion read above: a concurrent change is a 409, read again.
                api.replace(&name, &PostParams::default(), &current).await?;
                Ok(None)
            }
        })
        .await;
        match renewed {
            Ok((None, _)) => last_ok = sent,
            Ok((Some(holder), _)) => return set(LeaseLoss::TakenOver { holder }),
            Err(e) if Instant::now() >= last_ok + duration => {
                tracing::warn!(lease = %name, error = %e, "the last lease renewal failed");
                return set(LeaseLoss::Expired {
                    unrenewed_for: duration,
                });
            }
            Err(e) => tracing::warn!(lease = %name, error = %e, "lease renewal failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects the takeover rule across outages: a Lease is taken over only after the same version
    /// went unrenewed for its full duration on our clock; a renewal restarts the wait; own or
    /// unheld Leases are free at once.
    #[test]
    fn takeover_waits_a_full_duration_per_version() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(takeover("", "1", d, "me", None, t0), Takeover::Take);
        assert_eq!(takeover("me", "1", d, "me", None, t0), Takeover::Take);
        let Takeover::Wait(first) = takeover("a", "1", d, "me", None, t0) else {
            panic!("a fresh sighting waits")
        };
        // Same version, not yet a full duration: wait (however old renewTime looks).
        assert!(matches!(
            takeover(
                "a",
                "1",
                d,
                "me",
                Some(&first),
                t0 + Duration::from_secs(14)
            ),
            Takeover::Wait(_)
        ));
        // Renewed meanwhile: the wait starts over from that sighting.
        let later = t0 + Duration::from_secs(14);
        let Takeover::Wait(second) = takeover("a", "2", d, "me", Some(&first), later) else {
            panic!("a renewal restarts the wait")
        };
        assert_eq!(second.first_seen, later);
        assert!(matches!(
            takeover(
                "a",
                "2",
                d,
                "me",
                Some(&second),
                later + Duration::from_secs(10)
            ),
            Takeover::Wait(_)
        ));
        assert_eq!(
            takeover("a", "2", d, "me", Some(&second), later + d),
            Takeover::TakeOver {
                previous: "a".into()
            }
        );
    }
}

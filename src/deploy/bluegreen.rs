//! The blue-green state machine, as a pure function.
//!
//! Owns: the record kept on the cluster (`BgState`), and `step(state, config, event) → (state,
//! action)` for deploys, resume/undo after a crash, cancellation, manual `rollback`, `promote` and
//! `cleanup`. Must not touch: the cluster, clocks, Prometheus — the adapter executes each `Action`,
//! observes what happened, and feeds it back as an `Event` (times arrive inside events).
//!
//! Invariant kept by every transition: the Service selector only ever points at a colour that was
//! Ready and passed its health checks, and a failure before the switch never touches the selector.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

impl std::fmt::Display for Color {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a release stands. Persisted on the cluster after every transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum Phase {
    /// Nothing ever deployed.
    Empty,
    /// The idle colour is being applied and watched to Ready.
    Deploying,
    /// The idle colour is Ready; health checks through its preview route.
    Checking,
    /// Paused before the switch until `promote`.
    AwaitingPromote,
    /// Traffic partly on the new colour at shift step `step` (index into the steps).
    Shifting { step: usize },
    /// The selector points at the new colour; triggers are watched.
    Monitoring,
    /// Traffic is being returned to the previous colour.
    RollingBack { cause: RevertCause },
    /// A run had to end (cancelled, out of time) before its revert landed: traffic may still be on
    /// the failed colour. The next run of any command finishes the revert before anything else.
    RevertPending { cause: RevertCause },
    /// A window (`step: Some(n)` = shift step n, `None` = monitoring after the switch) ended without
    /// enough data to judge, and the policy says pause: traffic stays, `promote` accepts the release
    /// as it stands, `rollback` reverts it.
    Unproven { step: Option<usize> },
    /// `rollback` command: the previous colour is scaled up, checked, then switched to.
    /// (`ready`: the previous colour is Ready and being health-checked.)
    ManualRollback { ready: bool },
    /// Stable: the release passed (or a manual rollback / first deploy finished).
    Succeeded,
    /// Stable: the new colour was rolled back; traffic on the previous colour.
    RolledBack,
    /// Stable: the new colour never got ready / healthy; traffic untouched.
    Failed,
    /// Stable: cancelled; traffic on a colour that passed its checks.
    Cancelled,
}

impl Phase {
    /// No release in flight: a new one may start without undoing anything.
    pub fn is_stable(self) -> bool {
        match self {
            Phase::Empty
            | Phase::Succeeded
            | Phase::RolledBack
            | Phase::Failed
            | Phase::Cancelled => true,
            Phase::Deploying
            | Phase::Checking
            | Phase::AwaitingPromote
            | Phase::Shifting { .. }
            | Phase::Monitoring
            | Phase::RollingBack { .. }
            | Phase::RevertPending { .. }
            | Phase::Unproven { .. }
            | Phase::ManualRollback { .. } => false,
        }
    }
}

/// Why traffic is being returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevertCause {
    /// A trigger fired (its name is in `BgState::reason`).
    Trigger,
    /// Cancellation.
    Cancel,
    /// A re-run found a release that died before it was proven.
    Resume,
}

/// The record on the cluster (`ARCHITECTURE.md` §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgState {
    /// The colour the Service selects (None before the first deploy).
    pub active: Option<Color>,
    /// The last known-good colour before `active`, kept scaled until `keep_until`.
    pub previous: Option<Color>,
    /// The colour a release in flight deploys (or the one last rolled back / failed).
    pub target: Option<Color>,
    pub phase: Phase,
    /// The image of the release in flight / last released.
    pub image: Option<String>,
    /// The image `active` runs (known-good).
    pub active_image: Option<String>,
    /// The image `previous` runs.
    pub previous_image: Option<String>,
    pub switched_at: Option<DateTime<Utc>>,
    pub keep_until: Option<DateTime<Utc>>,
    pub check_run_id: Option<u64>,
    pub deployment_id: Option<u64>,
    /// Why the last release ended as it did (trigger name, failure reason).
    pub reason: Option<String>,
}

impl Default for BgState {
    fn default() -> Self {
        Self {
            active: None,
            previous: None,
            target: None,
            phase: Phase::Empty,
            image: None,
            active_image: None,
            previous_image: None,
            switched_at: None,
            keep_until: None,
            check_run_id: None,
            deployment_id: None,
            reason: None,
        }
    }
}

/// How traffic is shifted before the final switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ShiftKind {
    None,
    NginxCanary,
    ReplicaRatio,
}

/// What the machine needs from the policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgConfig {
    pub replicas: u32,
    pub shift: ShiftKind,
    /// Percent on the new colour per step; a trailing 100 is the selector switch itself.
    pub steps: Vec<u8>,
    pub manual_promote: bool,
    pub keep_failed: bool,
    #[serde(with = "crate::policy::model::duration_text")]
    pub monitor: Duration,
    #[serde(with = "crate::policy::model::duration_text")]
    pub keep_previous: Duration,
}

impl BgConfig {
    /// The steps actually walked before the switch (below 100 %, only with a router or ratio mode).
    pub fn shift_steps(&self) -> Vec<u8> {
        match self.shift {
            ShiftKind::None => Vec::new(),
            ShiftKind::NginxCanary | ShiftKind::ReplicaRatio => self
                .steps
                .iter()
                .copied()
                .filter(|p| *p > 0 && *p < 100)
                .collect(),
        }
    }
}

/// Replicas per colour for a replica-ratio step: the new colour gets `percent` of `total` (at least
/// one while shifting), the old keeps the rest (at least one, so it still serves).
pub fn ratio_replicas(total: u32, percent: u8) -> (u32, u32) {
    let total = total.max(2);
    let new = (u64::from(total) * u64::from(percent)).div_ceil(100) as u32;
    let new = new.clamp(1, total - 1);
    (total - new, new)
}

/// What happened, as the adapter saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// `deploy` started with this image (state already read, Lease held).
    Deploy {
        image: String,
        now: DateTime<Utc>,
    },
    /// The idle colour's Deployment is Ready.
    Ready,
    /// It did not get Ready within the deadline (reason for the report).
    NotReady {
        reason: String,
    },
    HealthPassed,
    HealthFailed {
        reason: String,
    },
    /// A shift step was held for its pause with every trigger quiet.
    StepHeld,
    /// The selector patch returned.
    Switched {
        now: DateTime<Utc>,
    },
    /// The monitoring window elapsed with every trigger quiet.
    MonitorPassed {
        now: DateTime<Utc>,
    },
    /// A trigger fired (during a shift step or monitoring).
    TriggerFired {
        trigger: String,
    },
    /// Traffic is back on the previous colour (selector reverted / weights reset).
    Reverted,
    /// The run must end (cancelled, its time is up) while its revert has not landed.
    RevertAbandoned {
        reason: String,
    },
    /// A window ended with too few samples carrying data to judge (`detail` says which trigger);
    /// `then` is the policy's answer.
    Inconclusive {
        detail: String,
        then: crate::policy::model::InconclusivePolicy,
    },
    /// SIGTERM / SIGINT / workflow cancelled.
    Cancel,
    /// `promote` command.
    Promote,
    /// `rollback` command.
    ManualRollback {
        now: DateTime<Utc>,
    },
    /// The colour being rolled back to (manual) is scaled up and Ready.
    PreviousReady,
    /// `cleanup` command.
    Cleanup {
        now: DateTime<Utc>,
    },
    /// A scale-down the action asked for finished.
    ScaledDown,
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Released (or rolled back manually, or cleaned up): exit 0.
    Succeeded,
    /// Automatic rollback: exit 1.
    RolledBack { trigger: String },
    /// Never Ready / unhealthy: traffic untouched, exit 1.
    Failed { reason: String },
    /// Cancelled: traffic on a checked colour.
    Cancelled,
    /// Nothing to do (promote with nothing paused, cleanup before keep_until, …).
    Nothing { reason: String },
    /// The request makes no sense in this state (rollback with no previous colour): exit 2.
    Refused { reason: String },
    /// The revert did not land before the run had to end: traffic may be on the failed colour, the
    /// record says `revert-pending`, the next run finishes it. Exit 2.
    RevertPending { reason: String },
}

/// The next thing the adapter does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// Server-side apply `<app>-<color>` with `image` and `replicas`, watch it to Ready.
    DeployIdle {
        color: Color,
        image: String,
        replicas: u32,
    },
    /// Health-check `color` through its preview Service / URL.
    HealthCheck { color: Color },
    /// Put `percent` of traffic on `to` (weight annotation or replica ratio), hold for the pause
    /// while evaluating triggers against `to`.
    Shift {
        step: usize,
        percent: u8,
        to: Color,
        from: Color,
    },
    /// Patch the Service selector to `to` (one PATCH), reset any shift.
    Switch { to: Color },
    /// Watch triggers against `color` for `window`.
    Monitor { color: Color, window: Duration },
    /// Traffic back on `to` at once (selector + weights), then scale `scale_down` to 0 if any.
    Revert {
        to: Color,
        scale_down: Option<Color>,
    },
    /// Stop the idle colour without touching traffic (failure before the switch), then finish.
    Abandon { color: Color, outcome: Outcome },
    /// Pause until a `promote` run.
    Pause,
    /// Scale `color` back to `replicas` and watch it Ready (manual rollback).
    ScaleUp { color: Color, replicas: u32 },
    /// Scale `color` to 0 (cleanup).
    ScaleDown { color: Color },
    /// Nothing more to do; persist and exit.
    Finish(Outcome),
}

/// One step of the machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub state: BgState,
    pub action: Action,
}

fn finish(state: BgState, outcome: Outcome) -> Transition {
    Transition {
        state,
        action: Action::Finish(outcome),
    }
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Start deploying `image` on the idle colour from a stable state.
fn begin(mut s: BgState, cfg: &BgConfig, image: String) -> Transition {
    let color = s.active.map_or(Color::Blue, Color::other);
    s.target = Some(color);
    s.phase = Phase::Deploying;
    // The idle colour is the kept previous one (if any): deploying over it gives it up.
    s.previous = None;
    s.previous_image = None;
    s.keep_until = None;
    s.image = Some(image.clone());
    Transition {
        state: s,
        action: Action::DeployIdle {
            color,
            image,
            replicas: cfg.replicas,
        },
    }
}

/// After health checks passed (or `promote`): the first shift step, or the switch.
fn after_checks(mut s: BgState, cfg: &BgConfig, target: Color, skip_pause: bool) -> Transition {
    if s.active.is_none() {
        // First deploy ever: the Service is created on blue; nothing to shift from, nothing to
        // roll back to, so no monitoring either.
        s.phase = Phase::Monitoring;
        return Transition {
            state: s,
            action: Action::Switch { to: target },
        };
    }
    if cfg.manual_promote && !skip_pause {
        s.phase = Phase::AwaitingPromote;
        return Transition {
            state: s,
            action: Action::Pause,
        };
    }
    shift_or_switch(s, cfg, target, 0)
}

fn shift_or_switch(mut s: BgState, cfg: &BgConfig, target: Color, step: usize) -> Transition {
    let steps = cfg.shift_steps();
    match steps.get(step) {
        Some(&percent) => {
            s.phase = Phase::Shifting { step };
            Transition {
                state: s,
                action: Action::Shift {
                    step,
                    percent,
                    to: target,
                    from: target.other(),
                },
            }
        }
        None => {
            s.phase = Phase::Monitoring;
            Transition {
                state: s,
                action: Action::Switch { to: target },
            }
        }
    }
}

/// Traffic back to the last checked colour; the failed one scaled down unless kept for debugging.
fn revert(
    mut s: BgState,
    cfg: &BgConfig,
    back_to: Color,
    failed: Color,
    cause: RevertCause,
) -> Transition {
    s.phase = Phase::RollingBack { cause };
    let scale_down = (!cfg.keep_failed).then_some(failed);
    Transition {
        state: s,
        action: Action::Revert {
            to: back_to,
            scale_down,
        },
    }
}

/// The release is proven (its window passed, or `promote` accepted an unproven one).
fn passed(mut s: BgState, cfg: &BgConfig, now: DateTime<Utc>) -> Transition {
    s.phase = Phase::Succeeded;
    s.previous_image = std::mem::replace(&mut s.active_image, s.image.clone());
    s.reason = None;
    s.keep_until = s.previous.map(|_| now + chrono_dur(cfg.keep_previous));
    finish(s, Outcome::Succeeded)
}

/// Finish a revert an earlier run left: back to the colour that was live before the release.
fn pending_revert(s: BgState, cfg: &BgConfig, cause: RevertCause) -> Transition {
    match (s.target, s.active, s.previous) {
        (Some(t), Some(a), _) if t != a => revert(s, cfg, a, t, cause),
        (Some(t), _, Some(p)) => revert(s, cfg, p, t, cause),
        _ => inconsistent(s),
    }
}

/// A window without enough data: never a pass. Roll back, or pause for `promote` / `rollback`.
fn inconclusive(
    mut s: BgState,
    cfg: &BgConfig,
    step: Option<usize>,
    detail: String,
    then: crate::policy::model::InconclusivePolicy,
) -> Transition {
    use crate::policy::model::InconclusivePolicy;
    s.reason = Some(format!("inconclusive: {detail}"));
    match then {
        InconclusivePolicy::Pause => {
            s.phase = Phase::Unproven { step };
            Transition {
                state: s,
                action: Action::Pause,
            }
        }
        InconclusivePolicy::Rollback => match (step, s.target, s.active, s.previous) {
            // Shifting: the selector never left the old colour.
            (Some(_), Some(t), Some(a), _) => revert(s, cfg, a, t, RevertCause::Trigger),
            (None, Some(t), _, Some(p)) => revert(s, cfg, p, t, RevertCause::Trigger),
            _ => inconsistent(s),
        },
    }
}

/// The machine. `state` is what the cluster holds; the result is what to persist and do next.
pub fn step(state: &BgState, cfg: &BgConfig, event: Event) -> Transition {
    use RevertCause::{Cancel, Resume, Trigger};
    let mut s = state.clone();
    let (target, active, previous) = (s.target, s.active, s.previous);
    match (s.phase, event) {
        // ---- deploy from a stable state (or a manual rollback that died before its switch)
        (Phase::ManualRollback { .. }, Event::Deploy { image, .. }) => {
            s.phase = Phase::Succeeded;
            begin(s, cfg, image)
        }
        (p, Event::Deploy { image, .. }) if p.is_stable() => begin(s, cfg, image),

        // ---- deploy while a previous run died mid-way: finish or undo first
        (
            Phase::Deploying | Phase::Checking | Phase::AwaitingPromote,
            Event::Deploy { image, .. },
        ) => {
            // Traffic was never moved: redeploying the idle colour is both the undo and the resume.
            begin(s, cfg, image)
        }
        (Phase::Shifting { .. }, Event::Deploy { .. }) => match (target, active) {
            (Some(t), Some(a)) => revert(s, cfg, a, t, Resume),
            _ => inconsistent(s),
        },
        (Phase::Monitoring, Event::Deploy { image, .. }) => match (target, active, previous) {
            // Switched, same image: watch it again for a full window (the samples died with the run).
            (Some(t), Some(a), _) if t == a && s.image.as_deref() == Some(image.as_str()) => {
                Transition {
                    state: s,
                    action: Action::Monitor {
                        color: t,
                        window: cfg.monitor,
                    },
                }
            }
            // Switched but never proven, and now another image: back to the previous colour first.
            (Some(t), Some(a), Some(p)) if t == a => revert(s, cfg, p, t, Resume),
            // Died between persisting Monitoring and the switch: traffic never moved.
            (Some(_), Some(_), _) | (Some(_), None, _) => begin(s, cfg, image),
            (None, _, _) => inconsistent(s),
        },
        // A revert that did not land outranks every command: finish it first.
        (
            Phase::RollingBack { cause } | Phase::RevertPending { cause },
            Event::Deploy { .. }
            | Event::ManualRollback { .. }
            | Event::Cleanup { .. }
            | Event::Promote,
        ) => pending_revert(s, cfg, cause),
        (Phase::RollingBack { cause }, Event::RevertAbandoned { reason }) => {
            s.phase = Phase::RevertPending { cause };
            finish(s, Outcome::RevertPending { reason })
        }
        // Paused on an inconclusive window: a new deploy undoes it first, like a dead run's.
        (Phase::Unproven { .. }, Event::Deploy { .. }) => match (target, active, previous) {
            (Some(t), Some(a), _) if t != a => revert(s, cfg, a, t, Resume),
            (Some(t), _, Some(p)) => revert(s, cfg, p, t, Resume),
            _ => inconsistent(s),
        },
        (Phase::Unproven { step }, Event::Promote) => match (step, target) {
            (Some(n), Some(t)) => shift_or_switch(s, cfg, t, n + 1),
            (None, Some(_)) => {
                let now = s.switched_at.unwrap_or_default();
                passed(s, cfg, now)
            }
            (_, None) => inconsistent(s),
        },
        (Phase::Unproven { .. }, Event::ManualRollback { .. }) => {
            s.reason = Some("manual rollback of an unproven release".into());
            match (target, active, previous) {
                (Some(t), Some(a), _) if t != a => revert(s, cfg, a, t, Trigger),
                (Some(t), _, Some(p)) => revert(s, cfg, p, t, Trigger),
                _ => inconsistent(s),
            }
        }
        (Phase::Shifting { step }, Event::Inconclusive { detail, then }) => {
            inconclusive(s, cfg, Some(step), detail, then)
        }
        (Phase::Monitoring, Event::Inconclusive { detail, then }) => {
            inconclusive(s, cfg, None, detail, then)
        }

        // ---- the idle colour
        (Phase::Deploying, Event::Ready) => match target {
            Some(t) => {
                s.phase = Phase::Checking;
                Transition {
                    state: s,
                    action: Action::HealthCheck { color: t },
                }
            }
            None => inconsistent(s),
        },
        (Phase::Deploying, Event::NotReady { reason })
        | (Phase::Checking, Event::HealthFailed { reason }) => match target {
            Some(t) => {
                s.phase = Phase::Failed;
                s.reason = Some(reason.clone());
                s.image = s.active_image.clone();
                Transition {
                    state: s,
                    action: Action::Abandon {
                        color: t,
                        outcome: Outcome::Failed { reason },
                    },
                }
            }
            None => inconsistent(s),
        },
        (Phase::Checking, Event::HealthPassed) => match target {
            Some(t) => after_checks(s, cfg, t, false),
            None => inconsistent(s),
        },
        (Phase::AwaitingPromote, Event::Promote) => match target {
            Some(t) => after_checks(s, cfg, t, true),
            None => inconsistent(s),
        },
        (_, Event::Promote) => finish(
            s,
            Outcome::Nothing {
                reason: "no release is paused before the switch".into(),
            },
        ),

        // ---- shifting
        (Phase::Shifting { step: n }, Event::StepHeld) => match target {
            Some(t) => shift_or_switch(s, cfg, t, n + 1),
            None => inconsistent(s),
        },
        (Phase::Shifting { .. }, Event::TriggerFired { trigger }) => match (target, active) {
            (Some(t), Some(a)) => {
                s.reason = Some(trigger);
                revert(s, cfg, a, t, Trigger)
            }
            _ => inconsistent(s),
        },

        // ---- switch and monitoring
        (Phase::Monitoring, Event::Switched { now }) => match target {
            Some(t) => {
                let first = active.is_none();
                if active != Some(t) {
                    s.previous = active;
                }
                s.active = Some(t);
                s.switched_at = Some(now);
                if first {
                    s.phase = Phase::Succeeded;
                    s.active_image = s.image.clone();
                    finish(s, Outcome::Succeeded)
                } else {
                    Transition {
                        state: s,
                        action: Action::Monitor {
                            color: t,
                            window: cfg.monitor,
                        },
                    }
                }
            }
            None => inconsistent(s),
        },
        (Phase::Monitoring, Event::MonitorPassed { now }) => passed(s, cfg, now),
        (Phase::Monitoring, Event::TriggerFired { trigger }) => match (target, previous) {
            (Some(t), Some(p)) => {
                s.reason = Some(trigger);
                revert(s, cfg, p, t, Trigger)
            }
            _ => inconsistent(s),
        },

        // ---- an automatic revert completed
        (Phase::RollingBack { cause }, Event::Reverted) => {
            if let (Some(t), Some(a)) = (target, active)
                && t == a
            {
                s.active = s.previous;
                s.previous = None;
            }
            s.keep_until = None;
            s.image = s.active_image.clone();
            match cause {
                Trigger => {
                    s.phase = Phase::RolledBack;
                    let trigger = s.reason.clone().unwrap_or_default();
                    finish(s, Outcome::RolledBack { trigger })
                }
                Cancel => {
                    s.phase = Phase::Cancelled;
                    finish(s, Outcome::Cancelled)
                }
                Resume => {
                    s.phase = Phase::RolledBack;
                    s.reason = Some("an earlier run stopped before the release was proven".into());
                    finish(
                        s,
                        Outcome::Nothing {
                            reason: "an unfinished release was undone".into(),
                        },
                    )
                }
            }
        }

        // ---- cancellation: leave traffic on a colour that passed its checks
        (Phase::Deploying | Phase::Checking | Phase::AwaitingPromote, Event::Cancel) => {
            match target {
                Some(t) => {
                    s.phase = Phase::Cancelled;
                    s.image = s.active_image.clone();
                    if active.is_none() {
                        // First deploy: nothing serves yet; stopping blue changes no traffic.
                        s.target = None;
                    }
                    Transition {
                        state: s,
                        action: Action::Abandon {
                            color: t,
                            outcome: Outcome::Cancelled,
                        },
                    }
                }
                None => inconsistent(s),
            }
        }
        (Phase::Shifting { .. }, Event::Cancel) => match (target, active) {
            (Some(t), Some(a)) => revert(s, cfg, a, t, Cancel),
            _ => inconsistent(s),
        },
        (Phase::Monitoring, Event::Cancel) => match (target, active, previous) {
            (Some(t), Some(a), Some(p)) if t == a => revert(s, cfg, p, t, Cancel),
            (Some(t), Some(a), _) if t != a => revert(s, cfg, a, t, Cancel),
            // First deploy switched: blue is the only colour and it passed its checks.
            _ => {
                s.phase = Phase::Cancelled;
                finish(s, Outcome::Cancelled)
            }
        },
        (Phase::RollingBack { .. }, Event::Cancel) => match (target, active, previous) {
            (Some(t), Some(a), _) if t != a => revert(s, cfg, a, t, Cancel),
            (Some(t), _, Some(p)) => revert(s, cfg, p, t, Cancel),
            _ => inconsistent(s),
        },
        (Phase::ManualRollback { .. }, Event::Cancel) => {
            // The selector was not touched yet (the switch ends the phase).
            s.phase = Phase::Cancelled;
            finish(s, Outcome::Cancelled)
        }
        (p, Event::Cancel) if p.is_stable() => finish(
            s,
            Outcome::Nothing {
                reason: "no release in flight".into(),
            },
        ),

        // ---- manual rollback: to the previous known-good colour, scaled up and checked first
        (Phase::Succeeded | Phase::Cancelled, Event::ManualRollback { now }) => {
            match (active, previous) {
                (Some(_), Some(p)) => {
                    s.phase = Phase::ManualRollback { ready: false };
                    s.keep_until = Some(now + chrono_dur(cfg.keep_previous));
                    Transition {
                        state: s,
                        action: Action::ScaleUp {
                            color: p,
                            replicas: cfg.replicas,
                        },
                    }
                }
                _ => finish(
                    s,
                    Outcome::Refused {
                        reason: "there is no previous colour to roll back to".into(),
                    },
                ),
            }
        }
        (Phase::ManualRollback { ready: false }, Event::Ready) => match previous {
            Some(p) => {
                s.phase = Phase::ManualRollback { ready: true };
                Transition {
                    state: s,
                    action: Action::HealthCheck { color: p },
                }
            }
            None => inconsistent(s),
        },
        (Phase::ManualRollback { ready: true }, Event::HealthPassed) => match previous {
            Some(p) => Transition {
                state: s,
                action: Action::Switch { to: p },
            },
            None => inconsistent(s),
        },
        (Phase::ManualRollback { ready: true }, Event::Switched { now }) => {
            s.active = previous;
            s.previous = active;
            s.target = previous;
            s.switched_at = Some(now);
            std::mem::swap(&mut s.previous_image, &mut s.active_image);
            s.image = s.active_image.clone();
            s.phase = Phase::Succeeded;
            s.reason = Some("manual rollback".into());
            finish(s, Outcome::Succeeded)
        }
        (
            Phase::ManualRollback { .. },
            Event::NotReady { reason } | Event::HealthFailed { reason },
        ) => {
            s.phase = Phase::Succeeded;
            s.keep_until = state.keep_until;
            finish(
                s,
                Outcome::Failed {
                    reason: format!("previous colour not healthy, traffic kept: {reason}"),
                },
            )
        }
        (Phase::Empty, Event::ManualRollback { .. }) => finish(
            s,
            Outcome::Refused {
                reason: "nothing was released here yet: there is no colour to roll back to".into(),
            },
        ),
        (_, Event::ManualRollback { .. }) => finish(
            s,
            Outcome::Refused {
                reason: "a release is in flight or was rolled back already".into(),
            },
        ),

        // ---- cleanup: scale down the non-active colour once its keep window passed
        (p, Event::Cleanup { now }) if p.is_stable() => {
            match (active, s.keep_until, previous, target) {
                (Some(a), Some(k), _, _) if k <= now => {
                    s.previous = None;
                    s.previous_image = None;
                    s.keep_until = None;
                    Transition {
                        state: s,
                        action: Action::ScaleDown { color: a.other() },
                    }
                }
                (Some(_), Some(_), _, _) => finish(
                    s,
                    Outcome::Nothing {
                        reason: "the previous colour is still inside its keep window".into(),
                    },
                ),
                // A rolled-back / failed colour kept for debugging: nothing guards it.
                (Some(a), None, None, Some(t)) if t != a => {
                    s.target = Some(a);
                    Transition {
                        state: s,
                        action: Action::ScaleDown { color: t },
                    }
                }
                _ => finish(
                    s,
                    Outcome::Nothing {
                        reason: "nothing to clean up".into(),
                    },
                ),
            }
        }
        (_, Event::Cleanup { .. }) => finish(
            s,
            Outcome::Nothing {
                reason: "a release is in flight".into(),
            },
        ),
        (_, Event::ScaledDown) => finish(s, Outcome::Succeeded),

        // ---- anything else: an event this phase does not expect. Keep traffic, stop.
        (_, ev) => finish(
            s,
            Outcome::Refused {
                reason: format!("unexpected {} in this phase", event_name(&ev)),
            },
        ),
    }
}

fn event_name(ev: &Event) -> &'static str {
    match ev {
        Event::Deploy { .. } => "deploy",
        Event::Ready => "ready",
        Event::NotReady { .. } => "not-ready",
        Event::HealthPassed => "health-passed",
        Event::HealthFailed { .. } => "health-failed",
        Event::StepHeld => "step-held",
        Event::Switched { .. } => "switched",
        Event::MonitorPassed { .. } => "monitor-passed",
        Event::TriggerFired { .. } => "trigger-fired",
        Event::Reverted => "reverted",
        Event::RevertAbandoned { .. } => "revert-abandoned",
        Event::Inconclusive { .. } => "inconclusive",
        Event::Cancel => "cancel",
        Event::Promote => "promote",
        Event::ManualRollback { .. } => "manual-rollback",
        Event::PreviousReady => "previous-ready",
        Event::Cleanup { .. } => "cleanup",
        Event::ScaledDown => "scaled-down",
    }
}

/// A record that contradicts itself (no target mid-release): refuse rather than guess.
fn inconsistent(s: BgState) -> Transition {
    finish(
        s,
        Outcome::Refused {
            reason: "the release record on the cluster is inconsistent".into(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .unwrap_or_default()
    }
    fn cfg() -> BgConfig {
        BgConfig {
            replicas: 3,
            shift: ShiftKind::None,
            steps: vec![100],
            manual_promote: false,
            keep_failed: false,
            monitor: Duration::from_secs(40),
            keep_previous: Duration::from_secs(86_400),
        }
    }
    /// Feeds events in order; returns the final state and every action.
    fn run(state: &BgState, cfg: &BgConfig, events: Vec<Event>) -> (BgState, Vec<Action>) {
        let mut s = state.clone();
        let mut actions = Vec::new();
        for e in events {
            let tr = step(&s, cfg, e);
            s = tr.state;
            actions.push(tr.action);
        }
        (s, actions)
    }
    fn deploy(image: &str) -> Event {
        Event::Deploy {
            image: image.into(),
            now: t(0),
        }
    }
    /// Blue live on v1 after a first deploy.
    fn blue_live() -> BgState {
        let (s, _) = run(
            &BgState::default(),
            &cfg(),
            vec![
                deploy("app:v1"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(1) },
            ],
        );
        s
    }
    /// Green switched in and monitored (blue the previous colour), not yet proven.
    fn green_monitoring() -> BgState {
        let (s, _) = run(
            &blue_live(),
            &cfg(),
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(10) },
            ],
        );
        s
    }

    /// A manual rollback where nothing was ever released says so (not "in flight").
    #[test]
    fn manual_rollback_of_an_empty_environment_says_nothing_was_released() {
        let t = step(
            &BgState::default(),
            &cfg(),
            Event::ManualRollback { now: t(1) },
        );
        assert!(
            matches!(&t.action, Action::Finish(Outcome::Refused { reason }) if reason.starts_with("nothing was released here yet")),
            "{:?}",
            t.action
        );
    }

    /// Protects the pending revert: a run that must end before its revert lands records
    /// `revert-pending` (exit 2 outcome), and the next run of every command finishes that revert
    /// before anything else, ending rolled back with traffic on blue.
    #[test]
    fn pending_revert_outranks_every_command() {
        let fired = step(
            &green_monitoring(),
            &cfg(),
            Event::TriggerFired {
                trigger: "error-rate".into(),
            },
        );
        let ended = step(
            &fired.state,
            &cfg(),
            Event::RevertAbandoned {
                reason: "cancelled".into(),
            },
        );
        assert_eq!(
            ended.state.phase,
            Phase::RevertPending {
                cause: RevertCause::Trigger
            }
        );
        assert!(matches!(
            ended.action,
            Action::Finish(Outcome::RevertPending { .. })
        ));
        for cmd in [
            deploy("app:v3"),
            Event::ManualRollback { now: t(100) },
            Event::Cleanup { now: t(100) },
            Event::Promote,
        ] {
            let name = event_name(&cmd);
            let (s, actions) = run(&ended.state, &cfg(), vec![cmd, Event::Reverted]);
            assert_eq!(
                actions[0],
                Action::Revert {
                    to: Color::Blue,
                    scale_down: Some(Color::Green)
                },
                "{name}"
            );
            assert_eq!(s.active, Some(Color::Blue), "{name}");
            assert_eq!(s.phase, Phase::RolledBack, "{name}");
            assert_eq!(
                actions[1],
                Action::Finish(Outcome::RolledBack {
                    trigger: "error-rate".into()
                }),
                "{name}"
            );
        }
    }

    /// Protects "never a pass on no evidence": an inconclusive monitoring window rolls back by
    /// default, or pauses (traffic kept) for `promote` (accept) or `rollback` (revert); an
    /// inconclusive shift step rolls back to the colour that never lost the selector.
    #[test]
    fn inconclusive_window_rolls_back_or_pauses() {
        use crate::policy::model::InconclusivePolicy;
        let inc = |then| Event::Inconclusive {
            detail: "`error-rate` had data in 0 of 5 samples (80% needed)".into(),
            then,
        };
        let (s, a) = run(
            &green_monitoring(),
            &cfg(),
            vec![inc(InconclusivePolicy::Rollback), Event::Reverted],
        );
        assert!(matches!(
            a[0],
            Action::Revert {
                to: Color::Blue,
                ..
            }
        ));
        assert_eq!((s.phase, s.active), (Phase::RolledBack, Some(Color::Blue)));
        assert!(
            matches!(&a[1], Action::Finish(Outcome::RolledBack { trigger }) if trigger.starts_with("inconclusive"))
        );

        let paused = step(&green_monitoring(), &cfg(), inc(InconclusivePolicy::Pause));
        assert_eq!(paused.action, Action::Pause);
        assert_eq!(paused.state.phase, Phase::Unproven { step: None });
        assert_eq!(paused.state.active, Some(Color::Green));
        let promoted = step(&paused.state, &cfg(), Event::Promote);
        assert_eq!(promoted.action, Action::Finish(Outcome::Succeeded));
        assert_eq!(promoted.state.phase, Phase::Succeeded);
        assert_eq!(promoted.state.active_image.as_deref(), Some("app:v2"));
        let back = step(&paused.state, &cfg(), Event::ManualRollback { now: t(60) });
        assert!(matches!(
            back.action,
            Action::Revert {
                to: Color::Blue,
                ..
            }
        ));

        let shifting = BgState {
            phase: Phase::Shifting { step: 0 },
            target: Some(Color::Green),
            ..blue_live()
        };
        let c = BgConfig {
            shift: ShiftKind::NginxCanary,
            steps: vec![10, 50, 100],
            ..cfg()
        };
        let r = step(&shifting, &c, inc(InconclusivePolicy::Rollback));
        assert!(matches!(
            r.action,
            Action::Revert {
                to: Color::Blue,
                ..
            }
        ));
        let p = step(&shifting, &c, inc(InconclusivePolicy::Pause));
        assert_eq!(p.state.phase, Phase::Unproven { step: Some(0) });
        let next = step(&p.state, &c, Event::Promote);
        assert!(matches!(
            next.action,
            Action::Shift {
                step: 1,
                percent: 50,
                ..
            }
        ));
    }

    /// Green live on v2 after a passed release, blue kept.
    fn green_live() -> BgState {
        let (s, _) = run(
            &blue_live(),
            &cfg(),
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(10) },
                Event::MonitorPassed { now: t(50) },
            ],
        );
        s
    }

    /// Protects the first deploy ever: blue, the Service pointed at it, no monitoring.
    #[test]
    fn first_deploy_is_blue_without_monitoring() {
        let (s, a) = run(
            &BgState::default(),
            &cfg(),
            vec![
                deploy("app:v1"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(1) },
            ],
        );
        assert_eq!(
            a,
            vec![
                Action::DeployIdle {
                    color: Color::Blue,
                    image: "app:v1".into(),
                    replicas: 3
                },
                Action::HealthCheck { color: Color::Blue },
                Action::Switch { to: Color::Blue },
                Action::Finish(Outcome::Succeeded),
            ]
        );
        assert_eq!(
            (s.active, s.previous, s.phase),
            (Some(Color::Blue), None, Phase::Succeeded)
        );
        assert_eq!(s.active_image.as_deref(), Some("app:v1"));
        assert_eq!(s.keep_until, None);
    }

    /// Protects the happy path: idle colour deployed, checked, switched, monitored, keep window set.
    #[test]
    fn release_passes_and_keeps_previous() {
        let (s, a) = run(
            &blue_live(),
            &cfg(),
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(10) },
                Event::MonitorPassed { now: t(50) },
            ],
        );
        assert_eq!(
            a,
            vec![
                Action::DeployIdle {
                    color: Color::Green,
                    image: "app:v2".into(),
                    replicas: 3
                },
                Action::HealthCheck {
                    color: Color::Green
                },
                Action::Switch { to: Color::Green },
                Action::Monitor {
                    color: Color::Green,
                    window: Duration::from_secs(40)
                },
                Action::Finish(Outcome::Succeeded),
            ]
        );
        assert_eq!(
            (s.active, s.previous, s.phase),
            (Some(Color::Green), Some(Color::Blue), Phase::Succeeded)
        );
        assert_eq!(s.switched_at, Some(t(10)));
        assert_eq!(s.keep_until, Some(t(50 + 86_400)));
        assert_eq!(
            (s.active_image.as_deref(), s.previous_image.as_deref()),
            (Some("app:v2"), Some("app:v1"))
        );
        // the next release goes to blue again
        assert_eq!(
            step(&s, &cfg(), deploy("app:v3")).action,
            Action::DeployIdle {
                color: Color::Blue,
                image: "app:v3".into(),
                replicas: 3
            }
        );
    }

    /// Protects the automatic rollback: selector back to blue, green scaled down, outcome names the trigger.
    #[test]
    fn trigger_during_monitoring_rolls_back() {
        let (s, a) = run(
            &blue_live(),
            &cfg(),
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(10) },
                Event::TriggerFired {
                    trigger: "error-rate".into(),
                },
                Event::Reverted,
            ],
        );
        assert_eq!(
            a[4],
            Action::Revert {
                to: Color::Blue,
                scale_down: Some(Color::Green)
            }
        );
        assert_eq!(
            a[5],
            Action::Finish(Outcome::RolledBack {
                trigger: "error-rate".into()
            })
        );
        assert_eq!(
            (s.active, s.previous, s.phase),
            (Some(Color::Blue), None, Phase::RolledBack)
        );
        assert_eq!(s.image.as_deref(), Some("app:v1"));
        assert_eq!(s.reason.as_deref(), Some("error-rate"));
        // nothing to roll back to manually; the next deploy uses green again
        assert!(matches!(
            step(&s, &cfg(), Event::ManualRollback { now: t(60) }).action,
            Action::Finish(Outcome::Refused { .. })
        ));
        assert!(matches!(
            step(&s, &cfg(), deploy("app:v3")).action,
            Action::DeployIdle {
                color: Color::Green,
                ..
            }
        ));
    }

    /// Protects `keep_failed`: the failed colour stays up for debugging and `cleanup` removes it later.
    #[test]
    fn keep_failed_then_cleanup() {
        let c = BgConfig {
            keep_failed: true,
            ..cfg()
        };
        let (s, a) = run(
            &blue_live(),
            &c,
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(10) },
                Event::TriggerFired {
                    trigger: "memory".into(),
                },
                Event::Reverted,
                Event::Cleanup { now: t(20) },
                Event::ScaledDown,
            ],
        );
        assert_eq!(
            a[4],
            Action::Revert {
                to: Color::Blue,
                scale_down: None
            }
        );
        assert_eq!(
            a[6],
            Action::ScaleDown {
                color: Color::Green
            }
        );
        assert_eq!(a[7], Action::Finish(Outcome::Succeeded));
        assert_eq!(s.active, Some(Color::Blue));
        assert_eq!(
            step(&s, &c, Event::Cleanup { now: t(30) }).action,
            Action::Finish(Outcome::Nothing {
                reason: "nothing to clean up".into()
            })
        );
    }

    /// Protects fail-closed before the switch: never Ready or unhealthy → idle colour stopped, selector untouched.
    #[test]
    fn failure_before_switch_never_touches_traffic() {
        for failure in [
            Event::NotReady {
                reason: "deadline".into(),
            },
            Event::HealthFailed {
                reason: "503".into(),
            },
        ] {
            let mut events = vec![deploy("app:v2")];
            if matches!(failure, Event::HealthFailed { .. }) {
                events.push(Event::Ready);
            }
            events.push(failure);
            let (s, a) = run(&blue_live(), &cfg(), events);
            assert!(matches!(
                a.last(),
                Some(Action::Abandon {
                    color: Color::Green,
                    outcome: Outcome::Failed { .. }
                })
            ));
            assert!(!a.iter().any(|x| matches!(
                x,
                Action::Switch { .. } | Action::Revert { .. } | Action::Shift { .. }
            )));
            assert_eq!((s.active, s.phase), (Some(Color::Blue), Phase::Failed));
            assert_eq!(s.image.as_deref(), Some("app:v1"));
        }
    }

    /// Protects gradual shift: each step in order, then the switch; a trigger mid-shift reverts to blue.
    #[test]
    fn shift_steps_then_switch() {
        let c = BgConfig {
            shift: ShiftKind::ReplicaRatio,
            steps: vec![10, 50, 100],
            ..cfg()
        };
        let (_, a) = run(
            &blue_live(),
            &c,
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::StepHeld,
                Event::StepHeld,
            ],
        );
        assert_eq!(
            &a[2..],
            &[
                Action::Shift {
                    step: 0,
                    percent: 10,
                    to: Color::Green,
                    from: Color::Blue
                },
                Action::Shift {
                    step: 1,
                    percent: 50,
                    to: Color::Green,
                    from: Color::Blue
                },
                Action::Switch { to: Color::Green },
            ]
        );
        let (s, a) = run(
            &blue_live(),
            &c,
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::TriggerFired {
                    trigger: "latency-p95".into(),
                },
                Event::Reverted,
            ],
        );
        assert_eq!(
            a[3],
            Action::Revert {
                to: Color::Blue,
                scale_down: Some(Color::Green)
            }
        );
        assert_eq!(s.active, Some(Color::Blue));
        assert_eq!(
            a[4],
            Action::Finish(Outcome::RolledBack {
                trigger: "latency-p95".into()
            })
        );
        // without a router no steps are walked
        let none = BgConfig {
            shift: ShiftKind::None,
            steps: vec![10, 50, 100],
            ..cfg()
        };
        assert!(none.shift_steps().is_empty());
    }

    /// Protects the manual gate: paused after checks, `promote` continues, `promote` with nothing paused does nothing.
    #[test]
    fn manual_promote() {
        let c = BgConfig {
            manual_promote: true,
            ..cfg()
        };
        let (s, a) = run(
            &blue_live(),
            &c,
            vec![deploy("app:v2"), Event::Ready, Event::HealthPassed],
        );
        assert_eq!(a[2], Action::Pause);
        assert_eq!(s.phase, Phase::AwaitingPromote);
        assert_eq!(
            step(&s, &c, Event::Promote).action,
            Action::Switch { to: Color::Green }
        );
        assert!(matches!(
            step(&blue_live(), &c, Event::Promote).action,
            Action::Finish(Outcome::Nothing { .. })
        ));
    }

    /// Protects cancellation: at every phase traffic ends on a colour that passed its checks.
    #[test]
    fn cancel_at_each_phase() {
        let base = blue_live();
        let c = BgConfig {
            shift: ShiftKind::NginxCanary,
            steps: vec![20, 100],
            ..cfg()
        };
        let prefixes: Vec<(Vec<Event>, Action)> = vec![
            (
                vec![deploy("app:v2")],
                Action::Abandon {
                    color: Color::Green,
                    outcome: Outcome::Cancelled,
                },
            ),
            (
                vec![deploy("app:v2"), Event::Ready],
                Action::Abandon {
                    color: Color::Green,
                    outcome: Outcome::Cancelled,
                },
            ),
            (
                vec![deploy("app:v2"), Event::Ready, Event::HealthPassed],
                Action::Revert {
                    to: Color::Blue,
                    scale_down: Some(Color::Green),
                },
            ),
            (
                vec![
                    deploy("app:v2"),
                    Event::Ready,
                    Event::HealthPassed,
                    Event::StepHeld,
                    Event::Switched { now: t(5) },
                ],
                Action::Revert {
                    to: Color::Blue,
                    scale_down: Some(Color::Green),
                },
            ),
        ];
        for (events, want) in prefixes {
            let (s, _) = run(&base, &c, events);
            let tr = step(&s, &c, Event::Cancel);
            assert_eq!(tr.action, want, "phase {:?}", s.phase);
            if matches!(want, Action::Revert { .. }) {
                let done = step(&tr.state, &c, Event::Reverted);
                assert_eq!(done.action, Action::Finish(Outcome::Cancelled));
                assert_eq!(done.state.active, Some(Color::Blue));
                assert_eq!(done.state.phase, Phase::Cancelled);
            }
        }
        assert!(matches!(
            step(&base, &c, Event::Cancel).action,
            Action::Finish(Outcome::Nothing { .. })
        ));
    }

    /// Protects resume after a crash: a re-run finishes or undoes what the dead run left.
    #[test]
    fn rerun_resumes_or_undoes() {
        let c = cfg();
        // died while monitoring: same image watches again, another image reverts first
        let (mon, _) = run(
            &blue_live(),
            &c,
            vec![
                deploy("app:v2"),
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(10) },
            ],
        );
        assert_eq!(
            step(&mon, &c, deploy("app:v2")).action,
            Action::Monitor {
                color: Color::Green,
                window: c.monitor
            }
        );
        let undo = step(&mon, &c, deploy("app:v3"));
        assert_eq!(
            undo.action,
            Action::Revert {
                to: Color::Blue,
                scale_down: Some(Color::Green)
            }
        );
        let undone = step(&undo.state, &c, Event::Reverted);
        assert!(matches!(
            undone.action,
            Action::Finish(Outcome::Nothing { .. })
        ));
        assert_eq!(undone.state.active, Some(Color::Blue));
        assert!(matches!(
            step(&undone.state, &c, deploy("app:v3")).action,
            Action::DeployIdle {
                color: Color::Green,
                ..
            }
        ));
        // died before the switch: redeploy the idle colour
        let (dep, _) = run(&blue_live(), &c, vec![deploy("app:v2"), Event::Ready]);
        assert!(matches!(
            step(&dep, &c, deploy("app:v2")).action,
            Action::DeployIdle {
                color: Color::Green,
                ..
            }
        ));
        // died mid-revert: revert again
        let mid = step(
            &mon,
            &c,
            Event::TriggerFired {
                trigger: "health".into(),
            },
        )
        .state;
        assert_eq!(
            step(&mid, &c, deploy("app:v2")).action,
            Action::Revert {
                to: Color::Blue,
                scale_down: Some(Color::Green)
            }
        );
        // died after persisting Monitoring but before the switch returned
        let (pre, _) = run(&blue_live(), &c, vec![deploy("app:v2"), Event::Ready]);
        let pre = step(&pre, &c, Event::HealthPassed).state;
        assert_eq!(pre.phase, Phase::Monitoring);
        assert!(matches!(
            step(&pre, &c, deploy("app:v2")).action,
            Action::DeployIdle {
                color: Color::Green,
                ..
            }
        ));
    }

    /// Protects manual rollback: previous colour scaled up, checked, switched to; images swapped.
    #[test]
    fn manual_rollback_after_success() {
        let (s, a) = run(
            &green_live(),
            &cfg(),
            vec![
                Event::ManualRollback { now: t(100) },
                Event::Ready,
                Event::HealthPassed,
                Event::Switched { now: t(105) },
            ],
        );
        assert_eq!(
            a,
            vec![
                Action::ScaleUp {
                    color: Color::Blue,
                    replicas: 3
                },
                Action::HealthCheck { color: Color::Blue },
                Action::Switch { to: Color::Blue },
                Action::Finish(Outcome::Succeeded),
            ]
        );
        assert_eq!(
            (s.active, s.previous),
            (Some(Color::Blue), Some(Color::Green))
        );
        assert_eq!(
            (s.active_image.as_deref(), s.previous_image.as_deref()),
            (Some("app:v1"), Some("app:v2"))
        );
        assert_eq!(s.keep_until, Some(t(100 + 86_400)));
        // an unhealthy previous colour keeps traffic where it is
        let (s, a) = run(
            &green_live(),
            &cfg(),
            vec![
                Event::ManualRollback { now: t(100) },
                Event::NotReady { reason: "x".into() },
            ],
        );
        assert!(matches!(a[1], Action::Finish(Outcome::Failed { .. })));
        assert_eq!(s.active, Some(Color::Green));
    }

    /// Protects cleanup: nothing inside the keep window, the previous colour scaled down after it.
    #[test]
    fn cleanup_after_keep_until() {
        let s = green_live();
        assert!(matches!(
            step(&s, &cfg(), Event::Cleanup { now: t(1000) }).action,
            Action::Finish(Outcome::Nothing { .. })
        ));
        let tr = step(
            &s,
            &cfg(),
            Event::Cleanup {
                now: t(50 + 86_400),
            },
        );
        assert_eq!(tr.action, Action::ScaleDown { color: Color::Blue });
        assert_eq!((tr.state.previous, tr.state.keep_until), (None, None));
        let (mon, _) = run(&s, &cfg(), vec![deploy("app:v3")]);
        assert!(matches!(
            step(&mon, &cfg(), Event::Cleanup { now: t(1 << 30) }).action,
            Action::Finish(Outcome::Nothing { .. })
        ));
    }

    /// Protects replica-ratio proportions: both colours serve at every step, the ratio follows the percent.
    #[test]
    fn ratio_table() {
        assert_eq!(ratio_replicas(10, 10), (9, 1));
        assert_eq!(ratio_replicas(10, 50), (5, 5));
        assert_eq!(ratio_replicas(4, 25), (3, 1));
        assert_eq!(ratio_replicas(3, 10), (2, 1));
        assert_eq!(ratio_replicas(3, 90), (1, 2));
        assert_eq!(ratio_replicas(1, 50), (1, 1));
    }

    /// Protects the state record's wire form: it round-trips through JSON (stored on the cluster).
    #[test]
    fn state_round_trips() {
        let s = step(
            &green_live(),
            &cfg(),
            Event::TriggerFired {
                trigger: "x".into(),
            },
        )
        .state;
        let text = serde_json::to_string(&s).unwrap_or_default();
        let back: BgState = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, s);
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(deploy("app:v9")),
            Just(Event::Ready),
            Just(Event::NotReady { reason: "r".into() }),
            Just(Event::HealthPassed),
            Just(Event::HealthFailed { reason: "r".into() }),
            Just(Event::StepHeld),
            (0i64..100).prop_map(|n| Event::Switched { now: t(n) }),
            (0i64..100).prop_map(|n| Event::MonitorPassed { now: t(n) }),
            Just(Event::TriggerFired {
                trigger: "x".into()
            }),
            Just(Event::Reverted),
            Just(Event::Cancel),
            Just(Event::Promote),
            (0i64..100).prop_map(|n| Event::ManualRollback { now: t(n) }),
            (0i64..200_000).prop_map(|n| Event::Cleanup { now: t(n) }),
            Just(Event::ScaledDown),
        ]
    }

    proptest! {
        /// Protects the core invariant under any event order: traffic only ever goes to a colour that was
        /// health-checked (or already served), and a live colour is never lost.
        #[test]
        fn traffic_only_to_checked_colours(events in prop::collection::vec(any_event(), 0..40), manual in any::<bool>(), ratio in any::<bool>()) {
            let c = BgConfig {
                manual_promote: manual,
                shift: if ratio { ShiftKind::ReplicaRatio } else { ShiftKind::None },
                steps: vec![25, 100],
                ..cfg()
            };
            let mut s = green_live();
            let mut checked: HashSet<Color> = [Color::Green, Color::Blue].into_iter().collect();
            let mut last_check: Option<Color> = None;
            for e in events {
                if let (Event::HealthPassed, Some(col)) = (&e, last_check) { checked.insert(col); }
                let tr = step(&s, &c, e);
                // An event the phase ignores changes nothing; a phase change ends the check's relevance.
                if tr.state.phase != s.phase {
                    last_check = None;
                }
                match &tr.action {
                    Action::DeployIdle { color, .. } => { checked.remove(color); }
                    Action::HealthCheck { color } => last_check = Some(*color),
                    Action::Switch { to } | Action::Shift { to, .. } | Action::Revert { to, .. } => {
                        prop_assert!(checked.contains(to), "{:?} to unchecked colour from {:?}", tr.action, s.phase);
                    }
                    Action::Monitor { .. } | Action::Abandon { .. } | Action::Pause | Action::ScaleUp { .. }
                    | Action::ScaleDown { .. } | Action::Finish(_) => {}
                }
                if let Action::Revert { scale_down: Some(d), .. } | Action::Abandon { color: d, .. } | Action::ScaleDown { color: d } = &tr.action {
                    prop_assert_ne!(Some(*d), tr.state.active.filter(|_| tr.state.phase.is_stable()));
                }
                prop_assert!(tr.state.active.is_some());
                s = tr.state;
            }
        }
    }
}

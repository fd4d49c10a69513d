//! Pure decisions of the direct and rolling deploys: observe → summarize → decide → act.
//!
//! Owns: [`DeploySummary`] (the observed state of one Deployment and its new pods, reduced to what a
//! decision needs), [`next_step`] (is the rollout complete, still going, or failed — and why), and
//! [`DeployMachine`] (the direct / rolling sequence: apply, wait Ready, smoke, post-deploy tests, roll
//! back). Must not touch: the network, clocks, Kubernetes clients. Time arrives as `elapsed`.

use std::fmt;
use std::time::Duration;

/// How a rollout is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutPlan {
    /// The Deployment's `progressDeadlineSeconds`, for messages.
    pub progress_deadline: Duration,
    /// Our own deadline for the whole rollout (the Deployment's progress deadline plus a grace for
    /// the controller to report it).
    pub deadline: Duration,
    /// A new pod restarting at least this often is a crash loop: fail without waiting for the
    /// deadline.
    pub crashloop_restarts: i32,
}

/// One pod of the new revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSummary {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// `CrashLoopBackOff`, `ImagePullBackOff`, … with its message.
    pub waiting: Option<(String, String)>,
    /// Conditions that are not `True`, as `Ready=False (ContainersNotReady: …)`.
    pub failing_conditions: Vec<String>,
}

/// The `Progressing` condition of a Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressCondition {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Observed state of one Deployment after we applied generation `target_generation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploySummary {
    pub name: String,
    /// The generation our apply produced; status older than this says nothing about our change.
    pub target_generation: i64,
    pub observed_generation: i64,
    pub desired: i32,
    /// All pods of all revisions (`status.replicas`): old ones still count until gone.
    pub total: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub progressing: Option<ProgressCondition>,
    /// Pods of the new revision.
    pub pods: Vec<PodSummary>,
}

impl DeploySummary {
    /// `2/3 updated, 1 ready, 1 available (generation 4 observed 4)`.
    pub fn counts(&self) -> String {
        format!(
            "{}/{} updated, {} ready, {} available, {} total (generation {} observed {})",
            self.updated,
            self.desired,
            self.ready,
            self.available,
            self.total,
            self.target_generation,
            self.observed_generation
        )
    }

    /// The failing pod conditions, one clause per pod, for messages.
    pub fn pod_problems(&self) -> String {
        let parts: Vec<String> = self
            .pods
            .iter()
            .filter(|p| !p.ready)
            .map(|p| {
                let mut s = format!("{} {}", p.name, p.phase);
                if let Some((reason, msg)) = &p.waiting {
                    s.push_str(&format!(" waiting {reason}: {msg}"));
                }
                if p.restarts > 0 {
                    s.push_str(&format!(" restarts={}", p.restarts));
                }
                if !p.failing_conditions.is_empty() {
                    s.push_str(&format!(" [{}]", p.failing_conditions.join("; ")));
                }
                s
            })
            .collect();
        if parts.is_empty() {
            "no unready pods".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Why a rollout failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutFailure {
    /// The controller reported `ProgressDeadlineExceeded`, or our own deadline passed first.
    DeadlineExceeded {
        name: String,
        deadline: Duration,
        reported_by_cluster: bool,
        detail: String,
    },
    /// A new pod keeps restarting.
    CrashLoop {
        name: String,
        pod: String,
        restarts: i32,
        detail: String,
    },
}

impl fmt::Display for RolloutFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RolloutFailure::DeadlineExceeded {
                name,
                deadline,
                reported_by_cluster,
                detail,
            } => {
                let by = if *reported_by_cluster {
                    "ProgressDeadlineExceeded"
                } else {
                    "watch deadline reached"
                };
                write!(
                    f,
                    "become ready: deployment {name} did not complete within {} ({by}); {detail}",
                    humantime::format_duration(*deadline)
                )
            }
            RolloutFailure::CrashLoop {
                name,
                pod,
                restarts,
                detail,
            } => {
                write!(
                    f,
                    "become ready: deployment {name} pod {pod} is crash-looping ({restarts} restarts); {detail}"
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStep {
    Wait,
    Complete,
    Fail(RolloutFailure),
}

/// Decides from one observation. Complete only when the controller has seen our generation and every
/// desired replica is updated, ready and available with no old pod left — never on stale status.
pub fn next_step(plan: &RolloutPlan, s: &DeploySummary, elapsed: Duration) -> RolloutStep {
    let caught_up = s.observed_generation >= s.target_generation && s.target_generation > 0;
    if caught_up
        && s.updated == s.desired
        && s.ready == s.desired
        && s.available == s.desired
        && s.total == s.desired
    {
        return RolloutStep::Complete;
    }
    let detail = || format!("{}; pods: {}", s.counts(), s.pod_problems());
    if let Some(p) = s
        .pods
        .iter()
        .filter(|p| p.restarts >= plan.crashloop_restarts)
        .max_by_key(|p| p.restarts)
    {
        return RolloutStep::Fail(RolloutFailure::CrashLoop {
            name: s.name.clone(),
            pod: p.name.clone(),
            restarts: p.restarts,
            detail: detail(),
        });
    }
    let deadline_reported = caught_up
        && s.progressing
            .as_ref()
            .is_some_and(|c| c.status == "False" && c.reason == "ProgressDeadlineExceeded");
    if deadline_reported || elapsed >= plan.deadline {
        let mut d = detail();
        if let Some(c) = s
            .progressing
            .as_ref()
            .filter(|c| deadline_reported && !c.message.is_empty())
        {
            d = format!("{}; {d}", c.message);
        }
        return RolloutStep::Fail(RolloutFailure::DeadlineExceeded {
            name: s.name.clone(),
            deadline: if deadline_reported {
                plan.progress_deadline
            } else {
                plan.deadline
            },
            reported_by_cluster: deadline_reported,
            detail: d,
        });
    }
    RolloutStep::Wait
}

/// Direct (development) or rolling (staging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployKind {
    /// Apply, wait Ready, smoke test; failure ends the run (no rollback).
    Direct,
    /// As direct, then the post-deploy test gates; any failure rolls back to the previous image.
    Rolling,
}

/// Where a deploy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Rollout,
    Smoke,
    PostDeploy,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Rollout => "rollout",
            Stage::Smoke => "smoke test",
            Stage::PostDeploy => "post-deploy tests",
        })
    }
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The new image is Ready and passed its checks.
    Deployed { image: String },
    /// The new image failed and nothing was rolled back (direct, or a first rolling deploy).
    Failed {
        image: String,
        stage: Stage,
        reason: String,
    },
    /// The new image failed; the previous image serves again and is Ready.
    RolledBack {
        image: String,
        stage: Stage,
        reason: String,
        restored: String,
    },
    /// The new image failed and the previous one could not be brought back.
    RollbackFailed {
        image: String,
        stage: Stage,
        reason: String,
        restored: String,
        rollback_reason: String,
    },
}

impl DeployOutcome {
    /// 0 deployed; 1 the deploy said no (failed, rolled back); 2 the environment is left broken.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeployOutcome::Deployed { .. } => 0,
            DeployOutcome::Failed { .. } | DeployOutcome::RolledBack { .. } => 1,
            DeployOutcome::RollbackFailed { .. } => 2,
        }
    }

    /// One line for logs, check runs and the job summary.
    pub fn summary(&self) -> String {
        match self {
            DeployOutcome::Deployed { image } => format!("deployed {image}"),
            DeployOutcome::Failed {
                image,
                stage,
                reason,
            } => format!("{image} failed its {stage}: failed to {reason}"),
            DeployOutcome::RolledBack {
                image,
                stage,
                reason,
                restored,
            } => {
                format!(
                    "{image} failed its {stage}: failed to {reason}; rolled back to {restored} (Ready)"
                )
            }
            DeployOutcome::RollbackFailed {
                image,
                stage,
                reason,
                restored,
                rollback_reason,
            } => format!(
                "{image} failed its {stage}: failed to {reason}; rolling back to {restored} also failed: failed to {rollback_reason}"
            ),
        }
    }
}

/// What happened since the last [`Act`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Applied,
    Ready,
    RolloutFailed(String),
    SmokePassed,
    SmokeFailed(String),
    PostDeployPassed,
    /// A post-deploy gate failed (its name and reason in the text).
    PostDeployFailed(String),
    /// Applying or waiting for the previous image failed.
    RollbackFailed(String),
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Server-side apply the environment with this image.
    Apply {
        image: String,
    },
    /// Watch the Deployment until complete or failed.
    WaitReady,
    Smoke,
    RunPostDeploy,
    /// Apply the previous image (then `WaitReady` follows as its own act).
    RollBack {
        image: String,
    },
    Finish(DeployOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Applying,
    WaitingReady,
    Smoking,
    PostDeploy,
    RollingBack { stage: Stage, reason: String },
    WaitingRollbackReady { stage: Stage, reason: String },
    Done,
}

/// The direct / rolling sequence as a state machine: the driver performs each [`Act`] and reports
/// the result as an [`Event`]. An event that does not fit the phase ends the deploy as failed
/// rather than being ignored (fail closed).
#[derive(Debug, Clone)]
pub struct DeployMachine {
    kind: DeployKind,
    image: String,
    previous: Option<String>,
    run_post_deploy: bool,
    phase: Phase,
}

impl DeployMachine {
    /// `previous`: the image to roll back to (the last successful deploy), if any and different.
    pub fn new(
        kind: DeployKind,
        image: &str,
        previous: Option<&str>,
        has_post_deploy: bool,
    ) -> DeployMachine {
        DeployMachine {
            kind,
            image: image.to_string(),
            previous: previous.filter(|p| *p != image).map(str::to_string),
            run_post_deploy: has_post_deploy && kind == DeployKind::Rolling,
            phase: Phase::Applying,
        }
    }

    pub fn start(&self) -> Act {
        Act::Apply {
            image: self.image.clone(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn on(&mut self, event: Event) -> Act {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let (next, act) = match (phase, event) {
            (Phase::Applying, Event::Applied) => (Phase::WaitingReady, Act::WaitReady),
            (Phase::WaitingReady, Event::Ready) => (Phase::Smoking, Act::Smoke),
            (Phase::WaitingReady, Event::RolloutFailed(r)) => self.fail(Stage::Rollout, r),
            (Phase::Smoking, Event::SmokePassed) if self.run_post_deploy => {
                (Phase::PostDeploy, Act::RunPostDeploy)
            }
            (Phase::Smoking, Event::SmokePassed) => (Phase::Done, self.deployed()),
            (Phase::Smoking, Event::SmokeFailed(r)) => self.fail(Stage::Smoke, r),
            (Phase::PostDeploy, Event::PostDeployPassed) => (Phase::Done, self.deployed()),
            (Phase::PostDeploy, Event::PostDeployFailed(r)) => self.fail(Stage::PostDeploy, r),
            (Phase::RollingBack { stage, reason }, Event::Applied) => (
                Phase::WaitingRollbackReady { stage, reason },
                Act::WaitReady,
            ),
            (Phase::WaitingRollbackReady { stage, reason }, Event::Ready) => (
                Phase::Done,
                Act::Finish(DeployOutcome::RolledBack {
                    image: self.image.clone(),
                    stage,
                    reason,
                    restored: self.previous.clone().unwrap_or_default(),
                }),
            ),
            (
                Phase::RollingBack { stage, reason }
                | Phase::WaitingRollbackReady { stage, reason },
                Event::RolloutFailed(r) | Event::RollbackFailed(r),
            ) => (
                Phase::Done,
                Act::Finish(DeployOutcome::RollbackFailed {
                    image: self.image.clone(),
                    stage,
                    reason,
                    restored: self.previous.clone().unwrap_or_default(),
                    rollback_reason: r,
                }),
            ),
            (phase, event) => (
                Phase::Done,
                Act::Finish(DeployOutcome::Failed {
                    image: self.image.clone(),
                    stage: Stage::Rollout,
                    reason: format!("follow the deploy: unexpected {event:?} while {phase:?}"),
                }),
            ),
        };
        self.phase = next;
        act
    }

    fn deployed(&self) -> Act {
        Act::Finish(DeployOutcome::Deployed {
            image: self.image.clone(),
        })
    }

    fn fail(&self, stage: Stage, reason: String) -> (Phase, Act) {
        match (self.kind, &self.previous) {
            (DeployKind::Rolling, Some(prev)) => (
                Phase::RollingBack { stage, reason },
                Act::RollBack {
                    image: prev.clone(),
                },
            ),
            (DeployKind::Rolling, None) | (DeployKind::Direct, _) => (
                Phase::Done,
                Act::Finish(DeployOutcome::Failed {
                    image: self.image.clone(),
                    stage,
                    reason,
                }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RolloutPlan {
        RolloutPlan {
            progress_deadline: Duration::from_secs(50),
            deadline: Duration::from_secs(60),
            crashloop_restarts: 3,
        }
    }

    fn summary() -> DeploySummary {
        DeploySummary {
            name: "web".into(),
            target_generation: 2,
            observed_generation: 2,
            desired: 2,
            total: 2,
            updated: 2,
            ready: 2,
            available: 2,
            progressing: None,
            pods: vec![],
        }
    }

    /// Protects the completion rule: every count must match and the controller must have seen our
    /// generation; stale status or a leftover old pod is not success.
    #[test]
    fn completes_only_when_caught_up_and_all_counts_match() {
        let p = plan();
        let t = Duration::from_secs(1);
        assert_eq!(next_step(&p, &summary(), t), RolloutStep::Complete);
        let cases: Vec<(&str, DeploySummary)> = vec![
            (
                "stale generation",
                DeploySummary {
                    observed_generation: 1,
                    ..summary()
                },
            ),
            (
                "not updated",
                DeploySummary {
                    updated: 1,
                    ..summary()
                },
            ),
            (
                "not ready",
                DeploySummary {
                    ready: 1,
                    ..summary()
                },
            ),
            (
                "not available",
                DeploySummary {
                    available: 1,
                    ..summary()
                },
            ),
            (
                "old pod left",
                DeploySummary {
                    total: 3,
                    ..summary()
                },
            ),
            (
                "nothing applied",
                DeploySummary {
                    target_generation: 0,
                    observed_generation: 0,
                    ..summary()
                },
            ),
        ];
        for (what, s) in cases {
            assert_eq!(next_step(&p, &s, t), RolloutStep::Wait, "{what}");
        }
    }

    /// Protects failure detection: the cluster's ProgressDeadlineExceeded, our own deadline, and a
    /// crash loop each fail with the pod conditions in the message.
    #[test]
    fn fails_on_deadline_and_crash_loop_with_pod_conditions() {
        let p = plan();
        let pod = PodSummary {
            name: "web-1".into(),
            phase: "Running".into(),
            ready: false,
            restarts: 0,
            waiting: None,
            failing_conditions: vec![
                "Ready=False (ContainersNotReady: containers with unready status: [app])".into(),
            ],
        };
        let stuck = DeploySummary {
            ready: 0,
            available: 0,
            total: 3,
            progressing: Some(ProgressCondition {
                status: "False".into(),
                reason: "ProgressDeadlineExceeded".into(),
                message: "ReplicaSet \"web-1\" has timed out progressing.".into(),
            }),
            pods: vec![pod.clone()],
            ..summary()
        };
        match next_step(&p, &stuck, Duration::from_secs(5)) {
            RolloutStep::Fail(
                f @ RolloutFailure::DeadlineExceeded {
                    reported_by_cluster: true,
                    ..
                },
            ) => {
                let m = f.to_string();
                assert!(m.contains("ContainersNotReady"), "{m}");
                assert!(m.contains("ProgressDeadlineExceeded"), "{m}");
            }
            other => panic!("expected cluster deadline, got {other:?}"),
        }
        let slow = DeploySummary {
            progressing: None,
            ..stuck.clone()
        };
        assert_eq!(
            next_step(&p, &slow, Duration::from_secs(59)),
            RolloutStep::Wait
        );
        assert!(matches!(
            next_step(&p, &slow, Duration::from_secs(60)),
            RolloutStep::Fail(RolloutFailure::DeadlineExceeded {
                reported_by_cluster: false,
                ..
            })
        ));
        let crash = DeploySummary {
            pods: vec![PodSummary {
                restarts: 3,
                waiting: Some(("CrashLoopBackOff".into(), "back-off 10s".into())),
                ..pod
            }],
            ..slow
        };
        match next_step(&p, &crash, Duration::from_secs(1)) {
            RolloutStep::Fail(f @ RolloutFailure::CrashLoop { restarts: 3, .. }) => {
                assert!(f.to_string().contains("CrashLoopBackOff"), "{f}");
            }
            other => panic!("expected crash loop, got {other:?}"),
        }
    }

    /// Protects the deadline from a status of an older generation: its ProgressDeadlineExceeded is
    /// not ours.
    #[test]
    fn old_generation_deadline_condition_is_ignored() {
        let s = DeploySummary {
            observed_generation: 1,
            ready: 0,
            progressing: Some(ProgressCondition {
                status: "False".into(),
                reason: "ProgressDeadlineExceeded".into(),
                message: String::new(),
            }),
            ..summary()
        };
        assert_eq!(
            next_step(&plan(), &s, Duration::from_secs(1)),
            RolloutStep::Wait
        );
    }

    fn drive(m: &mut DeployMachine, events: Vec<Event>) -> Vec<Act> {
        let mut acts = vec![m.start()];
        for e in events {
            acts.push(m.on(e));
        }
        acts
    }

    /// Protects the direct sequence: apply, wait, smoke, done; a failure ends it without rollback.
    #[test]
    fn direct_sequence_and_failure_without_rollback() {
        let mut m = DeployMachine::new(DeployKind::Direct, "app:v2", Some("app:v1"), true);
        let acts = drive(
            &mut m,
            vec![Event::Applied, Event::Ready, Event::SmokePassed],
        );
        assert_eq!(
            acts,
            vec![
                Act::Apply {
                    image: "app:v2".into()
                },
                Act::WaitReady,
                Act::Smoke,
                Act::Finish(DeployOutcome::Deployed {
                    image: "app:v2".into()
                })
            ]
        );
        assert!(m.is_done());
        let mut m = DeployMachine::new(DeployKind::Direct, "app:v2", Some("app:v1"), false);
        let acts = drive(
            &mut m,
            vec![Event::Applied, Event::RolloutFailed("x".into())],
        );
        assert_eq!(
            acts.last(),
            Some(&Act::Finish(DeployOutcome::Failed {
                image: "app:v2".into(),
                stage: Stage::Rollout,
                reason: "x".into()
            }))
        );
    }

    /// Protects staging: a failed post-deploy test rolls back to the previous image and waits for
    /// it; the outcome names both and exits 1.
    #[test]
    fn rolling_post_deploy_failure_rolls_back() {
        let mut m = DeployMachine::new(DeployKind::Rolling, "app:v2", Some("app:v1"), true);
        let acts = drive(
            &mut m,
            vec![
                Event::Applied,
                Event::Ready,
                Event::SmokePassed,
                Event::PostDeployFailed("e2e: 3 tests failed".into()),
                Event::Applied,
                Event::Ready,
            ],
        );
        assert_eq!(
            acts[4],
            Act::RollBack {
                image: "app:v1".into()
            }
        );
        let out = DeployOutcome::RolledBack {
            image: "app:v2".into(),
            stage: Stage::PostDeploy,
            reason: "e2e: 3 tests failed".into(),
            restored: "app:v1".into(),
        };
        assert_eq!(acts.last(), Some(&Act::Finish(out.clone())));
        assert_eq!(out.exit_code(), 1);
        // A rollback that cannot get Ready leaves the environment broken: exit 2.
        let mut m = DeployMachine::new(DeployKind::Rolling, "app:v2", Some("app:v1"), true);
        let acts = drive(
            &mut m,
            vec![
                Event::Applied,
                Event::RolloutFailed("deadline".into()),
                Event::Applied,
                Event::RolloutFailed("again".into()),
            ],
        );
        match acts.last() {
            Some(Act::Finish(o @ DeployOutcome::RollbackFailed { .. })) => {
                assert_eq!(o.exit_code(), 2)
            }
            other => panic!("expected rollback failure, got {other:?}"),
        }
    }

    /// Protects first deploys and same-image redeploys: nothing to roll back to means a plain failure.
    #[test]
    fn rolling_without_previous_fails_plainly() {
        for prev in [None, Some("app:v2")] {
            let mut m = DeployMachine::new(DeployKind::Rolling, "app:v2", prev, true);
            let acts = drive(
                &mut m,
                vec![
                    Event::Applied,
                    Event::Ready,
                    Event::SmokeFailed("503".into()),
                ],
            );
            assert!(matches!(
                acts.last(),
                Some(Act::Finish(DeployOutcome::Failed {
                    stage: Stage::Smoke,
                    ..
                }))
            ));
        }
    }

    /// Protects fail-closed: an event out of order never turns into success.
    #[test]
    fn unexpected_event_fails_closed() {
        let mut m = DeployMachine::new(DeployKind::Rolling, "app:v2", Some("app:v1"), true);
        let _ = m.start();
        assert!(matches!(
            m.on(Event::Ready),
            Act::Finish(DeployOutcome::Failed { .. })
        ));
    }
}

//! Rollback triggers: "value above X for N" over a per-sample history.
//!
//! Owns: the pure evaluation of one trigger over its samples (sliding `for:` window, the
//! `on_no_data` policy), the verdict over all triggers of a monitoring window, the worst-case
//! detection time the plan shows, and decision-latency bookkeeping. Must not touch: clocks,
//! Prometheus, HTTP — samples arrive as data, times as offsets from the start of monitoring.

use crate::policy::model::{NoDataPolicy, Ratio, RollbackSpec, TriggerSource, TriggerSpec};
use serde::Serialize;
use std::time::Duration;

/// One observation of a trigger's value, `at` measured from the start of monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    #[serde(with = "crate::policy::model::duration_text")]
    pub at: Duration,
    /// `None` is "no data": an empty query result, `NaN`, or a failed probe round.
    pub value: Option<f64>,
}

impl Sample {
    /// A sample whose `NaN` is already folded into "no data".
    pub fn new(at: Duration, value: Option<f64>) -> Self {
        Self {
            at,
            value: value.filter(|v| !v.is_nan()),
        }
    }
}

/// The part of a trigger the evaluation needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Condition {
    /// Breached when the value is strictly above this.
    pub above: f64,
    /// How long the breach must hold without a break before the trigger fires.
    #[serde(with = "crate::policy::model::duration_text")]
    pub for_: Duration,
}

impl From<&TriggerSpec> for Condition {
    fn from(t: &TriggerSpec) -> Self {
        Self {
            above: t.above,
            for_: t.for_,
        }
    }
}

/// How one sample counts once the no-data policy has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SampleClass {
    Breach,
    Healthy,
    /// A gap under `hold`: whatever the previous sample was still stands.
    Held,
}

/// Classify one sample against the condition and the no-data policy.
pub fn classify(cond: &Condition, no_data: NoDataPolicy, value: Option<f64>) -> SampleClass {
    match value.filter(|v| !v.is_nan()) {
        Some(v) if v > cond.above => SampleClass::Breach,
        Some(_) => SampleClass::Healthy,
        None => match no_data {
            NoDataPolicy::Hold => SampleClass::Held,
            NoDataPolicy::Fail => SampleClass::Breach,
            NoDataPolicy::Pass => SampleClass::Healthy,
        },
    }
}

/// Where a trigger stands after its samples so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum TriggerState {
    /// No breach in progress.
    Quiet,
    /// Breached since `since`, not yet for the whole window.
    Pending {
        #[serde(with = "crate::policy::model::duration_text")]
        since: Duration,
    },
    /// The breach held for the whole window. `satisfied_at` = `since + for` (the moment the window
    /// closed), `detected_at` = the sample that saw it.
    Fired {
        #[serde(with = "crate::policy::model::duration_text")]
        since: Duration,
        #[serde(with = "crate::policy::model::duration_text")]
        satisfied_at: Duration,
        #[serde(with = "crate::policy::model::duration_text")]
        detected_at: Duration,
    },
}

impl TriggerState {
    pub fn is_fired(&self) -> bool {
        matches!(self, TriggerState::Fired { .. })
    }
}

/// Evaluate one trigger over its samples (in time order). The first firing is final: later samples
/// do not un-fire it.
///
/// A run of breaching samples starts at the first breaching sample and fires at the first sample
/// whose time is at least `for` after that start — so with `for: 0` the first breach fires. Under
/// `hold`, a gap continues a run in progress (and may complete it) but never starts one.
pub fn evaluate(cond: &Condition, no_data: NoDataPolicy, samples: &[Sample]) -> TriggerState {
    let mut since: Option<Duration> = None;
    for s in samples {
        let class = classify(cond, no_data, s.value);
        let breaching = match class {
            SampleClass::Breach => true,
            SampleClass::Healthy => false,
            SampleClass::Held => since.is_some(),
        };
        if !breaching {
            since = None;
            continue;
        }
        let start = *since.get_or_insert(s.at);
        if s.at.saturating_sub(start) >= cond.for_ {
            return TriggerState::Fired {
                since: start,
                satisfied_at: start + cond.for_,
                detected_at: s.at,
            };
        }
    }
    match since {
        Some(since) => TriggerState::Pending { since },
        None => TriggerState::Quiet,
    }
}

/// The last known value of a series (gaps skipped), for progress reports.
pub fn last_value(samples: &[Sample]) -> Option<f64> {
    samples.iter().rev().find_map(|s| s.value)
}

/// A trigger with its history, as the monitoring loop keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerSeries {
    pub name: String,
    pub condition: Condition,
    pub samples: Vec<Sample>,
}

impl TriggerSeries {
    pub fn new(spec: &TriggerSpec) -> Self {
        Self {
            name: spec.name.clone(),
            condition: Condition::from(spec),
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, at: Duration, value: Option<f64>) {
        self.samples.push(Sample::new(at, value));
    }

    pub fn state(&self, no_data: NoDataPolicy) -> TriggerState {
        evaluate(&self.condition, no_data, &self.samples)
    }

    /// (samples with data, samples).
    pub fn coverage(&self) -> (usize, usize) {
        let with = self.samples.iter().filter(|s| s.value.is_some()).count();
        (with, self.samples.len())
    }
}

/// Pure: the trigger with the smallest share of samples carrying data, when that share is below
/// `min_data` — the window cannot be judged. The text names it and the counts.
pub fn short_of_data(series: &[TriggerSeries], min_data: Ratio) -> Option<String> {
    series
        .iter()
        .map(|s| (s, s.coverage()))
        .filter(|(_, (with, total))| (*with as f64) < min_data.0 * (*total as f64) || *total == 0)
        .min_by(|(_, (a, n)), (_, (b, m))| {
            let share = |w: usize, t: usize| if t == 0 { 0.0 } else { w as f64 / t as f64 };
            share(*a, *n).total_cmp(&share(*b, *m))
        })
        .map(|(s, (with, total))| {
            format!(
                "`{}` had data in {with} of {total} samples ({min_data} needed)",
                s.name
            )
        })
}

/// The verdict of a monitoring window so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum MonitorVerdict {
    /// Keep sampling.
    Continue,
    /// The window elapsed with no trigger fired and every trigger had enough data.
    Passed,
    /// The window elapsed with no trigger fired but too few samples with data to judge: never a
    /// pass.
    Inconclusive { detail: String },
    /// A trigger fired; the earliest detection wins (ties: policy order).
    Fire {
        trigger: String,
        #[serde(with = "crate::policy::model::duration_text")]
        satisfied_at: Duration,
        #[serde(with = "crate::policy::model::duration_text")]
        detected_at: Duration,
    },
}

/// Verdict over every trigger at `elapsed` into a window of length `window`. A firing always wins
/// over the window ending (fail closed); a window that ends with some trigger short of `min_data`
/// is inconclusive, not passed.
pub fn verdict(
    series: &[TriggerSeries],
    no_data: NoDataPolicy,
    min_data: Ratio,
    elapsed: Duration,
    window: Duration,
) -> MonitorVerdict {
    let fired = series
        .iter()
        .filter_map(|s| match s.state(no_data) {
            TriggerState::Fired {
                satisfied_at,
                detected_at,
                ..
            } => Some((s, satisfied_at, detected_at)),
            TriggerState::Quiet | TriggerState::Pending { .. } => None,
        })
        .min_by_key(|(_, _, detected)| *detected);
    match fired {
        Some((s, satisfied_at, detected_at)) => MonitorVerdict::Fire {
            trigger: s.name.clone(),
            satisfied_at,
            detected_at,
        },
        None if elapsed >= window => match short_of_data(series, min_data) {
            Some(detail) => MonitorVerdict::Inconclusive { detail },
            None => MonitorVerdict::Passed,
        },
        None => MonitorVerdict::Continue,
    }
}

/// Parse a Prometheus duration (`30s`, `1m`, `1h30m`, `500ms`, `2d`).
pub fn parse_prom_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "w" => Duration::from_secs(n.checked_mul(604_800)?),
            "y" => Duration::from_secs(n.checked_mul(31_536_000)?),
            _ => return None,
        };
        total = total.checked_add(d)?;
    }
    Some(total)
}

/// The longest range selector in a PromQL query (`rate(x[1m])` → 1 m; a subquery `[5m:30s]` → 5 m):
/// how far back a change can hide in the query's answer.
pub fn query_window(query: &str) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    let mut rest = query;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        let range = inner.split(':').next().unwrap_or(inner);
        if let Some(d) = parse_prom_duration(range) {
            best = Some(best.map_or(d, |b| b.max(d)));
        }
        rest = &after[close + 1..];
    }
    best
}

/// The query window used for a trigger: the policy's explicit value, else read from the query.
/// Probes look at the present only.
pub fn trigger_query_window(t: &TriggerSpec) -> Duration {
    match &t.source {
        TriggerSource::Prometheus {
            query,
            query_window: explicit,
        } => explicit
            .or_else(|| query_window(query))
            .unwrap_or(Duration::ZERO),
        TriggerSource::Probe { .. } => Duration::ZERO,
    }
}

/// Worst-case time from a fault starting to the trigger firing: the `for:` window, plus one sample
/// interval (the sample that sees the window close may come that late), plus the query's window (a
/// `rate` over `[w]` fully reflects a step only after `w`).
pub fn worst_case_detection(t: &TriggerSpec, sample_every: Duration) -> Duration {
    t.for_ + sample_every + trigger_query_window(t)
}

/// One line of the plan per trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerPlan {
    pub name: String,
    pub above: f64,
    #[serde(rename = "for", with = "crate::policy::model::duration_text")]
    pub for_: Duration,
    #[serde(with = "crate::policy::model::duration_text")]
    pub query_window: Duration,
    #[serde(with = "crate::policy::model::duration_text")]
    pub worst_case_detection: Duration,
}

/// What the `plan` command shows for the rollback triggers of an environment.
pub fn plan_triggers(spec: &RollbackSpec) -> Vec<TriggerPlan> {
    spec.triggers
        .iter()
        .map(|t| TriggerPlan {
            name: t.name.clone(),
            above: t.above,
            for_: t.for_,
            query_window: trigger_query_window(t),
            worst_case_detection: worst_case_detection(t, spec.sample_every),
        })
        .collect()
}

/// Decision latency bookkeeping: from the moment the window was satisfied to traffic being back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DecisionLatency {
    /// `since + for` of the firing run, from the start of monitoring.
    #[serde(with = "crate::policy::model::duration_text")]
    pub satisfied_at: Duration,
    /// The sample that saw the window satisfied.
    #[serde(with = "crate::policy::model::duration_text")]
    pub detected_at: Duration,
    /// The selector revert returned.
    #[serde(with = "crate::policy::model::duration_text")]
    pub reverted_at: Duration,
}

impl DecisionLatency {
    /// Window satisfied → selector reverted (what the check run reports).
    pub fn total(&self) -> Duration {
        self.reverted_at.saturating_sub(self.satisfied_at)
    }
    /// Window satisfied → a sample saw it (bounded by one sample interval).
    pub fn detection(&self) -> Duration {
        self.detected_at.saturating_sub(self.satisfied_at)
    }
    /// Detected → selector reverted (the action's own reaction).
    pub fn reaction(&self) -> Duration {
        self.reverted_at.saturating_sub(self.detected_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(secs: u64, v: Option<f64>) -> Sample {
        Sample::new(Duration::from_secs(secs), v)
    }
    fn cond(above: f64, for_secs: u64) -> Condition {
        Condition {
            above,
            for_: Duration::from_secs(for_secs),
        }
    }
    fn series(vals: &[Option<f64>]) -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| s(i as u64, *v))
            .collect()
    }
    const B: Option<f64> = Some(1.0);
    const H: Option<f64> = Some(0.0);
    const N: Option<f64> = None;
    const NAN: Option<f64> = Some(f64::NAN);

    fn fired_at(st: TriggerState) -> Option<u64> {
        match st {
            TriggerState::Fired { detected_at, .. } => Some(detected_at.as_secs()),
            TriggerState::Quiet | TriggerState::Pending { .. } => None,
        }
    }

    /// Protects the exact "X for N" semantics for every no-data policy, one case per row.
    #[test]
    fn table_of_histories() {
        use NoDataPolicy::{Fail, Hold, Pass};
        // (samples at 0,1,2.. s; for seconds; policy; expected detection second)
        type Row = (Vec<Option<f64>>, u64, NoDataPolicy, Option<u64>);
        let rows: Vec<Row> = vec![
            (vec![], 3, Hold, None),
            (vec![H, H, H, H, H], 3, Hold, None),
            (vec![B, B, B, B], 3, Hold, Some(3)),
            (vec![B, B, B], 3, Hold, None),
            (vec![B], 0, Hold, Some(0)),
            (vec![H, B], 0, Pass, Some(1)),
            (vec![B, B, H, B, B, B], 2, Pass, Some(5)),
            (vec![B, B, H, B, B], 2, Pass, None),
            // gaps inside a run
            (vec![B, N, N, B], 3, Hold, Some(3)),
            (vec![B, N, N, N], 3, Hold, Some(3)),
            (vec![B, N, N, B], 3, Pass, None),
            (vec![B, N, N, B], 3, Fail, Some(3)),
            (vec![B, NAN, NAN, B], 3, Pass, None),
            (vec![B, NAN, NAN, B], 3, Hold, Some(3)),
            // gaps alone
            (vec![N, N, N, N], 3, Hold, None),
            (vec![N, N, N, N], 3, Pass, None),
            (vec![N, N, N, N], 3, Fail, Some(3)),
            (vec![NAN, NAN, NAN, NAN], 3, Fail, Some(3)),
            (vec![N, N, B, B], 1, Hold, Some(3)),
            (vec![H, N, N, N, B], 2, Hold, None),
            (vec![H, N, N, B, N, N], 2, Hold, Some(5)),
            (vec![H, N, B, N, B], 2, Pass, None),
            (vec![H, N, B, N, B], 2, Fail, Some(3)),
            // value exactly at threshold is healthy
            (vec![Some(0.5), Some(0.5), Some(0.5)], 1, Hold, None),
            (
                vec![Some(f64::INFINITY), Some(f64::INFINITY)],
                1,
                Hold,
                Some(1),
            ),
            // the first firing is final
            (vec![B, B, H, H], 1, Hold, Some(1)),
        ];
        for (i, (vals, for_, pol, want)) in rows.into_iter().enumerate() {
            let got = fired_at(evaluate(&cond(0.5, for_), pol, &series(&vals)));
            assert_eq!(got, want, "row {i}: {vals:?} for {for_}s {pol:?}");
        }
    }

    /// Protects the pending state and the bookkeeping of a firing run.
    #[test]
    fn pending_and_fired_bookkeeping() {
        let c = cond(0.5, 3);
        assert_eq!(
            evaluate(&c, NoDataPolicy::Hold, &series(&[H, B, B])),
            TriggerState::Pending {
                since: Duration::from_secs(1)
            }
        );
        // Irregular sampling: the window closes at 4 s, the sample that sees it comes at 5.5 s.
        let samples = vec![
            Sample::new(Duration::from_secs(1), B),
            Sample::new(Duration::from_millis(3500), B),
            Sample::new(Duration::from_millis(5500), B),
        ];
        assert_eq!(
            evaluate(&c, NoDataPolicy::Hold, &samples),
            TriggerState::Fired {
                since: Duration::from_secs(1),
                satisfied_at: Duration::from_secs(4),
                detected_at: Duration::from_millis(5500),
            }
        );
    }

    /// Protects "no blind windows": a window that ends with a trigger short of data is inconclusive
    /// (naming the trigger and its counts) under every no-data policy that does not fire, while
    /// enough data passes and a firing still wins.
    #[test]
    fn window_without_enough_data_is_inconclusive() {
        let mk = |name: &str, vals: &[Option<f64>]| TriggerSeries {
            name: name.into(),
            condition: cond(0.5, 1),
            samples: series(vals),
        };
        let w = Duration::from_secs(4);
        let min = Ratio(0.8);
        let gaps = mk("error-rate", &[H, None, None, None, None]);
        let full = mk("latency", &[H, H, H, H, H]);
        for pol in [NoDataPolicy::Hold, NoDataPolicy::Pass] {
            assert_eq!(
                verdict(&[full.clone(), gaps.clone()], pol, min, w, w),
                MonitorVerdict::Inconclusive {
                    detail: "`error-rate` had data in 1 of 5 samples (80% needed)".into()
                },
                "{pol:?}"
            );
        }
        // 4 of 5 is exactly 80%: enough.
        let four = mk("error-rate", &[H, H, None, H, H]);
        assert_eq!(
            verdict(&[full.clone(), four], NoDataPolicy::Hold, min, w, w),
            MonitorVerdict::Passed
        );
        // Gaps counted as breaches fire: a firing is never inconclusive.
        assert!(matches!(
            verdict(std::slice::from_ref(&gaps), NoDataPolicy::Fail, min, w, w),
            MonitorVerdict::Fire { .. }
        ));
        // Before the window ends nothing is decided.
        assert_eq!(
            verdict(&[gaps], NoDataPolicy::Hold, min, Duration::from_secs(1), w),
            MonitorVerdict::Continue
        );
    }

    /// Protects the monitoring verdict: firing beats the window ending, earliest detection wins.
    #[test]
    fn verdict_over_triggers() {
        let mk = |name: &str, vals: &[Option<f64>]| TriggerSeries {
            name: name.into(),
            condition: cond(0.5, 1),
            samples: series(vals),
        };
        let w = Duration::from_secs(4);
        let quiet = mk("a", &[H, H, H, H, H]);
        assert_eq!(
            verdict(
                std::slice::from_ref(&quiet),
                NoDataPolicy::Hold,
                crate::policy::model::DEFAULT_MIN_DATA,
                Duration::from_secs(2),
                w
            ),
            MonitorVerdict::Continue
        );
        assert_eq!(
            verdict(
                std::slice::from_ref(&quiet),
                NoDataPolicy::Hold,
                crate::policy::model::DEFAULT_MIN_DATA,
                w,
                w
            ),
            MonitorVerdict::Passed
        );
        let late = mk("late", &[H, H, B, B, B]);
        let early = mk("early", &[B, B, H, H, H]);
        let v = verdict(
            &[quiet, late, early],
            NoDataPolicy::Hold,
            crate::policy::model::DEFAULT_MIN_DATA,
            w,
            w,
        );
        assert_eq!(
            v,
            MonitorVerdict::Fire {
                trigger: "early".into(),
                satisfied_at: Duration::from_secs(1),
                detected_at: Duration::from_secs(1)
            }
        );
    }

    /// Protects the query-window reading used by the worst-case detection time.
    #[test]
    fn query_windows() {
        assert_eq!(
            parse_prom_duration("1h30m"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_prom_duration("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_prom_duration("5x"), None);
        assert_eq!(parse_prom_duration(""), None);
        assert_eq!(parse_prom_duration("m"), None);
        let q = r#"sum(rate(http_requests_total{version="{color}",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="{color}"}[30s]))"#;
        assert_eq!(query_window(q), Some(Duration::from_secs(60)));
        assert_eq!(
            query_window("max_over_time(rate(x[1m])[5m:10s])"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(query_window("process_resident_memory_bytes"), None);
        assert_eq!(query_window("x{a=\"[\"}"), None);
    }

    /// Protects the worst-case detection time the plan shows: for + sample interval + query window.
    #[test]
    fn worst_case_detection_time() {
        let t = TriggerSpec {
            name: "error-rate".into(),
            source: TriggerSource::Prometheus {
                query: "rate(x[1m])".into(),
                query_window: None,
            },
            above: 0.01,
            for_: Duration::from_secs(120),
        };
        assert_eq!(
            worst_case_detection(&t, Duration::from_secs(10)),
            Duration::from_secs(190)
        );
        let explicit = TriggerSpec {
            source: TriggerSource::Prometheus {
                query: "x".into(),
                query_window: Some(Duration::from_secs(5)),
            },
            ..t.clone()
        };
        assert_eq!(
            worst_case_detection(&explicit, Duration::from_secs(1)),
            Duration::from_secs(126)
        );
        let probe = TriggerSpec {
            source: TriggerSource::Probe {
                path: "/health".into(),
            },
            ..t
        };
        let spec = RollbackSpec {
            sample_every: Duration::from_secs(10),
            on_no_data: NoDataPolicy::Hold,
            min_data: crate::policy::model::DEFAULT_MIN_DATA,
            on_inconclusive: crate::policy::model::InconclusivePolicy::Rollback,
            triggers: vec![probe],
        };
        let plan = plan_triggers(&spec);
        assert_eq!(plan[0].worst_case_detection, Duration::from_secs(130));
        assert_eq!(plan[0].query_window, Duration::ZERO);
    }

    /// Protects the decision-latency arithmetic reported in the check run.
    #[test]
    fn latency_parts() {
        let l = DecisionLatency {
            satisfied_at: Duration::from_secs(10),
            detected_at: Duration::from_millis(10_700),
            reverted_at: Duration::from_millis(10_750),
        };
        assert_eq!(l.total(), Duration::from_millis(750));
        assert_eq!(l.detection(), Duration::from_millis(700));
        assert_eq!(l.reaction(), Duration::from_millis(50));
    }

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(f64::NAN)),
            6 => (0u32..100).prop_map(|v| Some(f64::from(v) / 100.0)),
        ]
    }
    fn policy() -> impl Strategy<Value = NoDataPolicy> {
        prop_oneof![
            Just(NoDataPolicy::Hold),
            Just(NoDataPolicy::Fail),
            Just(NoDataPolicy::Pass)
        ]
    }

    proptest! {
        /// Protects "a spike shorter than `for` never fires", whatever surrounds it.
        #[test]
        fn short_spike_never_fires(before in 0usize..10, spike in 1usize..10, extra in 1u64..5, after in 0usize..10, pol in policy()) {
            let for_ = spike as u64 - 1 + extra; // spike spans (spike-1) s < for
            let mut vals = vec![H; before];
            vals.extend(std::iter::repeat_n(B, spike));
            vals.extend(std::iter::repeat_n(H, after));
            prop_assert_eq!(fired_at(evaluate(&cond(0.5, for_), pol, &series(&vals))), None);
        }

        /// Protects monotonicity in the threshold: lowering it never delays or prevents a firing.
        #[test]
        fn monotonic_in_threshold(vals in prop::collection::vec(value(), 0..30), t1 in 0u32..100, t2 in 0u32..100, for_ in 0u64..6, pol in policy()) {
            let (lo, hi) = (f64::from(t1.min(t2)) / 100.0, f64::from(t1.max(t2)) / 100.0);
            let samples = series(&vals);
            if let Some(at_hi) = fired_at(evaluate(&cond(hi, for_), pol, &samples)) {
                let at_lo = fired_at(evaluate(&cond(lo, for_), pol, &samples));
                prop_assert!(at_lo.is_some_and(|a| a <= at_hi));
            }
        }

        /// Protects monotonicity in the window: a shorter `for` never delays or prevents a firing.
        #[test]
        fn monotonic_in_for(vals in prop::collection::vec(value(), 0..30), f1 in 0u64..8, f2 in 0u64..8, pol in policy()) {
            let samples = series(&vals);
            if let Some(at_long) = fired_at(evaluate(&cond(0.5, f1.max(f2)), pol, &samples)) {
                let at_short = fired_at(evaluate(&cond(0.5, f1.min(f2)), pol, &samples));
                prop_assert!(at_short.is_some_and(|a| a <= at_long));
            }
        }

        /// Protects the ordering of no-data policies: fail fires whenever hold does, hold whenever pass does.
        #[test]
        fn no_data_policies_ordered(vals in prop::collection::vec(value(), 0..30), for_ in 0u64..6) {
            let samples = series(&vals);
            let c = cond(0.5, for_);
            let pass = fired_at(evaluate(&c, NoDataPolicy::Pass, &samples));
            let hold = fired_at(evaluate(&c, NoDataPolicy::Hold, &samples));
            let fail = fired_at(evaluate(&c, NoDataPolicy::Fail, &samples));
            if let Some(p) = pass { prop_assert!(hold.is_some_and(|h| h <= p)); }
            if let Some(h) = hold { prop_assert!(fail.is_some_and(|f| f <= h)); }
        }

        /// Protects the oracle: firing means every sample in [since, detected] counted as a breach.
        #[test]
        fn fired_window_really_held(vals in prop::collection::vec(value(), 0..30), for_ in 0u64..6, pol in policy()) {
            let samples = series(&vals);
            let c = cond(0.5, for_);
            if let TriggerState::Fired { since, satisfied_at, detected_at } = evaluate(&c, pol, &samples) {
                prop_assert!(detected_at >= satisfied_at);
                prop_assert_eq!(satisfied_at, since + c.for_);
                let first = since.as_secs() as usize;
                prop_assert_eq!(classify(&c, pol, samples[first].value), SampleClass::Breach);
                for smp in &samples[first..=detected_at.as_secs() as usize] {
                    prop_assert_ne!(classify(&c, pol, smp.value), SampleClass::Healthy);
                }
            }
        }
    }
}

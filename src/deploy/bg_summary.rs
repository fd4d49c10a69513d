//! Pure renderers for a blue-green release: the progress text of the deployment check run, and the
//! job summary's mermaid timeline and `xychart-beta` of each trigger's series.
//!
//! Owns: Markdown text only. Must not touch: GitHub, files, clocks.

use crate::deploy::bluegreen::Outcome;
use crate::deploy::bluegreen_run::{BgReport, MonitorSnapshot, RunEnd, TimelineEntry};
use crate::deploy::triggers::{TriggerSeries, TriggerState};
use std::fmt::Write as _;

fn num(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let r = (v * 10_000.0).round() / 10_000.0;
    format!("{r}")
}

fn state_text(s: &TriggerState) -> String {
    match s {
        TriggerState::Quiet => "ok".into(),
        TriggerState::Pending { since } => format!("above since {}s", since.as_secs()),
        TriggerState::Fired { .. } => "**fired**".into(),
    }
}

/// The check-run text while monitoring: each trigger's current value vs its threshold.
pub fn render_progress(s: &MonitorSnapshot) -> String {
    let mut out = String::new();
    let what = match s.shift_step {
        Some(n) => format!("shift step {} on {}", n + 1, s.color),
        None => format!("monitoring {}", s.color),
    };
    let _ = writeln!(
        out,
        "{what}: {}s of {}s\n",
        s.elapsed.as_secs(),
        s.window.as_secs()
    );
    out.push_str("| trigger | value | threshold | state |\n|---|---|---|---|\n");
    for t in &s.triggers {
        let v = t.value.map_or_else(|| "no data".to_string(), num);
        let _ = writeln!(
            out,
            "| {} | {} | > {} | {} |",
            t.name,
            v,
            num(t.above),
            state_text(&t.state)
        );
    }
    out
}

fn mermaid_text(s: &str) -> String {
    s.replace([':', '#', ';'], " ").replace('\n', " ")
}

/// A mermaid `timeline` of the release (one section per minute, times as `HH:MM:SS`).
pub fn render_timeline(title: &str, entries: &[TimelineEntry]) -> String {
    let mut out = String::from("```mermaid\ntimeline\n");
    let _ = writeln!(out, "    title {}", mermaid_text(title));
    for e in entries {
        let _ = writeln!(
            out,
            "    {} : {}",
            e.at.format("%H.%M.%S%.3f"),
            mermaid_text(&e.what)
        );
    }
    out.push_str("```\n");
    out
}

/// One `xychart-beta` per trigger: its samples (gaps drawn at 0 and counted in the title) and the
/// threshold as a second line.
pub fn render_trigger_charts(series: &[TriggerSeries]) -> String {
    let mut out = String::new();
    for s in series {
        if s.samples.is_empty() {
            continue;
        }
        let gaps = s.samples.iter().filter(|x| x.value.is_none()).count();
        let finite: Vec<f64> = s
            .samples
            .iter()
            .filter_map(|x| x.value)
            .filter(|v| v.is_finite())
            .collect();
        let max = finite.iter().copied().fold(s.condition.above, f64::max);
        let top = if max > 0.0 { max * 1.1 } else { 1.0 };
        let xs: Vec<String> = s
            .samples
            .iter()
            .map(|x| format!("{}", x.at.as_secs()))
            .collect();
        let ys: Vec<String> = s
            .samples
            .iter()
            .map(|x| num(x.value.map_or(0.0, |v| if v.is_finite() { v } else { top })))
            .collect();
        let th: Vec<String> = s.samples.iter().map(|_| num(s.condition.above)).collect();
        let gap_note = if gaps > 0 {
            format!(", {gaps} samples without data")
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "```mermaid\nxychart-beta\n    title \"{} (threshold {}, for {}s{gap_note})\"\n    x-axis \"seconds\" [{}]\n    y-axis \"value\" 0 --> {}\n    line [{}]\n    line [{}]\n```\n",
            mermaid_text(&s.name),
            num(s.condition.above),
            s.condition.for_.as_secs(),
            xs.join(", "),
            num(top),
            ys.join(", "),
            th.join(", "),
        );
    }
    out
}

/// Why a run paused: before the switch (`manual_promote`), or on a window without enough data.
pub fn paused_text(state: &crate::deploy::bluegreen::BgState) -> String {
    match state.phase {
        crate::deploy::bluegreen::Phase::Unproven { .. } => format!(
            "paused: {}; `promote` accepts the release as it stands, `rollback` reverts it",
            state
                .reason
                .as_deref()
                .unwrap_or("the window was inconclusive")
        ),
        _ => "paused before the switch; run `promote` to continue".to_string(),
    }
}

/// The job summary of a release: outcome, key times, the trigger that fired with its samples, the
/// timeline and the charts.
pub fn render_summary(title: &str, r: &BgReport) -> String {
    let mut out = String::new();
    let head = match &r.end {
        RunEnd::Paused => paused_text(&r.state),
        RunEnd::Finished(o) => match o {
            Outcome::Succeeded => "released".into(),
            Outcome::RolledBack { trigger } => format!("rolled back: trigger `{trigger}` fired"),
            Outcome::Failed { reason } => format!("failed, traffic untouched: {reason}"),
            Outcome::Cancelled => "cancelled; traffic on a checked colour".into(),
            Outcome::Nothing { reason } => format!("nothing to do: {reason}"),
            Outcome::Refused { reason } => format!("refused: {reason}"),
            Outcome::RevertPending { reason } => format!(
                "**revert pending**: traffic may still be on the failed colour ({reason}); the next run of any command finishes the revert first"
            ),
        },
    };
    let _ = writeln!(out, "### {}\n\n{head}\n", mermaid_text(title));
    if let Some(a) = r.state.active {
        let _ = writeln!(
            out,
            "- live colour: **{a}** ({})",
            r.state.active_image.as_deref().unwrap_or("?")
        );
    }
    if let Some(d) = r.ready_to_switch {
        let _ = writeln!(out, "- ready → switched: {} ms", d.as_millis());
    }
    if let Some(w) = r.revert_waited {
        let _ = writeln!(out, "- revert waited: {} ms", w.as_millis());
    }
    for s in &r.series {
        let (with, total) = s.coverage();
        if with < total {
            let _ = writeln!(
                out,
                "- `{}`: data in {with} of {total} samples ({} no data)",
                s.name,
                total - with
            );
        }
    }
    if let Some(k) = r.state.keep_until {
        let _ = writeln!(out, "- previous colour kept until {}", k.to_rfc3339());
    }
    if let Some(f) = &r.fired {
        if let Some(l) = f.latency {
            let _ = writeln!(
                out,
                "- decision latency (window satisfied → selector reverted): {} ms (detection {} ms, reaction {} ms)",
                l.total().as_millis(),
                l.detection().as_millis(),
                l.reaction().as_millis()
            );
        }
        let vals: Vec<String> = f
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{}s={}",
                    s.at.as_secs(),
                    s.value.map_or_else(|| "no data".into(), num)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "- `{}` samples (threshold > {}): {}",
            f.name,
            num(f.above),
            vals.join(", ")
        );
    }
    out.push('\n');
    out.push_str(&render_timeline(title, &r.timeline));
    out.push_str(&render_trigger_charts(&r.series));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::bluegreen::{BgState, Color};
    use crate::deploy::bluegreen_run::{FiredTrigger, TriggerStatus};
    use crate::deploy::triggers::{Condition, DecisionLatency, Sample};
    use chrono::TimeZone;
    use std::time::Duration;

    fn series() -> TriggerSeries {
        TriggerSeries {
            name: "error-rate".into(),
            condition: Condition {
                above: 0.01,
                for_: Duration::from_secs(5),
            },
            samples: vec![
                Sample::new(Duration::from_secs(0), Some(0.0)),
                Sample::new(Duration::from_secs(1), None),
                Sample::new(Duration::from_secs(2), Some(0.5)),
            ],
        }
    }

    /// Protects the progress text posted to the check run while monitoring.
    #[test]
    fn progress_table() {
        let s = MonitorSnapshot {
            color: Color::Green,
            shift_step: None,
            elapsed: Duration::from_secs(12),
            window: Duration::from_secs(40),
            triggers: vec![
                TriggerStatus {
                    name: "error-rate".into(),
                    value: Some(0.0213),
                    above: 0.01,
                    state: TriggerState::Pending {
                        since: Duration::from_secs(9),
                    },
                },
                TriggerStatus {
                    name: "memory".into(),
                    value: None,
                    above: 0.95,
                    state: TriggerState::Quiet,
                },
            ],
        };
        insta::assert_snapshot!(render_progress(&s), @r"
        monitoring green: 12s of 40s

        | trigger | value | threshold | state |
        |---|---|---|---|
        | error-rate | 0.0213 | > 0.01 | above since 9s |
        | memory | no data | > 0.95 | ok |
        ");
    }

    /// Protects the mermaid blocks of the job summary (timeline + one chart per trigger).
    #[test]
    fn summary_with_rollback() {
        let at = |s: i64| {
            chrono::Utc
                .timestamp_opt(1_800_000_000 + s, 0)
                .single()
                .unwrap_or_default()
        };
        let r = BgReport {
            end: RunEnd::Finished(Outcome::RolledBack {
                trigger: "error-rate".into(),
            }),
            state: BgState {
                active: Some(Color::Blue),
                active_image: Some("app:v1".into()),
                ..BgState::default()
            },
            timeline: vec![
                TimelineEntry {
                    at: at(0),
                    what: "deploy green (app:v2, 3 replicas)".into(),
                },
                TimelineEntry {
                    at: at(3),
                    what: "selector on green".into(),
                },
                TimelineEntry {
                    at: at(9),
                    what: "selector back on blue".into(),
                },
            ],
            series: vec![series()],
            fired: Some(FiredTrigger {
                name: "error-rate".into(),
                above: 0.01,
                samples: series().samples,
                latency: Some(DecisionLatency {
                    satisfied_at: Duration::from_millis(7000),
                    detected_at: Duration::from_millis(7400),
                    reverted_at: Duration::from_millis(7420),
                }),
            }),
            ready_to_switch: Some(Duration::from_millis(42)),
            checked_to_switch: Some(Duration::from_millis(8)),
            release_time: Some(Duration::from_millis(2100)),
            revert_waited: Some(Duration::from_millis(640)),
        };
        insta::assert_snapshot!(render_summary("web production", &r));
    }
}

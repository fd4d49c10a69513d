//! The pod-level keys of an environment: `resources`, `probes`, `security_context`,
//! `image_pull_secrets`, `service_account`, `tls_mount`, `drain`, `create_namespace`, `patches`.
//!
//! Owns: decoding those keys into `Resources` / `WorkloadSpec`, every key checked and every problem
//! located. Must not touch: what the objects look like (`deploy::manifests`).

use super::decode::{Decoder, Fields, is_quantity};
use super::model::*;
use super::yaml::{Node, NodeKind, to_json};
use std::time::Duration;

/// The environment keys this module reads (besides `resources`).
pub const WORKLOAD_KEYS: &[&str] = &[
    "probes",
    "security_context",
    "image_pull_secrets",
    "service_account",
    "tls_mount",
    "drain",
    "create_namespace",
    "patches",
];

/// `resources: {cpu, memory}` (requests = limits) or `{requests: {cpu, memory}, limits: {…}}`.
pub fn decode_resources(d: &mut Decoder, n: &Node, path: &str) -> Option<Resources> {
    let f = d.fields(n, path, &["cpu", "memory", "requests", "limits"])?;
    if f.has("requests") || f.has("limits") {
        if let Some(p) = f.key_pos("cpu").or(f.key_pos("memory")) {
            d.error_hint(
                p,
                path,
                "write either the shorthand `{cpu, memory}` or `requests` / `limits`, not both",
                None,
            );
            return None;
        }
        let requests = d
            .require(&f, "requests")
            .and_then(|v| quantities(d, v, &f.child("requests")));
        let limits = d
            .require(&f, "limits")
            .and_then(|v| quantities(d, v, &f.child("limits")));
        return Some(Resources {
            requests: requests?,
            limits: limits?,
        });
    }
    let q = quantities_of(d, &f)?;
    Some(Resources {
        requests: q.clone(),
        limits: q,
    })
}

fn quantities(d: &mut Decoder, n: &Node, path: &str) -> Option<Quantities> {
    let f = d.fields(n, path, &["cpu", "memory"])?;
    quantities_of(d, &f)
}

fn quantities_of(d: &mut Decoder, f: &Fields<'_>) -> Option<Quantities> {
    let q = |d: &mut Decoder, k: &str| {
        let v = d.require(f, k)?;
        let s = d.string(v, &f.child(k))?;
        if !is_quantity(&s) {
            d.error_hint(
                v.pos,
                &f.child(k),
                format!("`{s}` is not a Kubernetes quantity"),
                Some("e.g. `2`, `500m`, `4Gi`".into()),
            );
            return None;
        }
        Some(s)
    };
    let cpu = q(d, "cpu");
    let memory = q(d, "memory");
    Some(Quantities {
        cpu: cpu?,
        memory: memory?,
    })
}

/// The workload keys of one environment mapping; absent keys keep the defaults.
pub fn decode_workload(d: &mut Decoder, f: &Fields<'_>) -> Option<WorkloadSpec> {
    let mut w = WorkloadSpec::default();
    let mut ok = true;
    if let Some(v) = f.get("probes") {
        let p = f.child("probes");
        if let Some(pf) = d.fields(v, &p, &["liveness", "startup"]) {
            w.liveness = pf
                .get("liveness")
                .and_then(|x| probe(d, x, &pf.child("liveness")));
            w.startup = pf
                .get("startup")
                .and_then(|x| probe(d, x, &pf.child("startup")));
        }
    }
    if let Some(v) = f.get("security_context") {
        match security(d, v, &f.child("security_context")) {
            Some(s) => w.security = s,
            None => ok = false,
        }
    }
    if let Some(v) = f.get("image_pull_secrets") {
        w.image_pull_secrets = d.string_list(v, &f.child("image_pull_secrets"));
    }
    if let Some(v) = f.get("service_account") {
        w.service_account = d.non_empty_string(v, &f.child("service_account"));
    }
    if let Some(v) = f.get("tls_mount") {
        match d.string(v, &f.child("tls_mount")) {
            Some(s) if s.starts_with('/') => w.tls_mount = s,
            Some(s) => {
                d.error(
                    v.pos,
                    &f.child("tls_mount"),
                    format!("`{s}` is not an absolute path"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(v) = f.get("drain") {
        let p = f.child("drain");
        if let Some(df) = d.fields(v, &p, &["pre_stop", "grace"]) {
            if let Some(x) = df.get("pre_stop") {
                w.pre_stop = d.duration(x, &df.child("pre_stop")).unwrap_or(w.pre_stop);
            }
            if let Some(x) = df.get("grace") {
                w.termination_grace = d
                    .duration(x, &df.child("grace"))
                    .unwrap_or(w.termination_grace);
            }
            if w.pre_stop >= w.termination_grace {
                d.error(
                    v.pos,
                    &p,
                    "pre_stop must be shorter than grace (the pod is killed at grace)",
                );
                ok = false;
            }
        }
    }
    if let Some(v) = f.get("create_namespace") {
        w.create_namespace = d.bool(v, &f.child("create_namespace")).unwrap_or(false);
    }
    if let Some(v) = f.get("patches") {
        w.patches = patches(d, v, &f.child("patches"));
    }
    ok.then_some(w)
}

fn probe(d: &mut Decoder, n: &Node, path: &str) -> Option<ProbeSpec> {
    let f = d.fields(n, path, &["path", "period", "failures", "initial_delay"])?;
    let probe_path = d.require(&f, "path").and_then(|v| {
        let s = d.string(v, &f.child("path"))?;
        if !s.starts_with('/') {
            d.error(
                v.pos,
                &f.child("path"),
                format!("`{s}` must start with `/`"),
            );
            return None;
        }
        Some(s)
    });
    let period = f
        .get("period")
        .map(|v| d.duration(v, &f.child("period")))
        .unwrap_or(Some(Duration::from_secs(10)));
    let failures = f
        .get("failures")
        .map(|v| d.u32_in(v, &f.child("failures"), 1, 1000))
        .unwrap_or(Some(3));
    let initial_delay = f
        .get("initial_delay")
        .map(|v| d.duration(v, &f.child("initial_delay")))
        .unwrap_or(Some(Duration::ZERO));
    Some(ProbeSpec {
        path: probe_path?,
        period: period?,
        failure_threshold: failures?,
        initial_delay: initial_delay?,
    })
}

fn security(d: &mut Decoder, n: &Node, path: &str) -> Option<SecuritySpec> {
    const KEYS: &[&str] = &[
        "run_as_non_root",
        "run_as_user",
        "allow_privilege_escalation",
        "read_only_root_filesystem",
        "drop_all_capabilities",
        "seccomp_runtime_default",
    ];
    let f = d.fields(n, path, KEYS)?;
    let mut s = SecuritySpec::default();
    let flag = |d: &mut Decoder, key: &str, slot: &mut bool| {
        if let Some(v) = f.get(key)
            && let Some(b) = d.bool(v, &f.child(key))
        {
            *slot = b;
        }
    };
    flag(d, "run_as_non_root", &mut s.run_as_non_root);
    flag(
        d,
        "allow_privilege_escalation",
        &mut s.allow_privilege_escalation,
    );
    flag(
        d,
        "read_only_root_filesystem",
        &mut s.read_only_root_filesystem,
    );
    flag(d, "drop_all_capabilities", &mut s.drop_all_capabilities);
    flag(d, "seccomp_runtime_default", &mut s.seccomp_runtime_default);
    if let Some(v) = f.get("run_as_user") {
        s.run_as_user = Some(i64::from(d.u32_in(
            v,
            &f.child("run_as_user"),
            0,
            u32::MAX,
        )?));
    }
    Some(s)
}

/// `patches: [{kind, name?, json | merge | strategic}]`: exactly one patch body per entry; a JSON
/// patch must be a list of RFC 6902 operations.
fn patches(d: &mut Decoder, n: &Node, path: &str) -> Vec<PatchSpec> {
    let mut out = Vec::new();
    for (i, item) in d.list(n, path).iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let Some(f) = d.fields(item, &ip, &["kind", "name", "json", "merge", "strategic"]) else {
            continue;
        };
        let kind = d
            .require(&f, "kind")
            .and_then(|v| d.choice(v, &f.child("kind"), PATCH_KINDS));
        let name = f
            .get("name")
            .and_then(|v| d.non_empty_string(v, &f.child("name")));
        let bodies: Vec<&str> = ["json", "merge", "strategic"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        let patch = match bodies.as_slice() {
            ["json"] => f
                .get("json")
                .and_then(|v| json_patch_ops(d, v, &f.child("json"))),
            ["merge"] => f
                .get("merge")
                .and_then(|v| object_body(d, v, &f.child("merge")).map(PatchKind::Merge)),
            ["strategic"] => f
                .get("strategic")
                .and_then(|v| object_body(d, v, &f.child("strategic")).map(PatchKind::Strategic)),
            _ => {
                d.error_hint(
                    item.pos,
                    &ip,
                    "a patch needs exactly one of `json`, `merge`, `strategic`",
                    None,
                );
                None
            }
        };
        if let (Some(kind), Some(patch)) = (kind, patch) {
            out.push(PatchSpec {
                kind: kind.to_string(),
                name,
                patch,
                at: format!("{ip} (line {}, column {})", item.pos.line, item.pos.col),
            });
        }
    }
    out
}

/// The kinds the generator produces, i.e. what a patch can target.
pub const PATCH_KINDS: &[(&str, &str)] = &[
    ("Deployment", "Deployment"),
    ("Service", "Service"),
    ("Secret", "Secret"),
    ("HorizontalPodAutoscaler", "HorizontalPodAutoscaler"),
    ("Namespace", "Namespace"),
];

fn object_body(d: &mut Decoder, n: &Node, path: &str) -> Option<serde_json::Value> {
    if !matches!(n.kind, NodeKind::Map(_)) {
        d.error(n.pos, path, "expected a mapping (the fields to merge)");
        return None;
    }
    Some(to_json(n))
}

fn json_patch_ops(d: &mut Decoder, n: &Node, path: &str) -> Option<PatchKind> {
    const OPS: &[&str] = &["add", "remove", "replace", "move", "copy", "test"];
    let mut ok = true;
    for (i, op) in d.list(n, path).iter().enumerate() {
        let op_path = format!("{path}[{i}]");
        let Some(f) = d.fields(op, &op_path, &["op", "path", "value", "from"]) else {
            ok = false;
            continue;
        };
        let name = d.require(&f, "op").and_then(|v| {
            let s = d.string(v, &f.child("op"))?;
            if OPS.contains(&s.as_str()) {
                Some(s)
            } else {
                d.error_hint(
                    v.pos,
                    &f.child("op"),
                    format!("unknown operation `{s}`"),
                    Some(format!("one of: {}", OPS.join(", "))),
                );
                None
            }
        });
        let ptr = d.require(&f, "path").and_then(|v| {
            let s = d.string(v, &f.child("path"))?;
            if !s.is_empty() && !s.starts_with('/') {
                d.error(
                    v.pos,
                    &f.child("path"),
                    format!("`{s}` is not a JSON pointer (starts with `/`)"),
                );
                return None;
            }
            Some(s)
        });
        let needs = match name.as_deref() {
            Some("add" | "replace" | "test") => Some("value"),
            Some("move" | "copy") => Some("from"),
            _ => None,
        };
        if let Some(k) = needs
            && !f.has(k)
        {
            d.error(op.pos, &f.child(k), "missing required key");
            ok = false;
        }
        ok &= name.is_some() && ptr.is_some();
    }
    if !matches!(n.kind, NodeKind::Seq(_)) {
        return None;
    }
    let value = to_json(n);
    match serde_json::from_value::<json_patch::Patch>(value.clone()) {
        Ok(_) if ok => Some(PatchKind::Json(value)),
        Ok(_) => None,
        Err(e) => {
            d.error(n.pos, path, format!("not an RFC 6902 patch: {e}"));
            None
        }
    }
}

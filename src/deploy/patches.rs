//! User patches on the generated objects: RFC 6902 JSON patches, RFC 7386 merge patches, and a
//! strategic-merge subset.
//!
//! Owns: applying the policy's `patches` to one object. Must not touch: the network, or what the
//! generator puts in the objects (`manifests`).
//!
//! The strategic subset is a merge patch, except that these lists merge item by item on `name`
//! (an item whose `name` is new is appended, an existing one is merged recursively, an item
//! `{name: x, $patch: delete}` removes it): `containers`, `initContainers`, `env`, `volumes`,
//! `volumeMounts`, `ports`, `imagePullSecrets`. Every other list is replaced, as in a merge patch.

use crate::policy::model::{PatchKind, PatchSpec};
use serde_json::Value;

/// Lists merged by `name` in a strategic patch.
pub const MERGE_BY_NAME: &[&str] = &[
    "containers",
    "initContainers",
    "env",
    "volumes",
    "volumeMounts",
    "ports",
    "imagePullSecrets",
];

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("apply patch {at} to {kind}/{name}")]
    Json {
        at: String,
        kind: String,
        name: String,
        #[source]
        source: json_patch::PatchError,
    },
    #[error("apply patch {at} to {kind}/{name}: the operations are not RFC 6902")]
    Shape {
        at: String,
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Applies every patch of `patches` that targets `kind` / `name` (a patch without a name targets
/// every object of the kind), in policy order.
pub fn apply(
    patches: &[PatchSpec],
    kind: &str,
    name: &str,
    doc: &mut Value,
) -> Result<(), PatchError> {
    for p in patches
        .iter()
        .filter(|p| p.kind == kind && p.name.as_deref().is_none_or(|n| n == name))
    {
        match &p.patch {
            PatchKind::Json(ops) => {
                let ops: json_patch::Patch =
                    serde_json::from_value(ops.clone()).map_err(|source| PatchError::Shape {
                        at: p.at.clone(),
                        kind: kind.into(),
                        name: name.into(),
                        source,
                    })?;
                json_patch::patch(doc, &ops).map_err(|source| PatchError::Json {
                    at: p.at.clone(),
                    kind: kind.into(),
                    name: name.into(),
                    source,
                })?;
            }
            PatchKind::Merge(m) => json_patch::merge(doc, m),
            PatchKind::Strategic(m) => strategic(doc, m),
        }
    }
    Ok(())
}

/// The strategic-merge subset described at the top of this file.
pub fn strategic(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(serde_json::Map::new());
    }
    let Value::Object(d) = doc else { return };
    for (k, pv) in p {
        if pv.is_null() {
            d.remove(k);
            continue;
        }
        match (MERGE_BY_NAME.contains(&k.as_str()), pv) {
            (true, Value::Array(items)) => {
                let target = d.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if !target.is_array() {
                    *target = Value::Array(Vec::new());
                }
                if let Value::Array(list) = target {
                    merge_named(list, items);
                }
            }
            _ => strategic(d.entry(k.clone()).or_insert(Value::Null), pv),
        }
    }
}

fn merge_named(list: &mut Vec<Value>, items: &[Value]) {
    for item in items {
        let name = item.get("name").and_then(Value::as_str);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        let found = name.and_then(|n| {
            list.iter()
                .position(|x| x.get("name").and_then(Value::as_str) == Some(n))
        });
        match (found, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut list[i], item),
            (None, false) => list.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(kind: &str, name: Option<&str>, patch: PatchKind) -> PatchSpec {
        PatchSpec {
            kind: kind.into(),
            name: name.map(Into::into),
            patch,
            at: "environments.x.patches[0]".into(),
        }
    }

    /// Protects the strategic subset: containers and env merge on `name` (a sidecar is appended,
    /// the app container keeps its fields), `$patch: delete` removes, other lists are replaced.
    #[test]
    fn strategic_merges_named_lists() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}]}
        ], "tolerations": [{"key": "x"}]}});
        strategic(
            &mut doc,
            &json!({"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "2"}, {"name": "A", "$patch": "delete"}]},
                {"name": "proxy", "image": "envoy"}
            ], "tolerations": [{"key": "y"}]}}),
        );
        assert_eq!(
            doc,
            json!({"spec": {"containers": [
                {"name": "app", "image": "a", "env": [{"name": "B", "value": "2"}]},
                {"name": "proxy", "image": "envoy"}
            ], "tolerations": [{"key": "y"}]}})
        );
    }

    /// Protects targeting: a named patch touches only its object; JSON patch failures name the
    /// patch and the object.
    #[test]
    fn targets_by_kind_and_name_and_reports_failures() {
        let ps = vec![
            spec(
                "Deployment",
                Some("web"),
                PatchKind::Merge(json!({"metadata": {"annotations": {"a": "1"}}})),
            ),
            spec(
                "Deployment",
                None,
                PatchKind::Json(json!([{"op": "add", "path": "/spec/x", "value": 1}])),
            ),
        ];
        let mut other = json!({"spec": {}});
        apply(&ps, "Deployment", "api", &mut other).unwrap();
        assert_eq!(other, json!({"spec": {"x": 1}}));
        let mut web = json!({"spec": {}});
        apply(&ps, "Deployment", "web", &mut web).unwrap();
        assert_eq!(web["metadata"]["annotations"]["a"], "1");
        let bad = vec![spec(
            "Service",
            None,
            PatchKind::Json(json!([{"op": "remove", "path": "/nope"}])),
        )];
        let e = apply(&bad, "Service", "web", &mut json!({})).unwrap_err();
        assert!(e.to_string().contains("patches[0] to Service/web"), "{e}");
    }
}

//! A request the apiserver refused for want of a permission (HTTP 403, reason `Forbidden`), as
//! data: which verb on which resource in which namespace, for whom.
//!
//! Owns: recognising a 403 in a kube error (also inside a watch), reading the RBAC authorizer's
//! message, and telling a final 403 from one a restarted apiserver gives while its authorization
//! caches are still filling ([`warming`]). Must not decide what to report around a refusal: that
//! is the caller's. The permissions the deploy needs are listed in `examples/deploy/rbac.yaml`.

use kube::core::Status;
use kube::runtime::watcher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after the apiserver was last unreachable a 403 is taken for a restarted apiserver's
/// authorizer that has not yet read its Roles (measured here: the first second after a restart
/// refuses every ServiceAccount request) and retried, instead of being final.
pub const WARMUP: Duration = Duration::from_secs(10);

static LAST_UNREACHABLE: Mutex<Option<Instant>> = Mutex::new(None);

/// Records that a request to the apiserver just failed in transport (refused, reset, timed out)
/// or with a 5xx: the apiserver may be restarting.
pub fn note_unreachable() {
    if let Ok(mut t) = LAST_UNREACHABLE.lock() {
        *t = Some(Instant::now());
    }
}

/// True within [`WARMUP`] of the apiserver last being unreachable: a 403 now may not be final.
pub fn warming() -> bool {
    LAST_UNREACHABLE
        .lock()
        .ok()
        .and_then(|t| *t)
        .is_some_and(|t| t.elapsed() < WARMUP)
}

/// Whether the apiserver says it is ready (`GET /readyz`, which every identity may read). A 403 from
/// one that is not is not final: measured on the testbed, a restarted apiserver refuses
/// ServiceAccount requests for its first half second, while `/readyz` answers nothing or 500 for
/// its first three — a restart [`warming`] cannot see when no request of this run was in flight.
pub async fn apiserver_ready(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return true;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.request_text(request)).await,
        Ok(Ok(_))
    )
}

/// What a watch error means to a loop that re-watches: `Some` for a final refusal (stop and
/// report it); `None` to retry — a 403 while [`warming`], or any other error (which is noted as
/// the apiserver being unreachable).
pub fn watch_refusal(e: &watcher::Error) -> Option<Forbidden> {
    match forbidden_watch(e) {
        Some(f) if !warming() => Some(f),
        Some(_) => {
            tracing::warn!(error = %e, "403 from an apiserver that was just unreachable; retrying while its authorizer warms up");
            None
        }
        None => {
            note_unreachable();
            None
        }
    }
}

/// The Role every namespaced rule belongs in.
pub const RBAC_EXAMPLE: &str = "examples/deploy/rbac.yaml";

/// A refused request. Reads after "failed to …":
/// `patch services in namespace x: forbidden for system:serviceaccount:x:fm-deploy (…)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Forbidden {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// The resource as RBAC names it (`services`, `serviceaccounts/token`).
    pub resource: String,
    /// The API group; empty for the core group.
    pub group: String,
    /// `None` at cluster scope (Namespaces and other cluster-scoped objects).
    pub namespace: Option<String>,
    /// Who was refused (`system:serviceaccount:ns:fm-deploy`); empty when the message has no user.
    pub user: String,
    /// The apiserver's message, kept when it could not be read as an RBAC refusal.
    pub message: String,
    /// The refusal did not say where (the create check of a server-side apply): the caller
    /// fills in the namespace it sent to ([`Forbidden::in_namespace`]).
    pub scope_unknown: bool,
}

impl Forbidden {
    /// The namespace the request went to, when the refusal did not say (a namespaced object).
    pub fn in_namespace(mut self, namespace: &str) -> Forbidden {
        if self.scope_unknown && !namespace.is_empty() {
            self.namespace = Some(namespace.to_string());
            self.scope_unknown = false;
        }
        self
    }

    /// `deployments.apps`, `services`: the resource the way `kubectl auth can-i` takes it.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn describe(&self) -> String {
        if self.verb.is_empty() {
            return format!("forbidden: {} (see {RBAC_EXAMPLE})", self.message);
        }
        let who = if self.user.is_empty() {
            "the deploy identity"
        } else {
            self.user.as_str()
        };
        match &self.namespace {
            Some(ns) => format!(
                "{} {} in namespace {ns}: forbidden for {who} (add it to the Role, see {RBAC_EXAMPLE})",
                self.verb,
                self.qualified_resource()
            ),
            None => format!(
                "{} {} at cluster scope: forbidden for {who} (grant the optional ClusterRole in {RBAC_EXAMPLE}, or create the namespace beforehand)",
                self.verb,
                self.qualified_resource()
            ),
        }
    }
}

/// Pure: the refusal in a kube error, if it is a 403.
pub fn forbidden(e: &kube::Error) -> Option<Forbidden> {
    match e {
        kube::Error::Api(s) => forbidden_status(s),
        _ => None,
    }
}

/// Pure: the refusal that stopped a watch (its list, its start or an error event), if any.
pub fn forbidden_watch(e: &watcher::Error) -> Option<Forbidden> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => forbidden(e),
        watcher::Error::WatchError(s) => forbidden_status(s),
        watcher::Error::NoResourceVersion => None,
    }
}

/// Pure: a 403 status read. The RBAC authorizer writes `<kind> "<name>" is forbidden: User
/// "<user>" cannot <verb> resource "<resource>" in API group "<group>" in the namespace "<ns>"`
/// (or `at the cluster scope`); anything else keeps only the message.
pub fn forbidden_status(s: &Status) -> Option<Forbidden> {
    if s.code != 403 {
        return None;
    }
    let m = s.message.as_str();
    let quoted_after = |marker: &str| -> Option<String> {
        let rest = &m[m.find(marker)? + marker.len()..];
        Some(rest[..rest.find('"')?].to_string())
    };
    let verb = m.find(" cannot ").and_then(|i| {
        let rest = &m[i + " cannot ".len()..];
        let end = rest.find(" resource \"")?;
        Some(rest[..end].to_string())
    });
    let resource = quoted_after(" resource \"");
    let (Some(verb), Some(resource)) = (verb, resource) else {
        // A server-side apply that would create the object is also authorized as `create`; that
        // refusal carries no reason, only the object (`services "web" is forbidden: `).
        if let Some(d) = s.details.as_ref().filter(|d| !d.kind.is_empty())
            && m.trim_end().ends_with("is forbidden:")
        {
            return Some(Forbidden {
                verb: "create".into(),
                resource: d.kind.clone(),
                group: d.group.clone(),
                namespace: None,
                user: String::new(),
                message: m.to_string(),
                scope_unknown: true,
            });
        }
        return Some(Forbidden {
            verb: String::new(),
            resource: String::new(),
            group: String::new(),
            namespace: None,
            user: String::new(),
            message: m.to_string(),
            scope_unknown: false,
        });
    };
    Some(Forbidden {
        verb,
        resource,
        group: quoted_after(" in API group \"").unwrap_or_default(),
        namespace: quoted_after(" in the namespace \""),
        user: quoted_after("User \"").unwrap_or_default(),
        message: m.to_string(),
        scope_unknown: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> Status {
        Status {
            code,
            message: message.into(),
            reason: "Forbidden".into(),
            ..Status::default()
        }
    }

    /// Protects reading kube-apiserver 1.20's RBAC refusal of a namespaced write: verb,
    /// resource, group, namespace and user, and the message pointing at the Role.
    #[test]
    fn reads_a_namespaced_refusal() {
        let s = status(
            403,
            r#"services "web" is forbidden: User "system:serviceaccount:ns1:fm-deploy" cannot patch resource "services" in API group "" in the namespace "ns1""#,
        );
        let f = forbidden(&kube::Error::Api(Box::new(s)));
        let Some(f) = f else {
            panic!("a 403 is a refusal");
        };
        assert_eq!(
            (
                f.verb.as_str(),
                f.resource.as_str(),
                f.group.as_str(),
                f.namespace.as_deref()
            ),
            ("patch", "services", "", Some("ns1"))
        );
        assert_eq!(
            f.to_string(),
            "patch services in namespace ns1: forbidden for system:serviceaccount:ns1:fm-deploy (add it to the Role, see examples/deploy/rbac.yaml)"
        );
    }

    /// Protects the group-qualified resource and the cluster-scope hint (the optional ClusterRole).
    #[test]
    fn reads_group_and_cluster_scope() {
        let s = status(
            403,
            r#"deployments.apps is forbidden: User "u" cannot watch resource "deployments" in API group "apps" in the namespace "a""#,
        );
        let f = forbidden_status(&s);
        assert_eq!(
            f.map(|f| f.to_string()),
            Some("watch deployments.apps in namespace a: forbidden for u (add it to the Role, see examples/deploy/rbac.yaml)".to_string())
        );
        let s = status(
            403,
            r#"namespaces "a" is forbidden: User "u" cannot patch resource "namespaces" in API group "" at the cluster scope"#,
        );
        let f = forbidden_status(&s);
        assert_eq!(f.as_ref().and_then(|f| f.namespace.clone()), None);
        assert!(f.map(|f| f.to_string()).is_some_and(|t| t.starts_with(
            "patch namespaces at cluster scope: forbidden for u (grant the optional ClusterRole"
        )));
    }

    /// Protects the create check of a server-side apply (no reason in the message, the object in
    /// the details): verb `create`, the namespace filled in by the caller.
    #[test]
    fn reads_the_create_check_of_an_apply() {
        let mut s = status(403, r#"services "web" is forbidden: "#);
        s.details =
            serde_json::from_value(serde_json::json!({"name": "web", "kind": "services"})).ok();
        let f = forbidden_status(&s).map(|f| f.in_namespace("ns1").to_string());
        assert_eq!(
            f.as_deref(),
            Some(
                "create services in namespace ns1: forbidden for the deploy identity (add it to the Role, see examples/deploy/rbac.yaml)"
            )
        );
    }

    /// Protects that only a 403 counts (a 404 or 409 is not a missing permission) and that an
    /// unreadable 403 message is kept whole rather than guessed at.
    #[test]
    fn only_403_and_unreadable_messages_kept() {
        assert_eq!(forbidden_status(&status(404, "not found")), None);
        assert_eq!(forbidden_status(&status(409, "conflict")), None);
        let f = forbidden_status(&status(403, "denied by webhook"));
        assert_eq!(
            f.map(|f| f.to_string()),
            Some("forbidden: denied by webhook (see examples/deploy/rbac.yaml)".to_string())
        );
        let w = watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status(
            403,
            r#"pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "n""#,
        ))));
        assert_eq!(
            forbidden_watch(&w).map(|f| (f.verb, f.resource)),
            Some(("list".to_string(), "pods".to_string()))
        );
    }
}

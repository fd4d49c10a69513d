//! The deploy identity of a test: the ServiceAccount, Role and RoleBinding of
//! `examples/deploy/rbac.yaml` created in the test's namespace, and a kubeconfig holding a token
//! for that ServiceAccount (TokenRequest API). Deploys under test run with exactly the documented
//! permissions, never as cluster admin.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The ServiceAccount (and Role, RoleBinding) name in `examples/deploy/rbac.yaml`.
pub const NAME: &str = "fm-deploy";

/// The documents of `examples/deploy/rbac.yaml`, as JSON.
pub fn rbac_documents() -> anyhow::Result<Vec<Value>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    // The product's own YAML reader, under the policy's budgets.
    let docs = fm_deploy::policy::yaml::parse_stream(&text, &fm_deploy::budget::POLICY)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e:?}", path.display()))?;
    Ok(docs.iter().map(fm_deploy::policy::yaml::to_json).collect())
}

/// The rules of the example's Role.
pub fn role_rules() -> anyhow::Result<Vec<Value>> {
    rbac_documents()?
        .into_iter()
        .find(|d| d["kind"] == "Role")
        .and_then(|d| d["rules"].as_array().cloned())
        .ok_or_else(|| anyhow::anyhow!("examples/deploy/rbac.yaml has no Role with rules"))
}

/// The ServiceAccount with the example's namespaced objects, in one namespace.
pub struct DeployIdentity {
    pub namespace: String,
    /// `system:serviceaccount:<ns>:fm-deploy`: the user the audit log and 403s name.
    pub user: String,
    /// A kubeconfig for the ServiceAccount (token auth), for the binary's `--kubeconfig`.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl DeployIdentity {
    /// Applies the ServiceAccount, Role and RoleBinding of `examples/deploy/rbac.yaml` (namespace
    /// replaced; the optional cluster-scoped objects left out) as `admin`, and writes a kubeconfig
    /// for the ServiceAccount next to the cluster of `admin_config`.
    pub async fn create(
        admin: &Client,
        admin_kubeconfig: &Path,
        namespace: &str,
    ) -> anyhow::Result<DeployIdentity> {
        for mut doc in rbac_documents()? {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if !matches!(kind.as_str(), "ServiceAccount" | "Role" | "RoleBinding") {
                continue;
            }
            doc["metadata"]["namespace"] = json!(namespace);
            if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    s["namespace"] = json!(namespace);
                }
            }
            apply(admin, namespace, &doc).await?;
        }
        let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
            .create_token_request(
                NAME,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        expiration_seconds: Some(3600),
                        ..TokenRequestSpec::default()
                    },
                    ..TokenRequest::default()
                },
            )
            .await?
            .status
            .map(|s| s.token)
            .ok_or_else(|| {
                anyhow::anyhow!("the TokenRequest for {namespace}/{NAME} has no status")
            })?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            serde_json::to_vec(&token_kubeconfig(admin_kubeconfig, namespace, &token)?)?,
        )?;
        Ok(DeployIdentity {
            namespace: namespace.to_string(),
            user: format!("system:serviceaccount:{namespace}:{NAME}"),
            kubeconfig,
            _dir: dir,
        })
    }

    /// A client as the ServiceAccount; `server` replaces the cluster URL (a second apiserver).
    pub async fn client(&self, server: Option<&str>) -> anyhow::Result<Client> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        if let Some(s) = server {
            cfg.cluster_url = s.parse()?;
        }
        Ok(Client::try_from(cfg)?)
    }

    /// Replaces the Role's rules, then waits (deadline 10 s) until the authorizer answers `probe`
    /// as `allowed_after` for this ServiceAccount.
    pub async fn set_rules(
        &self,
        admin: &Client,
        rules: Vec<Value>,
        probe: Access<'_>,
        allowed_after: bool,
    ) -> anyhow::Result<()> {
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": NAME, "namespace": self.namespace},
            "rules": rules,
        });
        apply(admin, &self.namespace, &role).await?;
        super::wait_until(
            Duration::from_secs(10),
            "the Role change to reach the authorizer",
            || async {
                let allowed = self.can(admin, probe).await.ok()?;
                (allowed == allowed_after).then_some(())
            },
        )
        .await
    }

    /// Adds Secret `name` to the Role's Secret rule, as examples/deploy/rbac.yaml says for a second
    /// app's Secret or an environment's `tls_secret`, and waits until the authorizer allows it.
    pub async fn allow_secret(&self, admin: &Client, name: &str) -> anyhow::Result<()> {
        let mut rules = role_rules()?;
        for r in rules.iter_mut().filter(|r| r["resources"][0] == "secrets") {
            if let Some(names) = r["resourceNames"].as_array_mut() {
                names.push(name.into());
            }
        }
        let probe = Access {
            verb: "patch",
            group: "",
            resource: "secrets",
            name: Some(name),
        };
        self.set_rules(admin, rules, probe, true).await
    }

    /// Asks the apiserver whether the ServiceAccount may do `a` in its namespace.
    pub async fn can(&self, admin: &Client, a: Access<'_>) -> anyhow::Result<bool> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(self.user.clone()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", self.namespace),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(self.namespace.clone()),
                    verb: Some(a.verb.into()),
                    group: Some(a.group.into()),
                    resource: Some(a.resource.into()),
                    name: a.name.map(str::to_string),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(admin.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

/// One request as RBAC sees it: `verb` on `group`/`resource` (optionally one object `name`).
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub name: Option<&'a str>,
}

/// Server-side apply of one RBAC or core object (field manager `fm-deploy-test`).
async fn apply(admin: &Client, namespace: &str, doc: &Value) -> anyhow::Result<()> {
    let (group, version) = match doc["apiVersion"].as_str().unwrap_or_default() {
        v if v.contains('/') => v.split_once('/').unwrap_or(("", v)),
        v => ("", v),
    };
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::<DynamicObject>::namespaced_with(admin.clone(), namespace, &ar)
        .patch(
            name,
            &PatchParams::apply("fm-deploy-test").force(),
            &Patch::Apply(doc),
        )
        .await
        .map_err(|e| anyhow::anyhow!("applying {kind} {namespace}/{name}: {e}"))?;
    Ok(())
}

/// The admin kubeconfig with its users replaced by one holding `token`.
fn token_kubeconfig(
    admin_kubeconfig: &Path,
    namespace: &str,
    token: &str,
) -> anyhow::Result<Value> {
    let kc = Kubeconfig::read_from(admin_kubeconfig)?;
    let mut v = serde_json::to_value(&kc)?;
    v["users"] = json!([{"name": NAME, "user": {"token": token}}]);
    if let Some(contexts) = v["contexts"].as_array_mut() {
        for c in contexts {
            c["context"]["user"] = json!(NAME);
            c["context"]["namespace"] = json!(namespace);
        }
    }
    Ok(v)
}

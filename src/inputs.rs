//! Inputs and GitHub context: the action's contract with the runner, read once and validated.
//!
//! Owns `INPUT_*` (action inputs) and `GITHUB_*` (run context + the event payload at
//! `GITHUB_EVENT_PATH`). Everything is read from a variable list passed in, never from the process
//! environment directly, so tests never mutate it. Decides nothing about policy: it only states facts
//! (which branch the run is about, whether the event may ever deploy, and why not).
//!
//! Two stages, as in ripgrep's low/high args: [`RawInputs`] mirrors the variables exactly (strings,
//! unset or set); [`RawInputs::validate`] turns them into [`Inputs`], collecting every problem and
//! naming the input each one is about.
//!
//! Branch the run is about ([`GithubContext::branch`]):
//! - `push` to a branch: the pushed branch. A tag push or a branch deletion is about no branch.
//! - `pull_request`: the **base** branch the PR targets — its tier is what the PR must pass. A pull
//!   request never deploys ([`DeployBlock::PullRequest`] / [`DeployBlock::ForkPullRequest`]).
//! - `workflow_dispatch` / `schedule`: the ref the workflow runs on (`GITHUB_REF_NAME`, or the payload's
//!   `ref` for a dispatch).
//!
//! `workflow_dispatch` inputs named `command`, `environment`, `image-tag` or `dry-run` (non-empty)
//! override the action inputs of the same name: whoever dispatches a run chooses them at dispatch time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use serde::Deserialize;

/// Every input `action.yml` declares, in declaration order. `tests/contract_action_yml.rs` asserts
/// `action.yml` has exactly these.
pub const INPUT_NAMES: &[&str] = &[
    "command",
    "config",
    "github-token",
    "kubeconfig",
    "environment",
    "image",
    "image-tag",
    "image-digest",
    "dry-run",
    "prometheus-url",
    "slack-webhook",
    "database-url",
    "redis-url",
    "tls-cert",
    "tls-key",
    "datadog-api-key",
    "sentry-dsn",
    "datadog-site",
    "sentry-auth-token",
    "sentry-org",
    "sentry-project",
    "sentry-url",
];

/// Inputs whose values are secrets: masked with `::add-mask::` before anything else is printed.
pub const SECRET_INPUT_NAMES: &[&str] = &[
    "github-token",
    "kubeconfig",
    "slack-webhook",
    "database-url",
    "redis-url",
    "tls-cert",
    "tls-key",
    "datadog-api-key",
    "sentry-dsn",
    "sentry-auth-token",
];

/// Default of the `config` input.
pub const DEFAULT_CONFIG: &str = ".github/fm-deploy.yml";

/// Dispatch-time inputs that override the action input of the same name.
const DISPATCH_OVERRIDABLE: &[&str] = &["command", "environment", "image-tag", "dry-run"];

/// One problem found while reading inputs or context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Both spellings of one input are set to different values.
    #[error(
        "read input `{name}`: `{hyphen_var}` and `{underscore_var}` are both set, to different values"
    )]
    Conflict {
        name: &'static str,
        hyphen_var: String,
        underscore_var: String,
    },
    /// The variables could not be deserialized at all.
    #[error("read the `{prefix}*` environment variables")]
    Env {
        prefix: &'static str,
        #[source]
        source: envy::Error,
    },
    /// An input has a value it cannot take.
    #[error("read input `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// Several inputs were wrong; all are listed.
    #[error("read the action inputs: {}", join_problems(.0))]
    Many(Vec<Error>),
    /// The event payload file could not be read.
    #[error("read the event payload `{path}` (GITHUB_EVENT_PATH)")]
    PayloadRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The event payload is not the JSON GitHub sends for that event.
    #[error("parse the `{event}` event payload `{path}`")]
    PayloadParse {
        event: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A context variable has a value it cannot take.
    #[error("read `{var}`: {reason}")]
    Context { var: &'static str, reason: String },
}

fn join_problems(problems: &[Error]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&p.to_string());
    }
    out
}

/// A secret value. `Debug` and `Display` never show it; call [`Secret::expose`] where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the one place that needs it (an HTTP header, a Secret object).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What the run does (the `command` input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    Plan,
    Gates,
    Matrix,
    Deploy,
    Pipeline,
    Rollback,
    Promote,
    Cleanup,
    Setup,
}

impl Command {
    /// Every command, in the order `action.yml` documents them.
    pub const ALL: [Command; 9] = [
        Command::Plan,
        Command::Gates,
        Command::Matrix,
        Command::Deploy,
        Command::Pipeline,
        Command::Rollback,
        Command::Promote,
        Command::Cleanup,
        Command::Setup,
    ];

    /// The name used in `action.yml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Plan => "plan",
            Command::Gates => "gates",
            Command::Matrix => "matrix",
            Command::Deploy => "deploy",
            Command::Pipeline => "pipeline",
            Command::Rollback => "rollback",
            Command::Promote => "promote",
            Command::Cleanup => "cleanup",
            Command::Setup => "setup",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        if let Some(c) = Command::ALL.iter().find(|c| c.as_str() == wanted) {
            return Ok(*c);
        }
        let names: Vec<&str> = Command::ALL.iter().map(|c| c.as_str()).collect();
        Err(format!(
            "`{s}` is not one of {}{}",
            names.join(", "),
            did_you_mean(&wanted, &names)
        ))
    }
}

fn did_you_mean(got: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(got, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// How the `kubeconfig` input was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeconfigEncoding {
    /// The YAML itself.
    Raw,
    /// Base64 of the YAML (what the pipeline guide's `KUBE_CONFIG_*` secrets hold).
    Base64,
}

/// A kubeconfig, decoded and checked to parse as one.
#[derive(Clone, Debug)]
pub struct Kubeconfig {
    /// The kubeconfig YAML.
    pub yaml: Secret,
    /// The input value as given (equal to `yaml` when raw), kept so both forms can be masked.
    pub given: Secret,
    pub encoding: KubeconfigEncoding,
}

impl Kubeconfig {
    /// Decodes an input value without checking it: raw YAML (anything with characters outside the
    /// base64 alphabets) is taken as is; otherwise base64 (standard or URL-safe, padded or not,
    /// whitespace and line breaks ignored) of UTF-8 text.
    pub fn decode(value: &str) -> Result<(String, KubeconfigEncoding), String> {
        let trimmed = value.trim();
        let compact: String = trimmed
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let looks_base64 = !compact.is_empty()
            && compact.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
            });
        if !looks_base64 {
            return Ok((trimmed.to_owned(), KubeconfigEncoding::Raw));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&compact))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact))
            .map_err(|e| format!("looks like base64 but does not decode ({e})"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| "decodes from base64 to bytes that are not UTF-8 text".to_owned())?;
        Ok((text, KubeconfigEncoding::Base64))
    }

    /// Decodes ([`Kubeconfig::decode`]) and checks that the result parses as a kubeconfig with at
    /// least one cluster.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (yaml, encoding) = Self::decode(value)?;
        let parsed = kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| {
            let form = match encoding {
                KubeconfigEncoding::Raw => "raw YAML",
                KubeconfigEncoding::Base64 => "base64-decoded YAML",
            };
            // The parser's message can quote the document; keep only its kind.
            let kind = match e {
                kube::config::KubeconfigError::Parse(_) => "not YAML of a kubeconfig",
                kube::config::KubeconfigError::KindMismatch
                | kube::config::KubeconfigError::ApiVersionMismatch => {
                    "several kubeconfig documents that disagree on kind or apiVersion"
                }
                _ => "not a usable kubeconfig",
            };
            format!("{form} is {kind}")
        })?;
        if parsed.clusters.is_empty() {
            return Err("kubeconfig has no clusters".to_owned());
        }
        Ok(Self {
            yaml: Secret::new(yaml),
            given: Secret::new(value.to_owned()),
            encoding,
        })
    }
}

/// Application secrets the deploy writes into the app's Kubernetes Secret.
#[derive(Clone, Debug, Default)]
pub struct AppSecrets {
    pub database_url: Option<Secret>,
    pub redis_url: Option<Secret>,
    pub tls_cert: Option<Secret>,
    pub tls_key: Option<Secret>,
    pub datadog_api_key: Option<Secret>,
    pub sentry_dsn: Option<Secret>,
}

/// The inputs that fill [`AppSecrets`].
pub const APP_SECRET_INPUTS: &[&str] = &[
    "database-url",
    "redis-url",
    "tls-cert",
    "tls-key",
    "datadog-api-key",
    "sentry-dsn",
];

impl AppSecrets {
    fn from_raw(raw: &RawInputs) -> AppSecrets {
        let s = |v: &Option<String>| v.clone().map(Secret::new);
        AppSecrets {
            database_url: s(&raw.database_url),
            redis_url: s(&raw.redis_url),
            tls_cert: s(&raw.tls_cert),
            tls_key: s(&raw.tls_key),
            datadog_api_key: s(&raw.datadog_api_key),
            sentry_dsn: s(&raw.sentry_dsn),
        }
    }

    /// The secret inputs of a local run, so it deploys what an Actions run deploys:
    /// `FM_DEPLOY_DATABASE_URL` (`FM_DEPLOY_` + the input name upper-cased, `-` → `_`) or the action's own
    /// `INPUT_DATABASE-URL` / `INPUT_DATABASE_URL`. Secrets never come from the command line.
    pub fn from_vars(vars: &[(String, String)]) -> Result<AppSecrets, Error> {
        let wanted = |rest: &str| {
            APP_SECRET_INPUTS
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&rest.replace('_', "-")))
        };
        let picked = vars.iter().filter_map(|(k, v)| {
            let rest = k
                .strip_prefix("FM_DEPLOY_")
                .or_else(|| k.strip_prefix("INPUT_"))?;
            wanted(rest).then(|| (format!("INPUT_{rest}"), v.clone()))
        });
        Ok(AppSecrets::from_raw(&RawInputs::from_vars(picked)?))
    }
}

/// The inputs exactly as the runner set them. Empty values are already `None`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RawInputs {
    pub command: Option<String>,
    pub config: Option<String>,
    #[serde(rename = "github-token")]
    pub github_token: Option<String>,
    pub kubeconfig: Option<String>,
    pub environment: Option<String>,
    pub image: Option<String>,
    #[serde(rename = "image-tag")]
    pub image_tag: Option<String>,
    #[serde(rename = "image-digest")]
    pub image_digest: Option<String>,
    #[serde(rename = "dry-run")]
    pub dry_run: Option<String>,
    #[serde(rename = "prometheus-url")]
    pub prometheus_url: Option<String>,
    #[serde(rename = "slack-webhook")]
    pub slack_webhook: Option<String>,
    #[serde(rename = "database-url")]
    pub database_url: Option<String>,
    #[serde(rename = "redis-url")]
    pub redis_url: Option<String>,
    #[serde(rename = "tls-cert")]
    pub tls_cert: Option<String>,
    #[serde(rename = "tls-key")]
    pub tls_key: Option<String>,
    #[serde(rename = "datadog-api-key")]
    pub datadog_api_key: Option<String>,
    #[serde(rename = "sentry-dsn")]
    pub sentry_dsn: Option<String>,
    #[serde(rename = "datadog-site")]
    pub datadog_site: Option<String>,
    #[serde(rename = "sentry-auth-token")]
    pub sentry_auth_token: Option<String>,
    #[serde(rename = "sentry-org")]
    pub sentry_org: Option<String>,
    #[serde(rename = "sentry-project")]
    pub sentry_project: Option<String>,
    #[serde(rename = "sentry-url")]
    pub sentry_url: Option<String>,
}

impl RawInputs {
    /// Every value that is or may contain a credential, with its input name, for masking before
    /// validation (so not even an error message can show one): the secret inputs, and
    /// `prometheus-url` (whose userinfo may hold a password).
    pub fn sensitive_values(&self) -> Vec<(&'static str, &str)> {
        let candidates: [(&'static str, &Option<String>); 11] = [
            ("github-token", &self.github_token),
            ("sentry-auth-token", &self.sentry_auth_token),
            ("kubeconfig", &self.kubeconfig),
            ("slack-webhook", &self.slack_webhook),
            ("database-url", &self.database_url),
            ("redis-url", &self.redis_url),
            ("tls-cert", &self.tls_cert),
            ("tls-key", &self.tls_key),
            ("datadog-api-key", &self.datadog_api_key),
            ("sentry-dsn", &self.sentry_dsn),
            ("prometheus-url", &self.prometheus_url),
        ];
        candidates
            .into_iter()
            .filter_map(|(name, v)| v.as_deref().map(|v| (name, v)))
            .collect()
    }

    /// Reads `INPUT_<NAME>` from `vars`. GitHub upper-cases the name and keeps hyphens
    /// (`INPUT_GITHUB-TOKEN`); the underscore form (`INPUT_GITHUB_TOKEN`) is accepted too. Empty or
    /// all-whitespace values count as unset. Both forms set to different values is an error.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        // Canonical (hyphenated) variable name → (value, variable it came from).
        let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (k, v) in vars {
            let (k, v) = (k.into(), v.into());
            let Some(rest) = k.strip_prefix("INPUT_") else {
                continue;
            };
            if v.trim().is_empty() {
                continue;
            }
            let canonical = format!("INPUT_{}", rest.replace('_', "-"));
            match seen.get(&canonical) {
                Some((prev, prev_var)) if *prev != v => {
                    let name = INPUT_NAMES
                        .iter()
                        .copied()
                        .find(|n| n.eq_ignore_ascii_case(&canonical["INPUT_".len()..]))
                        .unwrap_or("unknown");
                    let (hyphen_var, underscore_var) = if prev_var.contains('-') {
                        (prev_var.clone(), k)
                    } else {
                        (k, prev_var.clone())
                    };
                    return Err(Error::Conflict {
                        name,
                        hyphen_var,
                        underscore_var,
                    });
                }
                Some(_) => {}
                None => {
                    seen.insert(canonical, (v, k));
                }
            }
        }
        envy::prefixed("INPUT_")
            .from_iter(seen.into_iter().map(|(k, (v, _))| (k, v)))
            .map_err(|source| Error::Env {
                prefix: "INPUT_",
                source,
            })
    }

    /// Resolves the raw inputs against the run context into [`Inputs`], reporting every problem.
    pub fn validate(self, ctx: &GithubContext) -> Result<Inputs, Error> {
        let secrets = AppSecrets::from_raw(&self);
        let mut problems = Vec::new();
        let dispatch = match &ctx.event {
            Event::WorkflowDispatch(d) => Some(&d.inputs),
            Event::Push(_)
            | Event::PullRequest(_)
            | Event::Schedule(_)
            | Event::Other { .. }
            | Event::Local => None,
        };
        let overridden = |name: &str, action_value: Option<String>| -> Option<String> {
            debug_assert!(DISPATCH_OVERRIDABLE.contains(&name));
            dispatch
                .and_then(|inputs| inputs.get(name))
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .or(action_value)
        };

        let command = match overridden("command", self.command) {
            None => Command::Pipeline,
            Some(v) => v.parse().unwrap_or_else(|reason| {
                problems.push(Error::Invalid {
                    name: "command",
                    reason,
                });
                Command::Pipeline
            }),
        };
        let config = PathBuf::from(self.config.unwrap_or_else(|| DEFAULT_CONFIG.to_owned()));
        let environment = overridden("environment", self.environment).map(|e| e.trim().to_owned());
        if let Some(env) = &environment
            && !is_environment_name(env)
        {
            problems.push(Error::Invalid {
                name: "environment",
                reason: format!(
                    "`{env}` is not an environment name (letters, digits, `-`, `_`, `.`)"
                ),
            });
        }
        let image = self.image.map(|i| i.trim().to_owned());
        if let Some(i) = &image
            && (i.chars().any(char::is_whitespace) || i.starts_with('-') || i.contains("://"))
        {
            problems.push(Error::Invalid {
                name: "image",
                reason: format!("`{i}` is not an image reference"),
            });
        }
        let image_tag = match overridden("image-tag", self.image_tag) {
            Some(t) => {
                let t = t.trim().to_owned();
                if !is_image_tag(&t) {
                    problems.push(Error::Invalid {
                        name: "image-tag",
                        reason: format!(
                            "`{t}` is not a valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}`)"
                        ),
                    });
                }
                Some(t)
            }
            None => None,
        };
        let image_digest = self.image_digest.map(|d| d.trim().to_owned());
        if let Some(d) = &image_digest
            && !crate::image_ref::is_digest(d)
        {
            problems.push(Error::Invalid {
                name: "image-digest",
                reason: format!(
                    "`{d}` is not an image digest (`sha256:` and 64 lowercase hex digits)"
                ),
            });
        }
        let dry_run = match overridden("dry-run", self.dry_run) {
            None => false,
            Some(v) => parse_bool(&v).unwrap_or_else(|| {
                problems.push(Error::Invalid {
                    name: "dry-run",
                    reason: format!("`{v}` is not a boolean (true/false, yes/no, on/off, 1/0)"),
                });
                false
            }),
        };
        let prometheus_url = self.prometheus_url.and_then(|u| {
            parse_http_url(&u)
                .map_err(|reason| {
                    problems.push(Error::Invalid {
                        name: "prometheus-url",
                        reason,
                    })
                })
                .ok()
        });
        let slack_webhook = self.slack_webhook.and_then(|u| {
            // Never quote a webhook URL back: it is the credential.
            parse_http_url(&u)
                .map(|_| Secret::new(u))
                .map_err(|_| {
                    problems.push(Error::Invalid {
                        name: "slack-webhook",
                        reason: "is not an http(s) URL".to_owned(),
                    })
                })
                .ok()
        });
        let kubeconfig = self.kubeconfig.and_then(|k| {
            Kubeconfig::parse(&k)
                .map_err(|reason| {
                    problems.push(Error::Invalid {
                        name: "kubeconfig",
                        reason,
                    })
                })
                .ok()
        });
        let notify = notify_targets(
            self.datadog_site.as_deref(),
            self.sentry_url.as_deref(),
            self.sentry_auth_token.as_deref(),
            self.sentry_org.as_deref(),
            self.sentry_project.as_deref(),
        )
        .map_err(|e| problems.push(e))
        .unwrap_or_default();
        let inputs = Inputs {
            command,
            config,
            github_token: self.github_token.map(|t| Secret::new(t.trim())),
            kubeconfig,
            environment,
            image,
            image_tag,
            image_digest,
            dry_run,
            prometheus_url,
            slack_webhook,
            secrets,
            notify,
        };
        match problems.len() {
            0 => Ok(inputs),
            1 => Err(problems.remove(0)),
            _ => Err(Error::Many(problems)),
        }
    }
}

/// The validated inputs every command reads.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub command: Command,
    /// Policy file path, relative to the workspace.
    pub config: PathBuf,
    pub github_token: Option<Secret>,
    pub kubeconfig: Option<Kubeconfig>,
    /// Environment override (else the policy maps the branch).
    pub environment: Option<String>,
    /// Image repository override (else the policy's `app.image`).
    pub image: Option<String>,
    /// The `image-tag` input (the plan defaults it to the commit the run is about).
    pub image_tag: Option<String>,
    /// The `image-digest` input (`sha256:…`): deploy and scan exactly that content.
    pub image_digest: Option<String>,
    pub dry_run: bool,
    pub prometheus_url: Option<reqwest::Url>,
    pub slack_webhook: Option<Secret>,
    pub secrets: AppSecrets,
    /// Where deploy events go besides Slack (the Datadog key is `secrets.datadog_api_key`).
    pub notify: NotifyTargets,
}

/// Datadog's API site and Sentry's release API, from `datadog-site` and the `sentry-*` inputs.
#[derive(Clone, Debug, Default)]
pub struct NotifyTargets {
    /// `https://api.<site>`; `None` means the default site, `https://api.datadoghq.com`.
    pub datadog_api: Option<reqwest::Url>,
    pub sentry: Option<SentryTarget>,
}

/// Sentry's release API needs an auth token (a DSN only sends events), an organization and a
/// project.
#[derive(Clone, Debug)]
pub struct SentryTarget {
    pub api: reqwest::Url,
    pub token: Secret,
    pub org: String,
    pub project: String,
}

/// The default Datadog API (site `datadoghq.com`).
pub const DATADOG_API: &str = "https://api.datadoghq.com";
/// The default Sentry (SaaS).
pub const SENTRY_API: &str = "https://sentry.io";

/// Reads `datadog-site` (a site such as `datadoghq.eu` / `us3.datadoghq.com`, or a full http(s)
/// URL) and the Sentry inputs, which come as a set: a token needs an organization and a project.
pub fn notify_targets(
    datadog_site: Option<&str>,
    sentry_url: Option<&str>,
    token: Option<&str>,
    org: Option<&str>,
    project: Option<&str>,
) -> Result<NotifyTargets, Error> {
    let invalid = |name: &'static str, reason: &str| Error::Invalid {
        name,
        reason: reason.to_owned(),
    };
    let datadog_api = match datadog_site.map(str::trim) {
        None => None,
        Some(s) if s.contains("://") => {
            Some(parse_http_url(s).map_err(|r| invalid("datadog-site", &r))?)
        }
        Some(s) => {
            let host = s.strip_prefix("app.").unwrap_or(s);
            let ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if !ok {
                return Err(invalid(
                    "datadog-site",
                    "is not a Datadog site (e.g. `datadoghq.eu`) or an http(s) URL",
                ));
            }
            Some(
                parse_http_url(&format!("https://api.{host}"))
                    .map_err(|r| invalid("datadog-site", &r))?,
            )
        }
    };
    let sentry = match (token, org, project) {
        (None, None, None) => None,
        (Some(t), Some(o), Some(p)) => Some(SentryTarget {
            api: parse_http_url(sentry_url.unwrap_or(SENTRY_API))
                .map_err(|r| invalid("sentry-url", &r))?,
            token: Secret::new(t.trim()),
            org: o.trim().to_owned(),
            project: p.trim().to_owned(),
        }),
        (None, _, _) => {
            return Err(invalid(
                "sentry-auth-token",
                "is needed with `sentry-org` / `sentry-project` (a DSN cannot create releases)",
            ));
        }
        (Some(_), _, _) => {
            return Err(invalid(
                "sentry-auth-token",
                "needs `sentry-org` and `sentry-project` to say where the release goes",
            ));
        }
    };
    Ok(NotifyTargets {
        datadog_api,
        sentry,
    })
}

impl Inputs {
    /// Every secret value given, with the input it came from, for masking.
    pub fn secret_values(&self) -> Vec<(&'static str, &Secret)> {
        let s = &self.secrets;
        let mut out: Vec<(&'static str, &Secret)> = Vec::new();
        let singles: [(&'static str, Option<&Secret>); 9] = [
            ("github-token", self.github_token.as_ref()),
            (
                "sentry-auth-token",
                self.notify.sentry.as_ref().map(|t| &t.token),
            ),
            ("slack-webhook", self.slack_webhook.as_ref()),
            ("database-url", s.database_url.as_ref()),
            ("redis-url", s.redis_url.as_ref()),
            ("tls-cert", s.tls_cert.as_ref()),
            ("tls-key", s.tls_key.as_ref()),
            ("datadog-api-key", s.datadog_api_key.as_ref()),
            ("sentry-dsn", s.sentry_dsn.as_ref()),
        ];
        for (name, v) in singles {
            if let Some(v) = v {
                out.push((name, v));
            }
        }
        if let Some(k) = &self.kubeconfig {
            out.push(("kubeconfig", &k.yaml));
            if k.encoding == KubeconfigEncoding::Base64 {
                out.push(("kubeconfig", &k.given));
            }
        }
        out
    }
}

/// GitHub's boolean spellings (case-insensitive).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_http_url(v: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(v.trim()).map_err(|e| format!("`{v}` is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        other => Err(format!("`{v}` is not an http(s) URL (scheme `{other}`)")),
    }
}

fn is_environment_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 255
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_image_tag(v: &str) -> bool {
    let mut chars = v.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && v.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `GITHUB_*` exactly as set; empty values are `None`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RawContext {
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    pub ref_name: Option<String>,
    pub head_ref: Option<String>,
    pub base_ref: Option<String>,
    pub sha: Option<String>,
    pub repository: Option<String>,
    pub event_name: Option<String>,
    pub event_path: Option<String>,
    pub api_url: Option<String>,
    pub server_url: Option<String>,
    pub run_id: Option<String>,
    pub run_attempt: Option<String>,
    pub job: Option<String>,
    pub actor: Option<String>,
    pub workspace: Option<String>,
    pub output: Option<String>,
    pub step_summary: Option<String>,
    pub actions: Option<String>,
}

impl RawContext {
    /// Reads `GITHUB_*` from `vars`; empty values count as unset.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let filtered: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, v)| k.starts_with("GITHUB_") && !v.is_empty())
            .collect();
        envy::prefixed("GITHUB_")
            .from_iter(filtered)
            .map_err(|source| Error::Env {
                prefix: "GITHUB_",
                source,
            })
    }
}

/// The run's context: who, what, where, and the parsed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubContext {
    /// Running inside GitHub Actions (`GITHUB_ACTIONS=true`); otherwise the binary is a CLI.
    pub in_actions: bool,
    pub ref_: Option<String>,
    pub ref_name: Option<String>,
    pub head_ref: Option<String>,
    pub base_ref: Option<String>,
    pub sha: Option<String>,
    /// `owner/name`.
    pub repository: Option<String>,
    pub event_name: Option<String>,
    /// REST API base (GHES differs); defaults to `https://api.github.com`.
    pub api_url: String,
    /// Web base; defaults to `https://github.com`.
    pub server_url: String,
    pub run_id: Option<u64>,
    pub run_attempt: Option<u32>,
    pub job: Option<String>,
    pub actor: Option<String>,
    pub workspace: Option<PathBuf>,
    /// The `GITHUB_OUTPUT` file.
    pub output_path: Option<PathBuf>,
    /// The `GITHUB_STEP_SUMMARY` file.
    pub step_summary_path: Option<PathBuf>,
    pub event: Event,
    /// On `pull_request` and `pull_request_target`: the PR and its base commit, whose policy and
    /// exceptions file apply (never the PR's own copies).
    pub pull_request_base: Option<PullRequestBase>,
}

/// A pull request's number and base commit (`pull_request.base.sha` in the payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestBase {
    pub number: u64,
    pub sha: String,
}

impl GithubContext {
    /// Reads `GITHUB_*` from `vars` and the event payload file at `GITHUB_EVENT_PATH`.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let raw = RawContext::from_vars(vars)?;
        let payload = match &raw.event_path {
            Some(path) if raw.event_name.is_some() => {
                let path = PathBuf::from(path);
                let bytes =
                    crate::budget::read_file(&path, &crate::budget::EVENT).map_err(|source| {
                        Error::PayloadRead {
                            path: path.clone(),
                            source,
                        }
                    })?;
                Some((path, bytes))
            }
            Some(_) | None => None,
        };
        Self::from_raw(
            raw,
            payload.as_ref().map(|(p, b)| (p.as_path(), b.as_slice())),
        )
    }

    /// Builds the context from already-read parts: `payload` is the event file's path and bytes.
    pub fn from_raw(raw: RawContext, payload: Option<(&Path, &[u8])>) -> Result<Self, Error> {
        let event = match (&raw.event_name, payload) {
            (None, _) => Event::Local,
            (Some(name), Some((path, bytes))) => {
                Event::from_payload(name, bytes).map_err(|source| Error::PayloadParse {
                    event: name.clone(),
                    path: path.to_path_buf(),
                    source,
                })?
            }
            (Some(name), None) => {
                Event::from_payload(name, b"{}").unwrap_or(Event::Other { name: name.clone() })
            }
        };
        let pull_request_base = match (raw.event_name.as_deref(), payload) {
            (Some("pull_request" | "pull_request_target"), Some((_, bytes))) => {
                pull_request_base(bytes)
            }
            _ => None,
        };
        let run_id = parse_num::<u64>("GITHUB_RUN_ID", raw.run_id.as_deref())?;
        let run_attempt = parse_num::<u32>("GITHUB_RUN_ATTEMPT", raw.run_attempt.as_deref())?;
        let api_url = raw
            .api_url
            .unwrap_or_else(|| "https://api.github.com".to_owned());
        let server_url = raw
            .server_url
            .unwrap_or_else(|| "https://github.com".to_owned());
        for (var, url) in [
            ("GITHUB_API_URL", &api_url),
            ("GITHUB_SERVER_URL", &server_url),
        ] {
            parse_http_url(url).map_err(|reason| Error::Context { var, reason })?;
        }
        Ok(Self {
            in_actions: raw.actions.as_deref().and_then(parse_bool).unwrap_or(false),
            ref_: raw.ref_,
            ref_name: raw.ref_name,
            head_ref: raw.head_ref,
            base_ref: raw.base_ref,
            sha: raw.sha,
            repository: raw.repository,
            event_name: raw.event_name,
            api_url: api_url.trim_end_matches('/').to_owned(),
            server_url: server_url.trim_end_matches('/').to_owned(),
            run_id,
            run_attempt,
            job: raw.job,
            actor: raw.actor,
            workspace: raw.workspace.map(PathBuf::from),
            output_path: raw.output.map(PathBuf::from),
            step_summary_path: raw.step_summary.map(PathBuf::from),
            pull_request_base,
            event,
        })
    }

    /// The branch whose policy applies (see the module docs): the pushed branch, the PR's base
    /// branch, or the ref a dispatch/schedule runs on. `None` for tags, deletions and local runs.
    pub fn branch(&self) -> Option<String> {
        match &self.event {
            Event::Push(p) => {
                if p.deleted {
                    None
                } else {
                    branch_of_ref(&p.ref_).map(str::to_owned)
                }
            }
            Event::PullRequest(pr) => Some(pr.base_ref.clone()),
            Event::WorkflowDispatch(d) => d
                .ref_
                .as_deref()
                .and_then(branch_of_ref)
                .or_else(|| self.ref_.as_deref().and_then(branch_of_ref))
                .map(str::to_owned),
            Event::Schedule(_) | Event::Other { .. } => self
                .ref_
                .as_deref()
                .and_then(branch_of_ref)
                .or(self.ref_name.as_deref().filter(|_| self.ref_.is_none()))
                .map(str::to_owned),
            Event::Local => None,
        }
    }

    /// The commit the run is about: a push's `after`, a PR's head commit, else `GITHUB_SHA`.
    pub fn commit_sha(&self) -> Option<&str> {
        match &self.event {
            Event::Push(p) if !p.deleted => Some(p.after.as_str()),
            Event::PullRequest(pr) => Some(pr.head_sha.as_str()),
            Event::Push(_)
            | Event::WorkflowDispatch(_)
            | Event::Schedule(_)
            | Event::Other { .. }
            | Event::Local => self.sha.as_deref(),
        }
    }

    /// Why this event can never deploy, whatever the policy says; `None` when it may.
    pub fn deploy_block(&self) -> Option<DeployBlock> {
        match &self.event {
            Event::Push(p) if p.deleted => Some(DeployBlock::BranchDeleted),
            Event::Push(p) if branch_of_ref(&p.ref_).is_none() => Some(DeployBlock::NotABranch),
            Event::Push(_) | Event::WorkflowDispatch(_) | Event::Local => None,
            Event::PullRequest(pr) if pr.is_fork => Some(DeployBlock::ForkPullRequest),
            Event::PullRequest(_) => Some(DeployBlock::PullRequest),
            Event::Schedule(_) => Some(DeployBlock::Schedule),
            Event::Other { name } => Some(DeployBlock::UnsupportedEvent(name.clone())),
        }
    }

    /// The pull request number when the run is about one.
    pub fn pull_request_number(&self) -> Option<u64> {
        match &self.event {
            Event::PullRequest(pr) => Some(pr.number),
            Event::Push(_)
            | Event::WorkflowDispatch(_)
            | Event::Schedule(_)
            | Event::Other { .. }
            | Event::Local => None,
        }
    }

    /// `<server>/<repo>/actions/runs/<id>`, when known.
    pub fn run_url(&self) -> Option<String> {
        Some(format!(
            "{}/{}/actions/runs/{}",
            self.server_url,
            self.repository.as_deref()?,
            self.run_id?
        ))
    }
}

/// Why an event never deploys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeployBlock {
    /// Pull requests run gates for their base branch's tier; merging deploys.
    PullRequest,
    /// Pull requests from forks: no secrets, no deploy, possibly no `checks: write`.
    ForkPullRequest,
    /// A tag push.
    NotABranch,
    /// A branch deletion push.
    BranchDeleted,
    /// Scheduled runs are for `cleanup`.
    Schedule,
    /// An event this action does not deploy from.
    UnsupportedEvent(String),
}

impl fmt::Display for DeployBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployBlock::PullRequest => {
                f.write_str("pull requests run gates only; the merge deploys")
            }
            DeployBlock::ForkPullRequest => f.write_str("pull requests from forks never deploy"),
            DeployBlock::NotABranch => f.write_str("the push is not to a branch"),
            DeployBlock::BranchDeleted => f.write_str("the push deleted the branch"),
            DeployBlock::Schedule => f.write_str("scheduled runs do not deploy"),
            DeployBlock::UnsupportedEvent(name) => write!(f, "`{name}` events do not deploy"),
        }
    }
}

fn branch_of_ref(r: &str) -> Option<&str> {
    r.strip_prefix("refs/heads/")
}

fn parse_num<T: FromStr>(var: &'static str, v: Option<&str>) -> Result<Option<T>, Error> {
    v.map(|s| {
        s.trim().parse::<T>().map_err(|_| Error::Context {
            var,
            reason: format!("`{s}` is not a number"),
        })
    })
    .transpose()
}

/// The triggering event, reduced to what the action uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    WorkflowDispatch(DispatchEvent),
    Schedule(ScheduleEvent),
    /// Any other event (`pull_request_target`, `release`, …): gates may run, nothing deploys.
    Other {
        name: String,
    },
    /// Not in GitHub Actions (no `GITHUB_EVENT_NAME`): the CLI.
    Local,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    /// Full ref, e.g. `refs/heads/main`.
    pub ref_: String,
    pub before: String,
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestEvent {
    /// `opened`, `synchronize`, `labeled`, …
    pub action: String,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    /// `None` when the head repository was deleted.
    pub head_repo: Option<String>,
    pub base_repo: String,
    /// Head and base live in different repositories (or the head repository is gone).
    pub is_fork: bool,
    pub labels: Vec<String>,
    pub draft: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchEvent {
    pub ref_: Option<String>,
    /// Dispatch inputs; booleans and numbers as their JSON text.
    pub inputs: BTreeMap<String, String>,
    pub workflow: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleEvent {
    pub cron: Option<String>,
}

mod payload {
    //! Private mirrors of the payload fields read; everything else is ignored.
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    pub(super) struct Push {
        #[serde(rename = "ref")]
        pub ref_: String,
        pub before: String,
        pub after: String,
        #[serde(default)]
        pub created: bool,
        #[serde(default)]
        pub deleted: bool,
        #[serde(default)]
        pub forced: bool,
    }

    #[derive(Deserialize)]
    pub(super) struct PullRequestEnvelope {
        pub action: String,
        pub number: u64,
        pub pull_request: PullRequest,
    }

    #[derive(Deserialize)]
    pub(super) struct PullRequest {
        pub head: Branch,
        pub base: Branch,
        #[serde(default)]
        pub labels: Vec<Label>,
        #[serde(default)]
        pub draft: bool,
    }

    #[derive(Deserialize)]
    pub(super) struct Branch {
        #[serde(rename = "ref")]
        pub ref_: String,
        pub sha: String,
        pub repo: Option<Repo>,
    }

    #[derive(Deserialize)]
    pub(super) struct Repo {
        pub full_name: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Label {
        pub name: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Dispatch {
        #[serde(rename = "ref")]
        pub ref_: Option<String>,
        #[serde(default)]
        pub inputs: Option<BTreeMap<String, serde_json::Value>>,
        pub workflow: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Schedule {
        pub schedule: Option<String>,
    }
}

/// The PR number and base SHA of a `pull_request` / `pull_request_target` payload. Pure.
pub fn pull_request_base(bytes: &[u8]) -> Option<PullRequestBase> {
    let e: payload::PullRequestEnvelope = serde_json::from_slice(bytes).ok()?;
    Some(PullRequestBase {
        number: e.number,
        sha: e.pull_request.base.sha,
    })
}

impl Event {
    /// Parses the payload GitHub wrote for `event_name`. Pure: bytes in, event out.
    pub fn from_payload(event_name: &str, bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match event_name {
            "push" => {
                let p: payload::Push = serde_json::from_slice(bytes)?;
                Event::Push(PushEvent {
                    ref_: p.ref_,
                    before: p.before,
                    after: p.after,
                    created: p.created,
                    deleted: p.deleted,
                    forced: p.forced,
                })
            }
            "pull_request" => {
                let e: payload::PullRequestEnvelope = serde_json::from_slice(bytes)?;
                let pr = e.pull_request;
                let head_repo = pr.head.repo.map(|r| r.full_name);
                let base_repo = pr.base.repo.map(|r| r.full_name).unwrap_or_default();
                let is_fork = head_repo
                    .as_deref()
                    .is_none_or(|h| !h.eq_ignore_ascii_case(&base_repo));
                Event::PullRequest(PullRequestEvent {
                    action: e.action,
                    number: e.number,
                    head_sha: pr.head.sha,
                    head_ref: pr.head.ref_,
                    base_ref: pr.base.ref_,
                    head_repo,
                    base_repo,
                    is_fork,
                    labels: pr.labels.into_iter().map(|l| l.name).collect(),
                    draft: pr.draft,
                })
            }
            "workflow_dispatch" => {
                let d: payload::Dispatch = serde_json::from_slice(bytes)?;
                let inputs = d
                    .inputs
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Null => return None,
                            other => other.to_string(),
                        };
                        Some((k, text))
                    })
                    .collect();
                Event::WorkflowDispatch(DispatchEvent {
                    ref_: d.ref_,
                    inputs,
                    workflow: d.workflow,
                })
            }
            "schedule" => {
                let s: payload::Schedule = serde_json::from_slice(bytes)?;
                Event::Schedule(ScheduleEvent { cron: s.schedule })
            }
            other => Event::Other {
                name: other.to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/events")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    fn ctx_for(event: &str, file: &str, extra: &[(&str, &str)]) -> GithubContext {
        let mut raw = RawContext::from_vars(
            [
                ("GITHUB_EVENT_NAME", event),
                ("GITHUB_SHA", "0000000000000000000000000000000000000abc"),
            ]
            .into_iter()
            .chain(extra.iter().copied()),
        )
        .unwrap();
        raw.event_path = Some(file.to_owned());
        let bytes = fixture(file);
        GithubContext::from_raw(raw, Some((Path::new(file), &bytes))).unwrap()
    }

    fn local_ctx() -> GithubContext {
        GithubContext::from_raw(RawContext::default(), None).unwrap()
    }

    /// Both pull-request events carry the base commit whose policy applies; other events none.
    #[test]
    fn pull_request_base_from_the_payload() {
        let want = Some(PullRequestBase {
            number: 2,
            sha: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into(),
        });
        for name in ["pull_request", "pull_request_target"] {
            assert_eq!(
                ctx_for(name, "pull_request.opened.json", &[]).pull_request_base,
                want,
                "{name}"
            );
        }
        assert_eq!(
            ctx_for("push", "push.branch.json", &[]).pull_request_base,
            None
        );
    }

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: s3cr3t-token-value\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";

    /// The hyphenated names GitHub really produces (`INPUT_GITHUB-TOKEN`) are read.
    #[test]
    fn hyphen_form_is_read() {
        let raw = RawInputs::from_vars([
            ("INPUT_GITHUB-TOKEN", "ghs_abc"),
            ("INPUT_IMAGE-TAG", "v1.2.3"),
            ("INPUT_DRY-RUN", "true"),
            ("INPUT_PROMETHEUS-URL", "http://127.0.0.1:9090"),
            ("INPUT_COMMAND", "plan"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(raw.github_token.as_deref(), Some("ghs_abc"));
        assert_eq!(raw.image_tag.as_deref(), Some("v1.2.3"));
        assert_eq!(raw.dry_run.as_deref(), Some("true"));
        assert_eq!(raw.command.as_deref(), Some("plan"));
        let inputs = raw.validate(&local_ctx()).unwrap();
        assert_eq!(inputs.command, Command::Plan);
        assert!(inputs.dry_run);
        assert_eq!(
            inputs.github_token.as_ref().map(Secret::expose),
            Some("ghs_abc")
        );
        assert_eq!(
            inputs.prometheus_url.as_ref().map(|u| u.as_str()),
            Some("http://127.0.0.1:9090/")
        );
    }

    /// The underscore spelling (`INPUT_GITHUB_TOKEN`) is accepted as well.
    #[test]
    fn underscore_form_is_read() {
        let raw = RawInputs::from_vars([
            ("INPUT_GITHUB_TOKEN", "ghs_abc"),
            (
                "INPUT_SLACK_WEBHOOK",
                "https://hooks.slack.com/services/T/B/X",
            ),
            ("INPUT_DATADOG_API_KEY", "dd"),
        ])
        .unwrap();
        assert_eq!(raw.github_token.as_deref(), Some("ghs_abc"));
        assert_eq!(
            raw.slack_webhook.as_deref(),
            Some("https://hooks.slack.com/services/T/B/X")
        );
        assert_eq!(raw.datadog_api_key.as_deref(), Some("dd"));
    }

    /// Both spellings with the same value are fine; with different values it is an error naming both.
    #[test]
    fn both_forms_conflict_only_when_different() {
        let same =
            RawInputs::from_vars([("INPUT_IMAGE-TAG", "a"), ("INPUT_IMAGE_TAG", "a")]).unwrap();
        assert_eq!(same.image_tag.as_deref(), Some("a"));
        let err =
            RawInputs::from_vars([("INPUT_IMAGE_TAG", "a"), ("INPUT_IMAGE-TAG", "b")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "read input `image-tag`: `INPUT_IMAGE-TAG` and `INPUT_IMAGE_TAG` are both set, to different values"
        );
    }

    /// Empty values (what GitHub sets for inputs without a default) are unset, and defaults apply.
    #[test]
    fn empty_means_unset_and_defaults_apply() {
        let vars: Vec<(String, String)> = INPUT_NAMES
            .iter()
            .map(|n| (format!("INPUT_{}", n.to_ascii_uppercase()), String::new()))
            .collect();
        let raw = RawInputs::from_vars(vars).unwrap();
        assert_eq!(raw, RawInputs::default());
        let ctx = ctx_for("push", "push.branch.json", &[]);
        let inputs = raw.validate(&ctx).unwrap();
        assert_eq!(inputs.command, Command::Pipeline);
        assert_eq!(inputs.config, PathBuf::from(".github/fm-deploy.yml"));
        assert!(!inputs.dry_run);
        // Unset: the plan tags the policy's image with the commit (`image_ref::compose`).
        assert_eq!(inputs.image_tag, None);
        assert_eq!(inputs.image_digest, None);
        assert!(inputs.github_token.is_none() && inputs.kubeconfig.is_none());
        // An empty hyphen form does not conflict with a set underscore form.
        let raw = RawInputs::from_vars([
            ("INPUT_CONFIG", " "),
            ("INPUT_DRY-RUN", ""),
            ("INPUT_DRY_RUN", "1"),
        ])
        .unwrap();
        assert_eq!(raw.config, None);
        assert_eq!(raw.dry_run.as_deref(), Some("1"));
    }

    /// Every boolean spelling GitHub users write is understood; anything else is an error.
    #[test]
    fn dry_run_booleans() {
        for (v, want) in [
            ("true", true),
            ("True", true),
            ("yes", true),
            ("1", true),
            ("on", true),
        ]
        .into_iter()
        .chain([
            ("false", false),
            ("FALSE", false),
            ("no", false),
            ("0", false),
            ("off", false),
        ]) {
            let inputs = RawInputs::from_vars([("INPUT_DRY-RUN", v)])
                .unwrap()
                .validate(&local_ctx())
                .unwrap();
            assert_eq!(inputs.dry_run, want, "{v}");
        }
        let err = RawInputs::from_vars([("INPUT_DRY-RUN", "maybe")])
            .unwrap()
            .validate(&local_ctx())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "read input `dry-run`: `maybe` is not a boolean (true/false, yes/no, on/off, 1/0)"
        );
    }

    /// A misspelt command is rejected with a suggestion; all problems are reported together.
    #[test]
    fn bad_inputs_are_all_reported() {
        let err = RawInputs::from_vars([
            ("INPUT_COMMAND", "deplyo"),
            ("INPUT_PROMETHEUS-URL", "ftp://x"),
            ("INPUT_SLACK-WEBHOOK", "not a url secret"),
            ("INPUT_IMAGE-TAG", "-bad"),
        ])
        .unwrap()
        .validate(&local_ctx())
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("read input `command`: `deplyo` is not one of plan, gates, matrix, deploy, pipeline, rollback, promote, cleanup, setup; did you mean `deploy`?"), "{msg}");
        assert!(
            msg.contains("read input `prometheus-url`: `ftp://x` is not an http(s) URL"),
            "{msg}"
        );
        assert!(
            msg.contains("read input `slack-webhook`: is not an http(s) URL"),
            "{msg}"
        );
        assert!(
            !msg.contains("not a url secret"),
            "webhook value leaked: {msg}"
        );
        assert!(msg.contains("read input `image-tag`: `-bad`"), "{msg}");
        assert!(matches!(err, Error::Many(ref v) if v.len() == 4));
    }

    /// Every command name parses and round-trips.
    #[test]
    fn every_command_parses() {
        for c in Command::ALL {
            assert_eq!(c.as_str().parse::<Command>(), Ok(c));
            assert_eq!(c.as_str().to_uppercase().parse::<Command>(), Ok(c));
        }
    }

    /// A raw kubeconfig is accepted as is.
    #[test]
    fn kubeconfig_raw() {
        let inputs = RawInputs::from_vars([("INPUT_KUBECONFIG", KUBECONFIG)])
            .unwrap()
            .validate(&local_ctx())
            .unwrap();
        let k = inputs.kubeconfig.unwrap();
        assert_eq!(k.encoding, KubeconfigEncoding::Raw);
        assert_eq!(k.yaml.expose(), KUBECONFIG.trim());
    }

    /// A base64 kubeconfig (also wrapped at 76 columns, as `base64` prints it) is decoded.
    #[test]
    fn kubeconfig_base64() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(KUBECONFIG);
        let wrapped: String = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
            .collect();
        for given in [b64.clone(), wrapped] {
            let k = Kubeconfig::parse(&given).unwrap();
            assert_eq!(k.encoding, KubeconfigEncoding::Base64);
            assert_eq!(k.yaml.expose(), KUBECONFIG);
            assert_eq!(k.given.expose(), given);
        }
    }

    /// Garbage in `kubeconfig` is an error that does not echo the value.
    #[test]
    fn kubeconfig_garbage() {
        let b64_of_text = base64::engine::general_purpose::STANDARD.encode("hello: world\n");
        for bad in [
            "not-base64-but-also-not-yaml!!",
            &b64_of_text,
            "clusters: 5",
        ] {
            let err = RawInputs::from_vars([("INPUT_KUBECONFIG", bad)])
                .unwrap()
                .validate(&local_ctx())
                .unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("read input `kubeconfig`: "), "{msg}");
            assert!(!msg.contains(bad), "value leaked: {msg}");
        }
    }

    /// Secrets never show in `Debug` output.
    #[test]
    fn secrets_are_redacted_in_debug() {
        let inputs = RawInputs::from_vars([
            ("INPUT_GITHUB-TOKEN", "ghs_supersecret"),
            ("INPUT_KUBECONFIG", KUBECONFIG),
        ])
        .unwrap()
        .validate(&local_ctx())
        .unwrap();
        let dbg = format!("{inputs:?}");
        assert!(
            !dbg.contains("ghs_supersecret") && !dbg.contains("s3cr3t-token-value"),
            "{dbg}"
        );
        let names: Vec<&str> = inputs.secret_values().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["github-token", "kubeconfig"]);
    }

    /// A real push payload: the pushed branch is the run's branch and `after` is its commit.
    #[test]
    fn push_branch_payload() {
        let ctx = ctx_for(
            "push",
            "push.branch.json",
            &[("GITHUB_ACTIONS", "true"), ("GITHUB_RUN_ID", "42")],
        );
        let Event::Push(p) = &ctx.event else {
            panic!("{:?}", ctx.event)
        };
        assert_eq!(p.ref_, "refs/heads/master");
        assert!(p.created && !p.deleted);
        assert_eq!(ctx.branch().as_deref(), Some("master"));
        assert_eq!(
            ctx.commit_sha(),
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
        );
        assert_eq!(ctx.deploy_block(), None);
        assert!(ctx.in_actions);
        assert_eq!(ctx.run_id, Some(42));
        assert_eq!(ctx.api_url, "https://api.github.com");
    }

    /// Tag pushes and deletions are about no branch and never deploy.
    #[test]
    fn push_tag_payloads() {
        let tag = ctx_for("push", "push.tag.json", &[]);
        assert_eq!(tag.branch(), None);
        assert_eq!(tag.deploy_block(), Some(DeployBlock::NotABranch));
        let deleted = ctx_for("push", "push.tag-deleted.json", &[]);
        assert_eq!(deleted.deploy_block(), Some(DeployBlock::BranchDeleted));
        assert_eq!(
            deleted.commit_sha(),
            Some("0000000000000000000000000000000000000abc")
        );
    }

    /// A same-repository PR: base branch decides the tier, head SHA is the commit, no deploy.
    #[test]
    fn pull_request_same_repo_payload() {
        let ctx = ctx_for("pull_request", "pull_request.opened.json", &[]);
        let Event::PullRequest(pr) = &ctx.event else {
            panic!("{:?}", ctx.event)
        };
        assert_eq!(pr.action, "opened");
        assert_eq!(pr.number, 2);
        assert_eq!(
            (pr.head_ref.as_str(), pr.base_ref.as_str()),
            ("changes", "master")
        );
        assert!(!pr.is_fork);
        assert_eq!(pr.head_repo.as_deref(), Some("Codertocat/Hello-World"));
        assert_eq!(ctx.branch().as_deref(), Some("master"));
        assert_eq!(ctx.commit_sha(), Some(pr.head_sha.as_str()));
        assert_eq!(ctx.deploy_block(), Some(DeployBlock::PullRequest));
        assert_eq!(ctx.pull_request_number(), Some(2));
    }

    /// Labels on a PR are read (overrides use them).
    #[test]
    fn pull_request_labels_payload() {
        let ctx = ctx_for("pull_request", "pull_request.labeled.json", &[]);
        let Event::PullRequest(pr) = &ctx.event else {
            panic!("{:?}", ctx.event)
        };
        assert_eq!(pr.labels, ["bug"]);
    }

    /// A fork PR is recognised as one and never deploys.
    #[test]
    fn pull_request_fork_payload() {
        let ctx = ctx_for("pull_request", "derived/pull_request.opened.fork.json", &[]);
        let Event::PullRequest(pr) = &ctx.event else {
            panic!("{:?}", ctx.event)
        };
        assert!(pr.is_fork);
        assert_eq!(pr.head_repo.as_deref(), Some("octo-fork/Hello-World"));
        assert_eq!(ctx.deploy_block(), Some(DeployBlock::ForkPullRequest));
        assert_eq!(ctx.branch().as_deref(), Some("master"));
    }

    /// A real dispatch payload without inputs: the ref's branch, action inputs stand.
    #[test]
    fn workflow_dispatch_payload() {
        let ctx = ctx_for("workflow_dispatch", "workflow_dispatch.json", &[]);
        let Event::WorkflowDispatch(d) = &ctx.event else {
            panic!("{:?}", ctx.event)
        };
        assert!(d.inputs.is_empty());
        assert_eq!(
            d.workflow.as_deref(),
            Some(".github/workflows/hello-world-workflow.yml")
        );
        assert_eq!(ctx.branch().as_deref(), Some("master"));
        let inputs = RawInputs::from_vars([("INPUT_COMMAND", "deploy")])
            .unwrap()
            .validate(&ctx)
            .unwrap();
        assert_eq!(inputs.command, Command::Deploy);
    }

    /// Dispatch-time inputs override the action's `command`, `environment` and `dry-run`.
    #[test]
    fn workflow_dispatch_inputs_override() {
        let ctx = ctx_for(
            "workflow_dispatch",
            "derived/workflow_dispatch.inputs.json",
            &[],
        );
        let inputs = RawInputs::from_vars([
            ("INPUT_COMMAND", "deploy"),
            ("INPUT_ENVIRONMENT", "staging"),
        ])
        .unwrap()
        .validate(&ctx)
        .unwrap();
        assert_eq!(inputs.command, Command::Rollback);
        assert_eq!(inputs.environment.as_deref(), Some("production"));
        assert!(inputs.dry_run);
        assert_eq!(ctx.deploy_block(), None);
    }

    /// Dispatch inputs given as JSON booleans/numbers are read as their text.
    #[test]
    fn workflow_dispatch_typed_inputs() {
        let e = Event::from_payload(
            "workflow_dispatch",
            br#"{"ref":"refs/heads/main","inputs":{"dry-run":true,"n":3,"x":null}}"#,
        )
        .unwrap();
        let Event::WorkflowDispatch(d) = e else {
            panic!()
        };
        assert_eq!(d.inputs.get("dry-run").map(String::as_str), Some("true"));
        assert_eq!(d.inputs.get("n").map(String::as_str), Some("3"));
        assert!(!d.inputs.contains_key("x"));
    }

    /// A schedule run is about the default branch it runs on and never deploys.
    #[test]
    fn schedule_payload() {
        let ctx = ctx_for(
            "schedule",
            "derived/schedule.json",
            &[("GITHUB_REF", "refs/heads/main")],
        );
        assert_eq!(
            ctx.event,
            Event::Schedule(ScheduleEvent {
                cron: Some("17 3 * * *".to_owned())
            })
        );
        assert_eq!(ctx.branch().as_deref(), Some("main"));
        assert_eq!(ctx.deploy_block(), Some(DeployBlock::Schedule));
    }

    /// A payload that is not the event's shape is an error naming the file and event.
    #[test]
    fn malformed_payload_is_an_error() {
        let raw = RawContext::from_vars([("GITHUB_EVENT_NAME", "push")]).unwrap();
        let err = GithubContext::from_raw(raw, Some((Path::new("/tmp/ev.json"), b"{\"ref\": 1}")))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "parse the `push` event payload `/tmp/ev.json`"
        );
    }

    /// Reading from variables with `GITHUB_EVENT_PATH` reads the payload file; all context vars land.
    #[test]
    fn context_from_vars_reads_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/events/pull_request.opened.json");
        let path = path.to_string_lossy().into_owned();
        let vars = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", path.as_str()),
            ("GITHUB_REF", "refs/pull/2/merge"),
            ("GITHUB_REF_NAME", "2/merge"),
            ("GITHUB_HEAD_REF", "changes"),
            ("GITHUB_BASE_REF", "master"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_REPOSITORY", "Codertocat/Hello-World"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            ("GITHUB_SERVER_URL", "https://ghe.example.com"),
            ("GITHUB_RUN_ID", "123"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_JOB", "gates"),
            ("GITHUB_ACTOR", "Codertocat"),
            ("GITHUB_WORKSPACE", "/github/workspace"),
            ("GITHUB_OUTPUT", "/github/file_commands/out"),
            ("GITHUB_STEP_SUMMARY", "/github/file_commands/sum"),
        ];
        let ctx = GithubContext::from_vars(vars).unwrap();
        assert_eq!(ctx.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(ctx.run_attempt, Some(2));
        assert_eq!(ctx.head_ref.as_deref(), Some("changes"));
        assert_eq!(
            ctx.output_path,
            Some(PathBuf::from("/github/file_commands/out"))
        );
        assert_eq!(
            ctx.run_url().as_deref(),
            Some("https://ghe.example.com/Codertocat/Hello-World/actions/runs/123")
        );
        assert!(matches!(ctx.event, Event::PullRequest(_)));
        let err = GithubContext::from_vars([
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", "/nonexistent/ev.json"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "read the event payload `/nonexistent/ev.json` (GITHUB_EVENT_PATH)"
        );
    }

    /// No `GITHUB_EVENT_NAME` means a local CLI run.
    #[test]
    fn local_run() {
        let ctx = local_ctx();
        assert_eq!(ctx.event, Event::Local);
        assert!(!ctx.in_actions);
        assert_eq!(ctx.branch(), None);
    }

    /// A Datadog site becomes its API host; Sentry's inputs come as a set (a token needs an
    /// organization and a project; a DSN cannot create releases) and the token is masked.
    #[test]
    fn notify_targets_read_sites_and_require_sentry_as_a_set() {
        let t = notify_targets(Some("app.datadoghq.eu"), None, None, None, None).unwrap();
        assert_eq!(
            t.datadog_api.map(|u| u.to_string()).as_deref(),
            Some("https://api.datadoghq.eu/")
        );
        let t = notify_targets(
            Some("http://127.0.0.1:9"),
            None,
            Some("tok"),
            Some("o"),
            Some("p"),
        )
        .unwrap();
        assert_eq!(
            t.sentry.as_ref().map(|s| s.api.as_str()),
            Some("https://sentry.io/")
        );
        for bad in [
            notify_targets(None, None, Some("tok"), Some("o"), None),
            notify_targets(None, None, None, Some("o"), Some("p")),
            notify_targets(Some("not a site"), None, None, None, None),
        ] {
            assert!(matches!(bad, Err(Error::Invalid { .. })), "{bad:?}");
        }
        let raw = RawInputs {
            sentry_auth_token: Some("sntrys-1".into()),
            ..RawInputs::default()
        };
        assert!(
            raw.sensitive_values()
                .contains(&("sentry-auth-token", "sntrys-1"))
        );
    }
}

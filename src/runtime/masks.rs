//! Which strings to mask for the secret inputs. Pure.
//!
//! Secrets are masked, not words: masking a common word (`production`, a namespace, `apiVersion:
//! v1`) blanks it from every later log line while protecting nothing.
//!
//! - Unstructured secrets (GitHub token, Datadog API key, TLS key and certificate) are masked
//!   whole, and a multi-line one also line by line (tools print lines; a PEM's lines are key
//!   material).
//! - A kubeconfig (YAML in any style, JSON, several documents, or base64 of any of these) is
//!   masked whole in both forms, and then parsed: only its credential values are masked —
//!   `token`, `password`, `client-key-data` (and its decoded PEM), auth-provider `config` values
//!   such as `access-token`, `refresh-token`, `client-secret`, `id-token`, exec `env` values whose
//!   name says token/secret/password/key, and exec `args` values given to such flags. Server URLs,
//!   cluster, user, context and namespace names, `apiVersion`, and certificates (public by design:
//!   `certificate-authority-data`, `client-certificate-data`) are not. A kubeconfig that does not
//!   parse is masked line by line, as nothing tells its secrets apart.
//! - URLs: the password (raw and percent-decoded) of every URL input; the webhook's secret (the
//!   last path segment of the Slack URL); the DSN key (the user name of the Sentry DSN). Not user
//!   names, hosts or database names.

use std::collections::BTreeSet;

use base64::Engine as _;

use crate::budget::KUBECONFIG;
use crate::inputs::Kubeconfig;
use crate::policy::yaml::{self, Node, NodeKind};

/// Shorter lines of a multi-line secret are not masked on their own: masking `-----` or `}` would
/// blank unrelated log text while protecting nothing.
pub const MIN_LINE_MASK: usize = 8;

/// Every string to pass to `::add-mask::` for the given `(input name, value)` pairs — normally
/// [`crate::inputs::RawInputs::sensitive_values`], before validation — longest first (so a longer
/// match wins in the log). What each input contributes is described in the module docs.
pub fn mask_values<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (name, value) in values {
        match name {
            "prometheus-url" => url_parts(&mut out, value.trim(), UrlSecret::Password),
            "kubeconfig" => kubeconfig(&mut out, value),
            "slack-webhook" => {
                add_value(&mut out, value);
                url_parts(&mut out, value.trim(), UrlSecret::LastPathSegment);
            }
            "sentry-dsn" => {
                add_value(&mut out, value);
                url_parts(&mut out, value.trim(), UrlSecret::UserName);
            }
            "database-url" | "redis-url" => {
                add_value(&mut out, value);
                url_parts(&mut out, value.trim(), UrlSecret::Password);
            }
            _ => {
                add_value(&mut out, value);
                add_lines(&mut out, value);
            }
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    v
}

/// A kubeconfig input: whole (as given and decoded), then its credential values.
fn kubeconfig(out: &mut BTreeSet<String>, value: &str) {
    add_value(out, value);
    let Ok((text, _)) = Kubeconfig::decode(value) else {
        add_lines(out, value);
        return;
    };
    add_value(out, &text);
    match yaml::parse_stream(&text, &KUBECONFIG) {
        Ok(documents) => {
            for doc in &documents {
                kubeconfig_credentials(out, doc);
            }
        }
        Err(_) => add_lines(out, &text),
    }
}

/// Whether a kubeconfig key holds a credential: `token`, `password`, `client-key-data`, and
/// auth-provider config keys such as `access-token`, `refresh-token`, `client-secret`, `id-token`
/// (any spelling: `-`, `_`, camelCase). Not `tokenFile` (a path) nor `username`.
fn is_credential_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    k.ends_with("token")
        || k.ends_with("secret")
        || k.ends_with("password")
        || k.ends_with("keydata")
        || k == "apikey"
}

/// Whether an exec plugin's environment variable or flag names a credential
/// (`AWS_SECRET_ACCESS_KEY`, `VAULT_TOKEN`, `--password`).
fn names_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "api-key",
        "api_key",
        "access-key",
        "access_key",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Walks a kubeconfig document and masks every credential value in it.
fn kubeconfig_credentials(out: &mut BTreeSet<String>, node: &Node) {
    match &node.kind {
        NodeKind::Scalar { .. } => {}
        NodeKind::Seq(items) => {
            for item in items {
                kubeconfig_credentials(out, item);
            }
        }
        NodeKind::Map(entries) => {
            for (key, value) in entries {
                match key.scalar() {
                    Some(k) if is_credential_key(k) => credential(out, k, value),
                    Some("env") => exec_env(out, value),
                    Some("args") => exec_args(out, value),
                    Some(_) | None => kubeconfig_credentials(out, value),
                }
            }
        }
    }
}

/// Masks every scalar of a credential value; `*-data` values also base64-decoded (the PEM key).
fn credential(out: &mut BTreeSet<String>, key: &str, node: &Node) {
    match &node.kind {
        NodeKind::Scalar { value, .. } => {
            add_value(out, value);
            if key.to_ascii_lowercase().ends_with("data")
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value.trim())
                && let Ok(pem) = String::from_utf8(bytes)
            {
                add_value(out, &pem);
                add_lines(out, &pem);
            }
        }
        NodeKind::Seq(items) => items.iter().for_each(|i| credential(out, key, i)),
        NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| credential(out, key, v)),
    }
}

/// Exec plugin `env`: a list of `{name, value}`; the values of credential-named variables.
fn exec_env(out: &mut BTreeSet<String>, node: &Node) {
    let NodeKind::Seq(items) = &node.kind else {
        return kubeconfig_credentials(out, node);
    };
    for item in items {
        let NodeKind::Map(entries) = &item.kind else {
            continue;
        };
        let field = |name: &str| {
            entries
                .iter()
                .find(|(k, _)| k.scalar() == Some(name))
                .and_then(|(_, v)| v.scalar())
        };
        if let (Some(name), Some(value)) = (field("name"), field("value"))
            && names_credential(name)
        {
            add_value(out, value);
        }
    }
}

/// Exec plugin `args`: the value of a credential flag (`--token=X`, or `--token X`).
fn exec_args(out: &mut BTreeSet<String>, node: &Node) {
    let NodeKind::Seq(items) = &node.kind else {
        return kubeconfig_credentials(out, node);
    };
    let args: Vec<&str> = items.iter().filter_map(Node::scalar).collect();
    for (i, arg) in args.iter().enumerate() {
        if !arg.starts_with('-') {
            continue;
        }
        match arg.split_once('=') {
            Some((flag, value)) if names_credential(flag) => add_value(out, value),
            Some(_) => {}
            None if names_credential(arg) => {
                if let Some(next) = args.get(i + 1).filter(|n| !n.starts_with('-')) {
                    add_value(out, next);
                }
            }
            None => {}
        }
    }
}

/// Each line of a multi-line value that is long enough to be worth masking.
fn add_lines(out: &mut BTreeSet<String>, value: &str) {
    if !value.trim().contains('\n') {
        return;
    }
    for line in value.lines() {
        add_if_long(out, line.trim());
    }
}

fn add_value(out: &mut BTreeSet<String>, value: &str) {
    if !value.trim().is_empty() {
        out.insert(value.to_owned());
        let trimmed = value.trim();
        if trimmed != value {
            out.insert(trimmed.to_owned());
        }
    }
}

fn add_if_long(out: &mut BTreeSet<String>, value: &str) {
    if value.len() >= MIN_LINE_MASK {
        out.insert(value.to_owned());
    }
}

/// Which part of a URL is the credential (besides the password, always masked).
#[derive(Clone, Copy, PartialEq, Eq)]
enum UrlSecret {
    /// Only the password.
    Password,
    /// The last path segment too: Slack webhooks are `/services/T…/B…/<secret>`.
    LastPathSegment,
    /// The user name too: a Sentry DSN's key is `https://<key>@host/project`.
    UserName,
}

fn url_parts(out: &mut BTreeSet<String>, value: &str, secret: UrlSecret) {
    let Ok(url) = reqwest::Url::parse(value) else {
        return;
    };
    if let Some(p) = url.password() {
        add_value(out, p);
        add_value(out, &percent_decode(p));
    }
    // A key in the path or the user name is long (Slack's 24 characters, Sentry's 32): a short
    // one is a placeholder, and masking it would blank words.
    let key = match secret {
        UrlSecret::Password => None,
        UrlSecret::LastPathSegment => url.path_segments().and_then(|mut s| s.next_back()),
        UrlSecret::UserName => Some(url.username()),
    };
    if let Some(k) = key {
        add_if_long(out, k);
        add_if_long(out, &percent_decode(k));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::inputs::RawInputs;

    fn masks(vars: &[(&str, &str)]) -> Vec<String> {
        let raw = RawInputs::from_vars(vars.iter().copied()).unwrap();
        mask_values(raw.sensitive_values())
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// What must never be masked from a kubeconfig: names, URLs, certificates, YAML lines.
    const NOT_SECRET: &[&str] = &[
        "production",
        "fm-llm-solver-prod",
        "apiVersion: v1",
        "v1",
        "Config",
        "https://10.1.2.3:6443",
        "Q0FEQVRBQ0FEQVRB",
        "Q0VSVERBVEFDRVJUREFUQQ==",
        "deployer",
        "prod-context",
        "current-context: prod-context",
        "aws",
    ];

    fn assert_only_credentials(m: &[String], credentials: &[&str]) {
        for want in credentials {
            assert!(m.iter().any(|v| v == want), "missing {want:?} in {m:?}");
        }
        for word in NOT_SECRET {
            assert!(!m.iter().any(|v| v == word), "masked {word:?}: {m:?}");
        }
        assert!(
            m.windows(2).all(|w| w[0].len() >= w[1].len()),
            "longest first"
        );
    }

    const BLOCK: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: production\n  cluster:\n    server: https://10.1.2.3:6443\n    certificate-authority-data: Q0FEQVRBQ0FEQVRB\nusers:\n- name: deployer\n  user:\n    token: \"kube-token-0123456789\"\n    client-certificate-data: Q0VSVERBVEFDRVJUREFUQQ==\ncontexts:\n- name: prod-context\n  context: {cluster: production, user: deployer, namespace: fm-llm-solver-prod}\ncurrent-context: prod-context\n";

    /// A block-style kubeconfig, raw or base64: the whole value in both forms and the token are
    /// masked; names, the namespace, the server URL, certificates and lines are not.
    #[test]
    fn block_kubeconfig_masks_only_the_token() {
        for given in [BLOCK.to_string(), b64(BLOCK)] {
            let m = masks(&[
                ("INPUT_GITHUB-TOKEN", "ghs_token123"),
                ("INPUT_KUBECONFIG", &given),
            ]);
            let all = ["ghs_token123", &given, BLOCK, "kube-token-0123456789"];
            assert_only_credentials(&m, &all);
            assert!(
                m.iter().all(|v| all.iter().any(|a| a.trim() == v.trim())),
                "nothing else: {m:?}"
            );
        }
    }

    /// A flow-style kubeconfig on one line and a JSON one: the credential alone is masked, not
    /// only as part of a whole line.
    #[test]
    fn flow_and_json_kubeconfigs_mask_the_credential() {
        let flow = "{apiVersion: v1, kind: Config, clusters: [{name: production, cluster: {server: 'https://10.1.2.3:6443'}}], users: [{name: deployer, user: {token: flow-token-0123456789}}], contexts: [{name: prod-context, context: {cluster: production, user: deployer, namespace: fm-llm-solver-prod}}], current-context: prod-context}";
        let json = r#"{"apiVersion":"v1","kind":"Config","clusters":[{"name":"production","cluster":{"server":"https://10.1.2.3:6443"}}],"users":[{"name":"deployer","user":{"username":"aws","password":"json-pass-0123"}}],"contexts":[{"name":"prod-context","context":{"cluster":"production","user":"deployer"}}],"current-context":"prod-context"}"#;
        let m = masks(&[("INPUT_KUBECONFIG", flow)]);
        assert_only_credentials(&m, &["flow-token-0123456789"]);
        let m = masks(&[("INPUT_KUBECONFIG", &b64(json))]);
        assert_only_credentials(&m, &["json-pass-0123", json]);
    }

    /// Auth-provider config values, exec env values and flag arguments that carry credentials,
    /// and a client key (base64 and decoded PEM lines) are masked; the rest of the exec plugin
    /// (command, region, profile) is not.
    #[test]
    fn plugin_credentials_and_client_keys() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkeyMaterialLineOne0123456789\n-----END EC PRIVATE KEY-----\n";
        let key = b64(pem);
        let k = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: production\n  cluster: {{server: 'https://10.1.2.3:6443'}}\nusers:\n- name: deployer\n  user:\n    client-key-data: {key}\n- name: oidc\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        client-id: fm-deploy\n        client-secret: oidc-client-secret-1\n        id-token: eyJhbGciOi.id.token\n        refresh-token: refresh-0123456789\n        access-token: access-0123456789\n- name: exec\n  user:\n    exec:\n      command: aws\n      args: [eks, get-token, --cluster-name, production, --token=arg-token-0123, --password, arg-pass-0123]\n      env:\n      - {{name: AWS_PROFILE, value: deployer}}\n      - {{name: VAULT_TOKEN, value: env-token-0123}}\n"
        );
        let m = masks(&[("INPUT_KUBECONFIG", &k)]);
        assert_only_credentials(
            &m,
            &[
                &key,
                pem,
                "MHcCAQEEIBkeyMaterialLineOne0123456789",
                "oidc-client-secret-1",
                "eyJhbGciOi.id.token",
                "refresh-0123456789",
                "access-0123456789",
                "arg-token-0123",
                "arg-pass-0123",
                "env-token-0123",
            ],
        );
        for word in ["fm-deploy", "oidc", "eks", "get-token", "--cluster-name"] {
            assert!(!m.iter().any(|v| v == word), "masked {word:?}: {m:?}");
        }
    }

    /// A kubeconfig that does not parse cannot tell its secrets apart: every long line is masked.
    #[test]
    fn unparseable_kubeconfig_masks_lines() {
        let broken = "users:\n- name: u\n  user:\n    token: tok-0123456789\n  user: dup\n";
        let m = masks(&[("INPUT_KUBECONFIG", &b64(broken))]);
        assert!(m.iter().any(|v| v == "token: tok-0123456789"), "{m:?}");
    }

    /// An alias bomb in a kubeconfig is refused by the parser's budget (quickly), and the
    /// kubeconfig is then masked line by line.
    #[test]
    fn kubeconfig_alias_bomb_is_bounded() {
        let mut bomb = String::from("a0: &a0 [token-bomb-0123456789]\n");
        for i in 1..40 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let m = masks(&[("INPUT_KUBECONFIG", &bomb)]);
        assert!(m.iter().any(|v| v == "a0: &a0 [token-bomb-0123456789]"));
    }

    /// Secrets are masked from the raw inputs, so even a kubeconfig that fails validation is
    /// masked (decoded too) before any error is printed.
    #[test]
    fn invalid_values_are_masked_too() {
        let b64 = b64("clusters: 5\ntoken: abcdefgh12345\n");
        let m = masks(&[("INPUT_KUBECONFIG", &b64)]);
        for want in [b64.as_str(), "abcdefgh12345"] {
            assert!(m.iter().any(|v| v == want), "missing {want:?} in {m:?}");
        }
    }

    /// Each line of a multi-line PEM secret is masked, and the PEM as a whole.
    #[test]
    fn pem_lines() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAbCdEfGh\n-----END PRIVATE KEY-----\n";
        let m = masks(&[("INPUT_TLS-KEY", pem)]);
        for want in [
            pem,
            pem.trim(),
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
            "AbCdEfGh",
            "-----BEGIN PRIVATE KEY-----",
        ] {
            assert!(m.iter().any(|v| v == want), "missing {want:?}");
        }
    }

    /// URL passwords are masked raw and percent-decoded; the webhook's secret path segment and
    /// the DSN key too; user names, hosts and database names are not.
    #[test]
    fn url_credentials() {
        let m = masks(&[
            (
                "INPUT_DATABASE-URL",
                "postgres://fm_llm_solver:p%40ss@db.internal:5432/fm_llm_solver_prod",
            ),
            ("INPUT_REDIS-URL", "redis://:hunter2@redis:6379/0"),
            (
                "INPUT_SLACK-WEBHOOK",
                "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            ),
            (
                "INPUT_SENTRY-DSN",
                "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42",
            ),
        ]);
        for want in [
            "postgres://fm_llm_solver:p%40ss@db.internal:5432/fm_llm_solver_prod",
            "p%40ss",
            "p@ss",
            "hunter2",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert!(m.iter().any(|v| v == want), "missing {want:?} in {m:?}");
        }
        for word in [
            "fm_llm_solver",
            "fm_llm_solver_prod",
            "db.internal",
            "0",
            "42",
            "T000",
        ] {
            assert!(!m.iter().any(|v| v == word), "masked {word:?}: {m:?}");
        }
    }

    /// Only the password of a Prometheus URL is masked, not the URL itself.
    #[test]
    fn prometheus_userinfo_only() {
        let m = masks(&[(
            "INPUT_PROMETHEUS-URL",
            "https://reader:pr0m-pass@prom.internal:9090",
        )]);
        assert_eq!(m, ["pr0m-pass"]);
        assert!(masks(&[("INPUT_PROMETHEUS-URL", "http://127.0.0.1:9090")]).is_empty());
    }

    /// No secrets, nothing to mask.
    #[test]
    fn nothing_to_mask() {
        assert!(masks(&[("INPUT_COMMAND", "plan"), ("INPUT_IMAGE-TAG", "v1")]).is_empty());
    }
}

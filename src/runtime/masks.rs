//! Which strings to mask for the secret inputs. Pure.
//!
//! Every secret is masked whole; a multi-line secret (kubeconfig, TLS key) also line by line, since
//! tools print lines; a base64 kubeconfig in both its given and decoded forms; the values inside a
//! kubeconfig (tokens, key data); and the credential parts of URLs (password, DSN key, webhook path),
//! raw and percent-decoded.

use std::collections::BTreeSet;

use crate::inputs::Kubeconfig;

/// Shorter lines of a multi-line secret are not masked on their own: masking `-----` or `}` would
/// blank unrelated log text while protecting nothing.
pub const MIN_LINE_MASK: usize = 8;

/// Every string to pass to `::add-mask::` for the given `(input name, value)` pairs — normally
/// [`crate::inputs::RawInputs::sensitive_values`], before validation — longest first (so a longer
/// match wins in the log). `prometheus-url` contributes only its userinfo; every other input its
/// whole value and the parts described in the module docs.
pub fn mask_values<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (name, value) in values {
        if name == "prometheus-url" {
            url_parts(&mut out, value.trim(), false);
            continue;
        }
        add_value(&mut out, value);
        add_lines(&mut out, value, name == "kubeconfig");
        if name == "kubeconfig"
            && let Ok((decoded, _)) = Kubeconfig::decode(value)
        {
            add_value(&mut out, &decoded);
            add_lines(&mut out, &decoded, true);
        }
        if matches!(
            name,
            "slack-webhook" | "database-url" | "redis-url" | "sentry-dsn"
        ) {
            url_parts(&mut out, value.trim(), true);
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    v
}

/// Each line of a multi-line value; for YAML also the value after `key: `.
fn add_lines(out: &mut BTreeSet<String>, value: &str, yaml: bool) {
    if !value.trim().contains('\n') {
        return;
    }
    for line in value.lines() {
        add_if_long(out, line.trim());
        if yaml && let Some((_, v)) = line.split_once(": ") {
            add_if_long(out, v.trim().trim_matches(['"', '\'']));
        }
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

fn url_parts(out: &mut BTreeSet<String>, value: &str, path_secret: bool) {
    let Ok(url) = reqwest::Url::parse(value) else {
        return;
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(p) = url.password() {
        parts.push(p.to_owned());
    }
    if !url.username().is_empty() {
        parts.push(url.username().to_owned());
    }
    // Webhook URLs carry their credential in the path (Slack: /services/T…/B…/<secret>).
    if path_secret && let Some(last) = url.path_segments().and_then(|mut s| s.next_back()) {
        parts.push(last.to_owned());
    }
    for p in parts {
        let decoded = percent_decode(&p);
        // Usernames such as `postgres` are short and common; only mask what looks like a credential.
        add_if_long(out, &p);
        add_if_long(out, &decoded);
        if url.password() == Some(p.as_str()) {
            add_value(out, &p);
            add_value(out, &decoded);
        }
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

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://10.1.2.3:6443\n    certificate-authority-data: Q0FEQVRBQ0FEQVRB\nusers:\n- name: u\n  user:\n    token: \"kube-token-0123456789\"\ncontexts:\n- name: x\n  context: {cluster: prod, user: u}\ncurrent-context: x\n";

    /// The token, the whole kubeconfig, its base64 form, its lines and its inner values are masked.
    #[test]
    fn kubeconfig_forms_and_values() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(KUBECONFIG);
        let m = masks(&[
            ("INPUT_GITHUB-TOKEN", "ghs_token123"),
            ("INPUT_KUBECONFIG", &b64),
        ]);
        for want in [
            "ghs_token123",
            b64.as_str(),
            KUBECONFIG,
            "token: \"kube-token-0123456789\"",
            "kube-token-0123456789",
            "Q0FEQVRBQ0FEQVRB",
            "https://10.1.2.3:6443",
        ] {
            assert!(m.iter().any(|v| v == want), "missing {want:?} in {m:?}");
        }
        assert!(
            !m.iter()
                .any(|v| v == "v1" || v == "Config" || v == "users:"),
            "{m:?}"
        );
        assert!(
            m.windows(2).all(|w| w[0].len() >= w[1].len()),
            "longest first"
        );
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

    /// URL credentials are masked raw and percent-decoded; the webhook's secret path segment too.
    #[test]
    fn url_credentials() {
        let m = masks(&[
            (
                "INPUT_DATABASE-URL",
                "postgres://app:p%40ss@db.internal:5432/fm",
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
            "postgres://app:p%40ss@db.internal:5432/fm",
            "p%40ss",
            "p@ss",
            "hunter2",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert!(m.iter().any(|v| v == want), "missing {want:?} in {m:?}");
        }
        assert!(
            !m.iter().any(|v| v == "app" || v == "fm" || v == "0"),
            "{m:?}"
        );
    }

    /// Secrets are masked from the raw inputs, so even a kubeconfig that fails validation is
    /// masked (decoded too) before any error is printed.
    #[test]
    fn invalid_values_are_masked_too() {
        let b64 =
            base64::engine::general_purpose::STANDARD.encode("clusters: 5\ntoken: abcdefgh12345\n");
        let m = masks(&[("INPUT_KUBECONFIG", &b64)]);
        for want in [b64.as_str(), "abcdefgh12345", "token: abcdefgh12345"] {
            assert!(m.iter().any(|v| v == want), "missing {want:?} in {m:?}");
        }
    }

    /// Only the password of a Prometheus URL is masked, not the URL itself.
    #[test]
    fn prometheus_userinfo_only() {
        let m = masks(&[(
            "INPUT_PROMETHEUS-URL",
            "https://reader:pr0m-pass@prom.internal:9090",
        )]);
        // The short user name is not masked: masking common words blanks unrelated log text.
        assert_eq!(m, ["pr0m-pass"]);
        assert!(masks(&[("INPUT_PROMETHEUS-URL", "http://127.0.0.1:9090")]).is_empty());
    }

    /// No secrets, nothing to mask.
    #[test]
    fn nothing_to_mask() {
        assert!(masks(&[("INPUT_COMMAND", "plan"), ("INPUT_IMAGE-TAG", "v1")]).is_empty());
    }
}

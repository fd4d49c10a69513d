//! Which token permission each GitHub request needs, so a 403 can name the one that is missing.
//!
//! Owns: the one table endpoint → permission (the keys of a workflow's `permissions:` block), and
//! reading GitHub's `x-accepted-github-permissions` header, which wins when GitHub sends it. Must not
//! decide: whether a 403 is a rate limit (that is [`super::retry::classify`]) or what to do about it.
//! README's "Permissions" table lists the same permissions per command.

/// One route: method, path pattern (`*` one segment, a trailing `**` any rest) and the permission.
struct Route {
    method: &'static str,
    pattern: &'static str,
    permission: &'static str,
}

const fn route(method: &'static str, pattern: &'static str, permission: &'static str) -> Route {
    Route {
        method,
        pattern,
        permission,
    }
}

/// Every endpoint the action calls (src/github/*), most specific first.
const ROUTES: &[Route] = &[
    route("GET", "/repos/*/*/commits/*/check-runs", "checks: read"),
    route("GET", "/repos/*/*/check-runs/*/annotations", "checks: read"),
    route("POST", "/repos/*/*/check-runs", "checks: write"),
    route("PATCH", "/repos/*/*/check-runs/*", "checks: write"),
    route("GET", "/repos/*/*/commits/*/status", "statuses: read"),
    route("GET", "/repos/*/*/deployments", "deployments: read"),
    route("POST", "/repos/*/*/deployments", "deployments: write"),
    route(
        "GET",
        "/repos/*/*/deployments/*/statuses",
        "deployments: read",
    ),
    route(
        "POST",
        "/repos/*/*/deployments/*/statuses",
        "deployments: write",
    ),
    route("GET", "/repos/*/*/pulls/*/reviews", "pull-requests: read"),
    route("GET", "/repos/*/*/issues/*/events", "issues: read"),
    route("GET", "/repos/*/*/issues", "issues: read"),
    route("GET", "/repos/*/*/contents/**", "contents: read"),
    route(
        "POST",
        "/repos/*/*/branches/*/protection/required_signatures",
        "administration: write",
    ),
    route(
        "DELETE",
        "/repos/*/*/branches/*/protection/required_signatures",
        "administration: write",
    ),
    route(
        "GET",
        "/repos/*/*/branches/*/protection",
        "administration: read",
    ),
    route(
        "PUT",
        "/repos/*/*/branches/*/protection",
        "administration: write",
    ),
    route("GET", "/repos/*/*/environments", "actions: read"),
    route("PUT", "/repos/*/*/environments/*", "administration: write"),
    route(
        "GET",
        "/orgs/*/teams/*/memberships/*",
        "members: read (organization)",
    ),
    route("GET", "/orgs/*/teams/*", "members: read (organization)"),
];

/// Pure: the permission `method path` needs, from the table (query string ignored).
pub fn required(method: &str, path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && matches(r.pattern, &segs))
        .map(|r| r.permission)
}

fn matches(pattern: &str, segs: &[&str]) -> bool {
    let pat: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    if pat.last() == Some(&"**") {
        let fixed = &pat[..pat.len() - 1];
        return segs.len() > fixed.len()
            && fixed.iter().zip(segs).all(|(p, s)| *p == "*" || p == s);
    }
    pat.len() == segs.len() && pat.iter().zip(segs).all(|(p, s)| *p == "*" || p == s)
}

/// Pure: GitHub's `x-accepted-github-permissions` value (`checks=write`; alternative sets split
/// by `;`, permissions within a set by `,`) as `checks: write`, sets joined by ` or `.
pub fn from_accepted_header(value: &str) -> Option<String> {
    let sets: Vec<String> = value
        .split(';')
        .map(|set| {
            set.split(',')
                .filter_map(|p| p.trim().split_once('='))
                .map(|(k, v)| format!("{}: {}", k.trim().replace('_', "-"), v.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!sets.is_empty()).then(|| sets.join(" or "))
}

/// Pure: what a permissions 403 on `method path` says is missing — the header when GitHub sent
/// it, else the table.
pub fn missing(method: &str, path: &str, headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-accepted-github-permissions")
        .and_then(|v| v.to_str().ok())
        .and_then(from_accepted_header)
        .or_else(|| required(method, path).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects the table for every endpoint the deploy and gate commands call: check runs,
    /// deployments, statuses, reviews, issues; a query string does not change the answer.
    #[test]
    fn table_names_each_endpoint() {
        let cases = [
            ("POST", "/repos/o/r/check-runs", Some("checks: write")),
            ("PATCH", "/repos/o/r/check-runs/7", Some("checks: write")),
            (
                "GET",
                "/repos/o/r/commits/abc/check-runs?per_page=100&page=1",
                Some("checks: read"),
            ),
            ("POST", "/repos/o/r/deployments", Some("deployments: write")),
            (
                "POST",
                "/repos/o/r/deployments/3/statuses",
                Some("deployments: write"),
            ),
            (
                "GET",
                "/repos/o/r/commits/abc/status?per_page=100",
                Some("statuses: read"),
            ),
            (
                "GET",
                "/repos/o/r/pulls/4/reviews",
                Some("pull-requests: read"),
            ),
            (
                "GET",
                "/repos/o/r/issues?state=open&labels=x",
                Some("issues: read"),
            ),
            (
                "GET",
                "/repos/o/r/contents/.github/fm-deploy.yml",
                Some("contents: read"),
            ),
            (
                "PUT",
                "/repos/o/r/branches/main/protection",
                Some("administration: write"),
            ),
            (
                "PUT",
                "/repos/o/r/environments/prod",
                Some("administration: write"),
            ),
            ("DELETE", "/repos/o/r/check-runs/7", None),
            ("GET", "/users/octocat", None),
        ];
        for (m, p, want) in cases {
            assert_eq!(required(m, p), want, "{m} {p}");
        }
    }

    /// Protects reading GitHub's header: one permission, several in a set, alternative sets; the
    /// header wins over the table, the table answers without it.
    #[test]
    fn header_wins_over_table() {
        assert_eq!(
            from_accepted_header("checks=write").as_deref(),
            Some("checks: write")
        );
        assert_eq!(
            from_accepted_header("repository_projects=write; organization_projects=admin")
                .as_deref(),
            Some("repository-projects: write or organization-projects: admin")
        );
        assert_eq!(
            from_accepted_header("contents=read, pull_requests=read").as_deref(),
            Some("contents: read, pull-requests: read")
        );
        assert_eq!(from_accepted_header(" ; "), None);
        let mut h = http::HeaderMap::new();
        assert_eq!(
            missing("POST", "/repos/o/r/check-runs", &h).as_deref(),
            Some("checks: write")
        );
        h.insert(
            "x-accepted-github-permissions",
            http::HeaderValue::from_static("checks=write; statuses=write"),
        );
        assert_eq!(
            missing("POST", "/repos/o/r/check-runs", &h).as_deref(),
            Some("checks: write or statuses: write")
        );
    }
}

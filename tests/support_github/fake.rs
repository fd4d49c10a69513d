//! A stateful fake GitHub for tests: keeps check runs (with appended annotations), deployments and
//! their statuses, commit statuses, reviews, issues and issue events, team memberships, branch
//! protection (with required signatures), environments, and the org's teams and users; injects
//! failures (500, 502, 429, 403 secondary limit with `retry-after`, 403 missing permission, slow
//! answers) and latency.
//!
//! Response bodies start from GitHub's own examples in the (trimmed) OpenAPI description and
//! overlay the fake's state, so Prism's response validation (`--errors`) checks them against
//! GitHub's schema.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One injected failure, matched by method and a path substring, used `times` times.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Method,
    pub path_contains: String,
    pub kind: FaultKind,
    pub times: usize,
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    Status(u16),
    /// 429 with `retry-after`.
    TooMany {
        retry_after: u64,
    },
    /// 403 "secondary rate limit" with `retry-after`.
    Secondary {
        retry_after: Option<u64>,
    },
    /// Answer normally, after this long.
    Slow(Duration),
    /// Answer this status and body instead (a response that drifts from GitHub's schema).
    Body(u16, Value),
    /// Apply the request, then lose the answer behind this status (a 502 from the edge after the
    /// write happened).
    AppliedThen(u16),
    /// 403 "Resource not accessible by integration" (the token lacks a permission), with
    /// `x-accepted-github-permissions` when given (GitHub sends it to fine-grained tokens).
    NoPermission {
        accepted: Option<&'static str>,
    },
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub body: Value,
    pub injected: bool,
}

#[derive(Debug, Clone)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub external_id: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    /// `output.text`, when sent.
    pub text: Option<String>,
    pub annotations: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: u64,
    pub sha: String,
    pub environment: String,
    pub body: Value,
    /// Statuses, oldest first.
    pub statuses: Vec<Value>,
}

/// A branch's protection as the fake stores it (what `PUT …/protection` and
/// `…/required_signatures` set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// `(strict, check names)`; `None` when status checks are not required.
    pub status_checks: Option<(bool, Vec<String>)>,
    pub enforce_admins: bool,
    /// `(required approving reviews, dismiss stale reviews)`; `None` when reviews are off.
    pub reviews: Option<(u64, bool)>,
    /// `(user logins, team slugs)` allowed to push; `None` when anyone with write access may.
    pub restrictions: Option<(Vec<String>, Vec<String>)>,
    pub allow_force_pushes: bool,
    pub required_signatures: bool,
}

/// A deployment environment as the fake stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub id: u64,
    pub name: String,
    pub wait_timer: u64,
    pub prevent_self_review: bool,
    /// `("User" | "Team", id)`, in the order they were sent.
    pub reviewers: Vec<(String, u64)>,
    /// `(protected_branches, custom_branch_policies)`; `None`: every branch may deploy.
    pub branch_policy: Option<(bool, bool)>,
}

/// A team of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub org: String,
    pub slug: String,
    pub id: u64,
}

#[derive(Default)]
pub struct FakeState {
    templates: HashMap<String, Value>,
    next_id: u64,
    pub check_runs: Vec<CheckRun>,
    pub deployments: Vec<Deployment>,
    /// (sha, context, state), latest last.
    pub commit_statuses: Vec<(String, String, String)>,
    /// PR number → reviews (user, state, commit_id, submitted_at).
    pub reviews: HashMap<u64, Vec<(String, String, String, String)>>,
    /// (number, title, labels, is_pull_request, open).
    pub issues: Vec<(u64, String, Vec<String>, bool, bool)>,
    /// issue number → (event, actor, label, created_at).
    pub issue_events: HashMap<u64, Vec<(String, String, String, String)>>,
    /// (org, team, user) with active membership.
    pub team_members: Vec<(String, String, String)>,
    /// Repository files by (commit SHA, path), for the contents API.
    pub files: HashMap<(String, String), String>,
    /// Branch name → its protection.
    pub protections: BTreeMap<String, Protection>,
    pub environments: Vec<Environment>,
    /// Teams GitHub knows (for reviewers and push restrictions).
    pub teams: Vec<Team>,
    /// Users GitHub knows: (login, id).
    pub users: Vec<(String, u64)>,
    /// Tokens without administration access: branch protection answers them 404 "Not Found", as
    /// GitHub hides what such a token may not see.
    pub no_admin_tokens: Vec<String>,
    /// Tokens that may only read (a fork PR's token): writes get 403.
    pub read_only_tokens: Vec<String>,
    pub faults: Vec<Fault>,
    pub latency: Duration,
    /// Writes being handled right now, and the most ever at once (serialized writes keep it at 1).
    pub writes_in_flight: usize,
    pub max_writes_in_flight: usize,
    pub log: Vec<Logged>,
    /// Requests the fake itself refused as GitHub would (semantic rules a schema cannot state).
    pub rejections: Vec<String>,
}

#[derive(Clone)]
pub struct Fake(pub Arc<Mutex<FakeState>>);

impl Fake {
    /// A fake whose answers start from the examples in the OpenAPI description at `spec`.
    pub fn new(spec: &Value) -> Fake {
        let mut state = FakeState {
            next_id: 1000,
            ..FakeState::default()
        };
        if let Some(examples) = spec
            .pointer("/components/examples")
            .and_then(Value::as_object)
        {
            for (k, v) in examples {
                if let Some(value) = v.get("value") {
                    state.templates.insert(k.clone(), value.clone());
                }
            }
        }
        Fake(Arc::new(Mutex::new(state)))
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/repos/{owner}/{repo}/check-runs", post(create_check_run))
            .route(
                "/repos/{owner}/{repo}/check-runs/{id}",
                patch(update_check_run).get(get_check_run),
            )
            .route(
                "/repos/{owner}/{repo}/check-runs/{id}/annotations",
                get(list_annotations),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/check-runs",
                get(list_check_runs),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/status",
                get(combined_status),
            )
            .route("/repos/{owner}/{repo}/contents/{*path}", get(get_content))
            .route("/repos/{owner}/{repo}/pulls/{n}/reviews", get(list_reviews))
            .route("/repos/{owner}/{repo}/issues", get(list_issues))
            .route(
                "/repos/{owner}/{repo}/issues/{n}/events",
                get(list_issue_events),
            )
            .route(
                "/repos/{owner}/{repo}/deployments",
                get(list_deployments).post(create_deployment),
            )
            .route(
                "/repos/{owner}/{repo}/deployments/{id}/statuses",
                get(list_deployment_statuses).post(create_deployment_status),
            )
            .route(
                "/orgs/{org}/teams/{team}/memberships/{user}",
                get(team_membership),
            )
            .route(
                "/repos/{owner}/{repo}/branches/{branch}/protection",
                get(get_protection).put(put_protection),
            )
            .route(
                "/repos/{owner}/{repo}/branches/{branch}/protection/required_signatures",
                post(add_signatures).delete(remove_signatures),
            )
            .route("/repos/{owner}/{repo}/environments", get(list_environments))
            .route(
                "/repos/{owner}/{repo}/environments/{name}",
                put(put_environment),
            )
            .route("/orgs/{org}/teams/{team}", get(get_team))
            .route("/users/{login}", get(get_user))
            .layer(middleware::from_fn_with_state(self.clone(), gatekeeper))
            .with_state(self.clone())
    }

    /// Adds a team `org/slug` with a fresh id and returns the id.
    pub fn add_team(&self, org: &str, slug: &str) -> u64 {
        let mut st = self.state();
        st.next_id += 1;
        let id = st.next_id;
        st.teams.push(Team {
            org: org.into(),
            slug: slug.into(),
            id,
        });
        id
    }

    /// Adds a user with a fresh id and returns the id.
    pub fn add_user(&self, login: &str) -> u64 {
        let mut st = self.state();
        st.next_id += 1;
        let id = st.next_id;
        st.users.push((login.into(), id));
        id
    }

    /// Writes (every method but GET) that reached the fake.
    pub fn writes(&self) -> Vec<Logged> {
        self.state()
            .log
            .iter()
            .filter(|l| l.method != Method::GET)
            .cloned()
            .collect()
    }

    /// Requests that reached the fake, injected failures included.
    pub fn requests(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// Requests matching `method` whose path contains `part`.
    pub fn count(&self, method: &Method, part: &str) -> usize {
        self.state()
            .log
            .iter()
            .filter(|l| l.method == *method && l.path.contains(part))
            .count()
    }
}

type Q = Query<HashMap<String, String>>;

fn template(st: &FakeState, name: &str) -> Value {
    st.templates.get(name).cloned().unwrap_or_else(|| json!({}))
}

fn first_of(v: Value) -> Value {
    match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        ),
    )
        .into_response()
}

fn page<T: Clone>(items: &[T], q: &HashMap<String, String>) -> Vec<T> {
    let per_page: usize = q
        .get("per_page")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

/// Latency, fault injection, read-only tokens and the request log, in front of every route.
async fn gatekeeper(State(fake): State<Fake>, req: Request, next: Next) -> Response {
    let is_write = req.method() != Method::GET;
    let resp = gatekeeper_inner(fake.clone(), req, next).await;
    if is_write {
        let mut st = fake.state();
        st.writes_in_flight = st.writes_in_flight.saturating_sub(1);
    }
    resp
}

async fn gatekeeper_inner(fake: Fake, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.trim_start_matches("Bearer ")
                .trim_start_matches("token ")
                .to_string()
        })
        .unwrap_or_default();
    if path.starts_with("/orgs/fm-deploy-sync/") {
        // The harness's log sentinel: answered, never logged or counted.
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let body_json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);

    let is_write = method != Method::GET;
    let (latency, fault, read_only) = {
        let mut st = fake.state();
        if is_write {
            st.writes_in_flight += 1;
            st.max_writes_in_flight = st.max_writes_in_flight.max(st.writes_in_flight);
        }
        let fault = st
            .faults
            .iter_mut()
            .find(|f| f.method == method && path.contains(&f.path_contains) && f.times > 0)
            .map(|f| {
                f.times -= 1;
                f.kind.clone()
            });
        (st.latency, fault, st.read_only_tokens.contains(&token))
    };
    let hidden = path.contains("/protection") && fake.state().no_admin_tokens.contains(&token);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let injected = match fault {
        Some(FaultKind::Slow(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(FaultKind::Status(code)) => Some(
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
                "upstream failure",
            )
                .into_response(),
        ),
        Some(FaultKind::AppliedThen(code)) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            fake.state().log.push(Logged {
                method,
                path,
                status: resp.status().as_u16(),
                body: body_json,
                injected: true,
            });
            return (status, "upstream failure after apply").into_response();
        }
        Some(FaultKind::Body(code, body)) => Some(
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
                axum::Json(body),
            )
                .into_response(),
        ),
        Some(FaultKind::TooMany { retry_after }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            r.headers_mut().insert("retry-after", retry_after.into());
            Some(r)
        }
        Some(FaultKind::Secondary { retry_after }) => {
            let mut r = error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.into());
            }
            Some(r)
        }
        Some(FaultKind::NoPermission { accepted }) => {
            let mut r = error(
                StatusCode::FORBIDDEN,
                "Resource not accessible by integration",
            );
            if let Some(a) = accepted {
                r.headers_mut().insert(
                    "x-accepted-github-permissions",
                    axum::http::HeaderValue::from_static(a),
                );
            }
            Some(r)
        }
        None => None,
    };
    if let Some(resp) = injected {
        fake.state().log.push(Logged {
            method,
            path,
            status: resp.status().as_u16(),
            body: body_json,
            injected: true,
        });
        return resp;
    }
    if hidden {
        fake.state().log.push(Logged {
            method,
            path,
            status: 404,
            body: body_json,
            injected: false,
        });
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    if read_only && method != Method::GET {
        let resp = error(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
        fake.state().log.push(Logged {
            method,
            path,
            status: 403,
            body: body_json,
            injected: false,
        });
        return resp;
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    fake.state().log.push(Logged {
        method,
        path,
        status: resp.status().as_u16(),
        body: body_json,
        injected: false,
    });
    resp
}

fn check_run_json(st: &FakeState, r: &CheckRun) -> Value {
    let mut v = template(st, "check-run");
    let base = "https://api.github.com/repos/octo/app";
    v["id"] = json!(r.id);
    v["node_id"] = json!(format!("CR_{}", r.id));
    v["name"] = json!(r.name);
    v["head_sha"] = json!(r.head_sha);
    v["external_id"] = json!(r.external_id);
    v["url"] = json!(format!("{base}/check-runs/{}", r.id));
    v["html_url"] = json!(format!("https://github.com/octo/app/runs/{}", r.id));
    v["details_url"] = json!(
        r.details_url
            .clone()
            .unwrap_or_else(|| "https://example.com".into())
    );
    v["status"] = json!(r.status);
    v["conclusion"] = json!(r.conclusion);
    v["completed_at"] = if r.status == "completed" {
        json!("2026-01-01T00:00:09Z")
    } else {
        Value::Null
    };
    v["pull_requests"] = json!([]);
    v["output"] = json!({
        "title": r.title, "summary": r.summary, "text": null,
        "annotations_count": r.annotations.len(),
        "annotations_url": format!("{base}/check-runs/{}/annotations", r.id),
    });
    v
}

/// GitHub's rules a JSON schema cannot express; Prism would let these through.
fn annotation_problems(annotations: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for a in annotations {
        let (s, e) = (a["start_line"].as_u64(), a["end_line"].as_u64());
        if s != e && (a.get("start_column").is_some() || a.get("end_column").is_some()) {
            out.push(format!("columns on a multi-line annotation: {a}"));
        }
        if s.unwrap_or(0) > e.unwrap_or(0) {
            out.push(format!("end_line before start_line: {a}"));
        }
        for k in ["message", "raw_details"] {
            if a[k].as_str().is_some_and(|m| m.len() > 64 * 1024) {
                out.push(format!("{k} over 64 KB"));
            }
        }
        if a["title"].as_str().is_some_and(|m| m.chars().count() > 255) {
            out.push("annotation title over 255 characters".into());
        }
    }
    if annotations.len() > 50 {
        out.push(format!("{} annotations in one request", annotations.len()));
    }
    out
}

fn apply_output(r: &mut CheckRun, body: &Value) -> Result<(), Vec<String>> {
    let Some(output) = body.get("output") else {
        return Ok(());
    };
    let annotations = output["annotations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut problems = annotation_problems(&annotations);
    for k in ["summary", "text"] {
        if output[k]
            .as_str()
            .is_some_and(|s| s.chars().count() > 65_535)
        {
            problems.push(format!("output.{k} over 65535 characters"));
        }
    }
    if output["title"]
        .as_str()
        .is_some_and(|s| s.chars().count() > 255)
    {
        problems.push("output.title over 255 characters".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    r.title = output["title"].as_str().map(str::to_string);
    r.summary = output["summary"].as_str().map(str::to_string);
    if let Some(t) = output["text"].as_str() {
        r.text = Some(t.to_string());
    }
    r.annotations.extend(annotations);
    Ok(())
}

fn apply_status(r: &mut CheckRun, body: &Value) {
    if let Some(s) = body["status"].as_str() {
        r.status = s.to_string();
        if s != "completed" {
            r.conclusion = None;
        }
    }
    if let Some(c) = body["conclusion"].as_str() {
        r.conclusion = Some(c.to_string());
        r.status = "completed".into();
    }
    if let Some(d) = body["details_url"].as_str() {
        r.details_url = Some(d.to_string());
    }
}

async fn create_check_run(
    State(fake): State<Fake>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut st = fake.state();
    st.next_id += 1;
    let mut run = CheckRun {
        id: st.next_id,
        name: body["name"].as_str().unwrap_or_default().to_string(),
        head_sha: body["head_sha"].as_str().unwrap_or_default().to_string(),
        external_id: body["external_id"].as_str().unwrap_or_default().to_string(),
        status: "queued".into(),
        conclusion: None,
        details_url: None,
        title: None,
        summary: None,
        text: None,
        annotations: Vec::new(),
    };
    apply_status(&mut run, &body);
    if let Err(p) = apply_output(&mut run, &body) {
        st.rejections.extend(p.clone());
        return error(StatusCode::UNPROCESSABLE_ENTITY, &p.join("; "));
    }
    let v = check_run_json(&st, &run);
    st.check_runs.push(run);
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

async fn update_check_run(
    State(fake): State<Fake>,
    Path((_, _, id)): Path<(String, String, u64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut st = fake.state();
    let Some(idx) = st.check_runs.iter().position(|r| r.id == id) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    // Validated before anything changes, so a refused PATCH leaves the run as it was.
    let mut taken = std::mem::take(&mut st.check_runs[idx].annotations);
    let mut run = st.check_runs[idx].clone();
    std::mem::swap(&mut run.annotations, &mut taken);
    let result = apply_output(&mut run, &body);
    if let Err(p) = result {
        st.check_runs[idx].annotations = run.annotations;
        st.rejections.extend(p.clone());
        return error(StatusCode::UNPROCESSABLE_ENTITY, &p.join("; "));
    }
    apply_status(&mut run, &body);
    let v = check_run_json(&st, &run);
    st.check_runs[idx] = run;
    axum::Json(v).into_response()
}

async fn get_check_run(
    State(fake): State<Fake>,
    Path((_, _, id)): Path<(String, String, u64)>,
) -> Response {
    let st = fake.state();
    match st.check_runs.iter().find(|r| r.id == id) {
        Some(r) => axum::Json(check_run_json(&st, r)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn list_annotations(
    State(fake): State<Fake>,
    Path((_, _, id)): Path<(String, String, u64)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    let Some(r) = st.check_runs.iter().find(|r| r.id == id) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let items: Vec<Value> = r
        .annotations
        .iter()
        .map(|a| {
            let mut v = first_of(template(&st, "check-annotation-items"));
            for k in [
                "path",
                "start_line",
                "end_line",
                "annotation_level",
                "message",
            ] {
                v[k] = a[k].clone();
            }
            for k in ["start_column", "end_column", "title", "raw_details"] {
                v[k] = a.get(k).cloned().unwrap_or(Value::Null);
            }
            v
        })
        .collect();
    axum::Json(page(&items, &q)).into_response()
}

async fn list_check_runs(
    State(fake): State<Fake>,
    Path((_, _, sha)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    // filter=latest (the default): the newest run per name.
    let mut latest: Vec<&CheckRun> = Vec::new();
    for r in st.check_runs.iter().rev().filter(|r| r.head_sha == sha) {
        if !latest.iter().any(|l| l.name == r.name) {
            latest.push(r);
        }
    }
    let all: Vec<Value> = latest.iter().map(|r| check_run_json(&st, r)).collect();
    axum::Json(json!({"total_count": all.len(), "check_runs": page(&all, &q)})).into_response()
}

async fn combined_status(
    State(fake): State<Fake>,
    Path((_, _, sha)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    let mut v = template(&st, "combined-commit-status");
    let item = first_of(v["statuses"].clone());
    let mut latest: Vec<(String, String)> = Vec::new();
    for (s, ctx, state) in st.commit_statuses.iter().rev() {
        if s == &sha && !latest.iter().any(|(c, _)| c == ctx) {
            latest.push((ctx.clone(), state.clone()));
        }
    }
    let all: Vec<Value> = latest
        .iter()
        .map(|(ctx, state)| {
            let mut i = item.clone();
            i["context"] = json!(ctx);
            i["state"] = json!(state);
            i
        })
        .collect();
    let overall = if latest.iter().any(|(_, s)| s == "failure" || s == "error") {
        "failure"
    } else if latest.iter().all(|(_, s)| s == "success") {
        "success"
    } else {
        "pending"
    };
    v["state"] = json!(overall);
    v["sha"] = json!(sha);
    v["total_count"] = json!(all.len());
    v["statuses"] = json!(page(&all, &q));
    axum::Json(v).into_response()
}

async fn list_reviews(
    State(fake): State<Fake>,
    Path((_, _, n)): Path<(String, String, u64)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    let tpl = first_of(template(&st, "pull-request-review-items"));
    let items: Vec<Value> = st
        .reviews
        .get(&n)
        .map(|rs| {
            rs.iter()
                .enumerate()
                .map(|(i, (user, state, commit, at))| {
                    let mut v = tpl.clone();
                    v["id"] = json!(i + 1);
                    v["user"]["login"] = json!(user);
                    v["state"] = json!(state);
                    v["commit_id"] = json!(commit);
                    v["submitted_at"] = json!(at);
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(page(&items, &q)).into_response()
}

/// `GET /repos/{owner}/{repo}/contents/{path}?ref=<sha>`: a file stored at that commit, base64
/// as GitHub sends it (wrapped at 60 characters), else 404. Only a commit SHA `ref` is served.
async fn get_content(
    State(fake): State<Fake>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    use base64::Engine as _;
    let st = fake.state();
    let sha = q.get("ref").cloned().unwrap_or_default();
    let Some(text) = st.files.get(&(sha.clone(), path.clone())) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let mut v = template(&st, "content-file-response-if-content-is-a-file");
    let name = path.rsplit('/').next().unwrap_or(&path).to_string();
    let url = format!("{API}/repos/{owner}/{repo}/contents/{path}?ref={sha}");
    v["type"] = json!("file");
    v["encoding"] = json!("base64");
    v["size"] = json!(text.len());
    v["name"] = json!(name);
    v["path"] = json!(path);
    v["content"] = json!(wrapped.join("\n") + "\n");
    v["url"] = json!(url);
    v["_links"]["self"] = json!(url);
    axum::Json(v).into_response()
}

async fn list_issues(State(fake): State<Fake>, Query(q): Q) -> Response {
    let st = fake.state();
    let tpl = first_of(template(&st, "issue-items"));
    let want: Vec<String> = q
        .get("labels")
        .map(|l| l.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let open_only = q.get("state").is_none_or(|s| s == "open");
    let items: Vec<Value> = st
        .issues
        .iter()
        .filter(|(_, _, labels, _, open)| {
            (!open_only || *open) && want.iter().all(|w| labels.contains(w))
        })
        .map(|(n, title, labels, is_pr, open)| {
            let mut v = tpl.clone();
            v["number"] = json!(n);
            v["title"] = json!(title);
            v["state"] = json!(if *open { "open" } else { "closed" });
            let label_tpl = first_of(v["labels"].clone());
            v["labels"] = json!(
                labels
                    .iter()
                    .map(|l| {
                        let mut lv = label_tpl.clone();
                        lv["name"] = json!(l);
                        lv
                    })
                    .collect::<Vec<_>>()
            );
            if !*is_pr && let Some(o) = v.as_object_mut() {
                o.remove("pull_request");
            }
            v
        })
        .collect();
    axum::Json(page(&items, &q)).into_response()
}

async fn list_issue_events(
    State(fake): State<Fake>,
    Path((_, _, n)): Path<(String, String, u64)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    let tpl = first_of(template(&st, "issue-event-for-issue-items"));
    let items: Vec<Value> = st
        .issue_events
        .get(&n)
        .map(|es| {
            es.iter()
                .enumerate()
                .map(|(i, (event, actor, label, at))| {
                    let mut v = tpl.clone();
                    v["id"] = json!(i + 1);
                    v["event"] = json!(event);
                    v["actor"]["login"] = json!(actor);
                    v["label"] = json!({"name": label, "color": "ededed"});
                    v["created_at"] = json!(at);
                    v["commit_id"] = Value::Null;
                    v["commit_url"] = Value::Null;
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(page(&items, &q)).into_response()
}

fn deployment_json(st: &FakeState, d: &Deployment) -> Value {
    let mut v = template(st, "deployment-simple-example");
    v["id"] = json!(d.id);
    v["node_id"] = json!(format!("DE_{}", d.id));
    v["sha"] = json!(d.sha);
    v["ref"] = d.body["ref"].clone();
    v["environment"] = json!(d.environment);
    v["original_environment"] = json!(d.environment);
    v["description"] = d.body.get("description").cloned().unwrap_or(Value::Null);
    v["url"] = json!(format!(
        "https://api.github.com/repos/octo/app/deployments/{}",
        d.id
    ));
    v["statuses_url"] = json!(format!(
        "https://api.github.com/repos/octo/app/deployments/{}/statuses",
        d.id
    ));
    if let Some(p) = d.body.get("production_environment") {
        v["production_environment"] = p.clone();
    }
    if let Some(t) = d.body.get("transient_environment") {
        v["transient_environment"] = t.clone();
    }
    if let Some(p) = d.body.get("payload") {
        v["payload"] = p.clone();
    }
    v
}

async fn create_deployment(
    State(fake): State<Fake>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut st = fake.state();
    if body["required_contexts"] != json!([]) || body["auto_merge"] != json!(false) {
        st.rejections.push(format!(
            "deployment without required_contexts: [] and auto_merge: false: {body}"
        ));
        return error(
            StatusCode::CONFLICT,
            "Conflict: required contexts not green",
        );
    }
    st.next_id += 1;
    let d = Deployment {
        id: st.next_id,
        sha: body["ref"].as_str().unwrap_or_default().to_string(),
        environment: body["environment"]
            .as_str()
            .unwrap_or("production")
            .to_string(),
        body,
        statuses: Vec::new(),
    };
    let v = deployment_json(&st, &d);
    st.deployments.push(d);
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

async fn list_deployments(State(fake): State<Fake>, Query(q): Q) -> Response {
    let st = fake.state();
    let items: Vec<Value> = st
        .deployments
        .iter()
        .rev()
        .filter(|d| q.get("environment").is_none_or(|e| e == &d.environment))
        .filter(|d| q.get("sha").is_none_or(|s| s == &d.sha))
        .map(|d| deployment_json(&st, d))
        .collect();
    axum::Json(page(&items, &q)).into_response()
}

async fn create_deployment_status(
    State(fake): State<Fake>,
    Path((_, _, id)): Path<(String, String, u64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut st = fake.state();
    let tpl = template(&st, "deployment-status");
    let Some(idx) = st.deployments.iter().position(|d| d.id == id) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    st.next_id += 1;
    let mut v = tpl;
    v["id"] = json!(st.next_id);
    v["node_id"] = json!(format!("DES_{}", st.next_id));
    v["state"] = body["state"].clone();
    v["description"] = body.get("description").cloned().unwrap_or(json!(""));
    v["environment"] = json!(st.deployments[idx].environment);
    // Absent URLs keep the example's values: the description types them as URIs.
    for (field, from) in [
        ("environment_url", "environment_url"),
        ("log_url", "log_url"),
        ("target_url", "log_url"),
    ] {
        if let Some(u) = body.get(from) {
            v[field] = u.clone();
        }
    }
    v["deployment_url"] = json!(format!(
        "https://api.github.com/repos/octo/app/deployments/{id}"
    ));
    v["url"] = json!(format!(
        "https://api.github.com/repos/octo/app/deployments/{id}/statuses/{}",
        st.next_id
    ));
    st.deployments[idx].statuses.push(v.clone());
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

async fn list_deployment_statuses(
    State(fake): State<Fake>,
    Path((_, _, id)): Path<(String, String, u64)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    match st.deployments.iter().find(|d| d.id == id) {
        // Newest first, as GitHub lists them.
        Some(d) => axum::Json(page(
            &d.statuses.iter().rev().cloned().collect::<Vec<_>>(),
            &q,
        ))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn team_membership(
    State(fake): State<Fake>,
    Path((org, team, user)): Path<(String, String, String)>,
    _h: HeaderMap,
) -> Response {
    let st = fake.state();
    if st
        .team_members
        .iter()
        .any(|(o, t, u)| o == &org && t == &team && u == &user)
    {
        let mut v = template(&st, "team-membership-response-if-user-is-a-team-maintainer");
        v["state"] = json!("active");
        v["role"] = json!("member");
        axum::Json(v).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "Not Found")
    }
}

const API: &str = "https://api.github.com";

/// GitHub's 422 for a request it understood and refused.
fn validation_failed(st: &mut FakeState, problems: Vec<String>) -> Response {
    st.rejections.extend(problems.iter().cloned());
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "message": "Validation Failed",
            "errors": problems,
            "documentation_url": "https://docs.github.com/rest",
        })),
    )
        .into_response()
}

/// A user object from GitHub's example, renamed.
fn user_json(template: &Value, login: &str, id: u64) -> Value {
    let mut v = template.clone();
    v["login"] = json!(login);
    v["id"] = json!(id);
    v["node_id"] = json!(format!("U_{id}"));
    v["url"] = json!(format!("{API}/users/{login}"));
    v["html_url"] = json!(format!("https://github.com/{login}"));
    v
}

/// A team object from GitHub's example, renamed. The example lacks `type`, which the schema
/// requires; GitHub sends `organization` for organization teams.
fn team_json(template: &Value, t: &Team) -> Value {
    let mut v = template.clone();
    v["id"] = json!(t.id);
    v["node_id"] = json!(format!("T_{}", t.id));
    v["slug"] = json!(t.slug);
    v["name"] = json!(t.slug);
    v["url"] = json!(format!("{API}/teams/{}", t.id));
    v["html_url"] = json!(format!(
        "https://github.com/orgs/{}/teams/{}",
        t.org, t.slug
    ));
    v["members_url"] = json!(format!("{API}/teams/{}/members{{/member}}", t.id));
    v["repositories_url"] = json!(format!("{API}/teams/{}/repos", t.id));
    v["parent"] = Value::Null;
    v["type"] = json!("organization");
    v
}

/// The stored protection written into GitHub's example `example` (`branch-protection` for GET,
/// `branch-protection-update` for PUT's answer).
fn protection_json(
    st: &FakeState,
    example: &str,
    owner: &str,
    repo: &str,
    branch: &str,
    p: &Protection,
) -> Value {
    let base = format!("{API}/repos/{owner}/{repo}/branches/{branch}/protection");
    let mut v = template(st, example);
    let tpl = template(st, "branch-protection");
    let user_tpl = first_of(tpl["restrictions"]["users"].clone());
    let team_tpl = first_of(tpl["restrictions"]["teams"].clone());
    v["url"] = json!(base);
    match &p.status_checks {
        Some((strict, names)) => {
            let mut r = v["required_status_checks"].clone();
            r["url"] = json!(format!("{base}/required_status_checks"));
            r["contexts_url"] = json!(format!("{base}/required_status_checks/contexts"));
            r["strict"] = json!(strict);
            r["contexts"] = json!(names);
            r["checks"] = json!(
                names
                    .iter()
                    .map(|n| json!({"context": n, "app_id": null}))
                    .collect::<Vec<_>>()
            );
            v["required_status_checks"] = r;
        }
        None => remove(&mut v, "required_status_checks"),
    }
    v["enforce_admins"] =
        json!({"url": format!("{base}/enforce_admins"), "enabled": p.enforce_admins});
    match p.reviews {
        Some((count, dismiss)) => {
            let r = &mut v["required_pull_request_reviews"];
            r["url"] = json!(format!("{base}/required_pull_request_reviews"));
            r["required_approving_review_count"] = json!(count);
            r["dismiss_stale_reviews"] = json!(dismiss);
            r["require_code_owner_reviews"] = json!(false);
            r["require_last_push_approval"] = json!(false);
            remove(r, "dismissal_restrictions");
        }
        None => remove(&mut v, "required_pull_request_reviews"),
    }
    match &p.restrictions {
        Some((users, teams)) => {
            let users: Vec<Value> = users
                .iter()
                .map(|login| {
                    let id = st
                        .users
                        .iter()
                        .find(|(l, _)| l == login)
                        .map_or(0, |(_, id)| *id);
                    user_json(&user_tpl, login, id)
                })
                .collect();
            let teams: Vec<Value> = teams
                .iter()
                .filter_map(|slug| st.teams.iter().find(|t| t.org == owner && &t.slug == slug))
                .map(|t| team_json(&team_tpl, t))
                .collect();
            v["restrictions"] = json!({
                "url": format!("{base}/restrictions"),
                "users_url": format!("{base}/restrictions/users"),
                "teams_url": format!("{base}/restrictions/teams"),
                "apps_url": format!("{base}/restrictions/apps"),
                "users": users,
                "teams": teams,
                "apps": [],
            });
        }
        None => remove(&mut v, "restrictions"),
    }
    v["required_signatures"] = json!({
        "url": format!("{base}/required_signatures"),
        "enabled": p.required_signatures,
    });
    v["allow_force_pushes"] = json!({"enabled": p.allow_force_pushes});
    for k in [
        "required_linear_history",
        "allow_deletions",
        "block_creations",
        "required_conversation_resolution",
        "lock_branch",
        "allow_fork_syncing",
    ] {
        if v.get(k).is_some() {
            v[k] = json!({"enabled": false});
        }
    }
    v
}

fn remove(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
}

async fn get_protection(
    State(fake): State<Fake>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Response {
    let st = fake.state();
    match st.protections.get(&branch) {
        Some(p) => axum::Json(protection_json(
            &st,
            "branch-protection",
            &owner,
            &repo,
            &branch,
            p,
        ))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, "Branch not protected"),
    }
}

/// GitHub's rules on `PUT …/protection` that the schema cannot state: review count 0–6, push
/// restrictions naming users and teams that exist in the owner organization.
async fn put_protection(
    State(fake): State<Fake>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut st = fake.state();
    let mut problems = Vec::new();
    let status_checks = body["required_status_checks"].as_object().map(|r| {
        let mut names: Vec<String> = r
            .get("checks")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["context"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if r.contains_key("checks") && r.contains_key("contexts") {
            problems.push("required_status_checks: send either contexts or checks".to_string());
        }
        if let Some(cs) = r.get("contexts").and_then(Value::as_array) {
            names.extend(cs.iter().filter_map(|c| c.as_str().map(str::to_string)));
        }
        (
            r.get("strict").and_then(Value::as_bool).unwrap_or(false),
            names,
        )
    });
    let reviews = body["required_pull_request_reviews"].as_object().map(|r| {
        let n = r
            .get("required_approving_review_count")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        if n > 6 {
            problems.push(format!("required_approving_review_count {n} is over 6"));
        }
        let dismiss = r
            .get("dismiss_stale_reviews")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        (n, dismiss)
    });
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let restrictions = body["restrictions"].as_object().map(|r| {
        let users = strings(r.get("users").unwrap_or(&Value::Null));
        let teams = strings(r.get("teams").unwrap_or(&Value::Null));
        (users, teams)
    });
    if let Some((users, teams)) = &restrictions {
        for u in users {
            if !st.users.iter().any(|(l, _)| l == u) {
                problems.push(format!("restrictions: no user `{u}`"));
            }
        }
        for t in teams {
            if !st.teams.iter().any(|x| x.org == owner && &x.slug == t) {
                problems.push(format!(
                    "restrictions: no team `{t}` in organization `{owner}`"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return validation_failed(&mut st, problems);
    }
    // Required signatures have their own endpoint; a PUT keeps them.
    let signatures = st
        .protections
        .get(&branch)
        .is_some_and(|p| p.required_signatures);
    let p = Protection {
        status_checks,
        enforce_admins: body["enforce_admins"].as_bool().unwrap_or(false),
        reviews,
        restrictions,
        allow_force_pushes: body["allow_force_pushes"].as_bool().unwrap_or(false),
        required_signatures: signatures,
    };
    let v = protection_json(&st, "branch-protection-update", &owner, &repo, &branch, &p);
    st.protections.insert(branch, p);
    axum::Json(v).into_response()
}

async fn add_signatures(
    State(fake): State<Fake>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Response {
    let mut st = fake.state();
    let mut v = template(&st, "protected-branch-admin-enforced");
    let Some(p) = st.protections.get_mut(&branch) else {
        return error(StatusCode::NOT_FOUND, "Branch not protected");
    };
    p.required_signatures = true;
    v["url"] = json!(format!(
        "{API}/repos/{owner}/{repo}/branches/{branch}/protection/required_signatures"
    ));
    v["enabled"] = json!(true);
    axum::Json(v).into_response()
}

async fn remove_signatures(
    State(fake): State<Fake>,
    Path((_, _, branch)): Path<(String, String, String)>,
) -> Response {
    let mut st = fake.state();
    match st.protections.get_mut(&branch) {
        Some(p) => {
            p.required_signatures = false;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Branch not protected"),
    }
}

/// An environment written into GitHub's `environments` example: protection rules appear only for
/// what is set, as GitHub lists them.
fn environment_json(st: &FakeState, owner: &str, repo: &str, e: &Environment) -> Value {
    let example = template(st, "environments");
    let mut v = first_of(example["environments"].clone());
    let rules = v["protection_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rule = |kind: &str| {
        rules
            .iter()
            .find(|r| r["type"] == kind)
            .cloned()
            .unwrap_or_else(|| json!({"type": kind}))
    };
    let reviewer_tpl = rule("required_reviewers")["reviewers"].clone();
    let tpl_of = |kind: &str| {
        reviewer_tpl
            .as_array()
            .and_then(|a| a.iter().find(|r| r["type"] == kind))
            .map(|r| r["reviewer"].clone())
            .unwrap_or_else(|| json!({}))
    };
    let (user_tpl, team_tpl) = (tpl_of("User"), tpl_of("Team"));
    v["id"] = json!(e.id);
    v["node_id"] = json!(format!("EN_{}", e.id));
    v["name"] = json!(e.name);
    v["url"] = json!(format!(
        "{API}/repos/{owner}/{repo}/environments/{}",
        e.name
    ));
    v["html_url"] = json!(format!(
        "https://github.com/{owner}/{repo}/deployments/activity_log?environments_filter={}",
        e.name
    ));
    let mut out_rules = Vec::new();
    let mut next = e.id * 10;
    let mut numbered = |mut r: Value| {
        next += 1;
        r["id"] = json!(next);
        r["node_id"] = json!(format!("GA_{next}"));
        r
    };
    if e.wait_timer > 0 {
        let mut r = rule("wait_timer");
        r["wait_timer"] = json!(e.wait_timer);
        out_rules.push(numbered(r));
    }
    if !e.reviewers.is_empty() {
        let mut r = rule("required_reviewers");
        r["prevent_self_review"] = json!(e.prevent_self_review);
        r["reviewers"] = json!(
            e.reviewers
                .iter()
                .map(|(kind, id)| {
                    let reviewer = if kind == "Team" {
                        st.teams
                            .iter()
                            .find(|t| t.id == *id)
                            .map(|t| team_json(&team_tpl, t))
                    } else {
                        st.users
                            .iter()
                            .find(|(_, u)| u == id)
                            .map(|(login, id)| user_json(&user_tpl, login, *id))
                    };
                    json!({"type": kind, "reviewer": reviewer.unwrap_or(Value::Null)})
                })
                .collect::<Vec<_>>()
        );
        out_rules.push(numbered(r));
    }
    if e.branch_policy.is_some() {
        out_rules.push(numbered(rule("branch_policy")));
    }
    v["protection_rules"] = json!(out_rules);
    v["deployment_branch_policy"] = match e.branch_policy {
        Some((p, c)) => json!({"protected_branches": p, "custom_branch_policies": c}),
        None => Value::Null,
    };
    v
}

async fn list_environments(
    State(fake): State<Fake>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let st = fake.state();
    let all: Vec<Value> = st
        .environments
        .iter()
        .map(|e| environment_json(&st, &owner, &repo, e))
        .collect();
    axum::Json(json!({"total_count": all.len(), "environments": page(&all, &q)})).into_response()
}

/// GitHub's rules on `PUT …/environments/{name}`: at most six reviewers, each an existing user or
/// team; `protected_branches` and `custom_branch_policies` must differ; wait timer ≤ 30 days.
async fn put_environment(
    State(fake): State<Fake>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    body: Option<axum::Json<Value>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or(Value::Null);
    let mut st = fake.state();
    let mut problems = Vec::new();
    let reviewers: Vec<(String, u64)> = body["reviewers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["type"].as_str().unwrap_or_default().to_string(),
                        r["id"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if reviewers.len() > 6 {
        problems.push(format!("{} reviewers; at most 6", reviewers.len()));
    }
    for (kind, id) in &reviewers {
        let known = match kind.as_str() {
            "Team" => st.teams.iter().any(|t| t.id == *id),
            "User" => st.users.iter().any(|(_, u)| u == id),
            _ => false,
        };
        if !known {
            problems.push(format!("reviewer {kind} {id} does not exist"));
        }
    }
    let branch_policy = body["deployment_branch_policy"].as_object().map(|p| {
        (
            p.get("protected_branches")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            p.get("custom_branch_policies")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )
    });
    if let Some((p, c)) = branch_policy
        && p == c
    {
        problems.push("protected_branches and custom_branch_policies must differ".into());
    }
    let wait_timer = body["wait_timer"].as_u64().unwrap_or(0);
    if wait_timer > 43_200 {
        problems.push(format!("wait_timer {wait_timer} is over 43200 minutes"));
    }
    if !problems.is_empty() {
        st.rejections.extend(problems.iter().cloned());
        return error(StatusCode::UNPROCESSABLE_ENTITY, &problems.join("; "));
    }
    let id = match st.environments.iter().find(|e| e.name == name) {
        Some(e) => e.id,
        None => {
            st.next_id += 1;
            st.next_id
        }
    };
    let env = Environment {
        id,
        name: name.clone(),
        wait_timer,
        prevent_self_review: body["prevent_self_review"].as_bool().unwrap_or(false),
        reviewers,
        branch_policy,
    };
    let v = environment_json(&st, &owner, &repo, &env);
    match st.environments.iter_mut().find(|e| e.name == name) {
        Some(slot) => *slot = env,
        None => st.environments.push(env),
    }
    axum::Json(v).into_response()
}

async fn get_team(State(fake): State<Fake>, Path((org, slug)): Path<(String, String)>) -> Response {
    let st = fake.state();
    let Some(t) = st.teams.iter().find(|t| t.org == org && t.slug == slug) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let tpl = template(&st, "team-full");
    let mut v = team_json(&tpl, t);
    v["organization"]["login"] = json!(org);
    v["organization"]["url"] = json!(format!("{API}/orgs/{org}"));
    // Required by the schema, absent from the example.
    v["organization"]["archived_at"] = Value::Null;
    axum::Json(v).into_response()
}

async fn get_user(State(fake): State<Fake>, Path(login): Path<String>) -> Response {
    let st = fake.state();
    let Some((login, id)) = st.users.iter().find(|(l, _)| *l == login).cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let tpl = template(&st, "public-user-default-response");
    let mut v = user_json(&tpl, &login, id);
    v["user_view_type"] = json!("public");
    axum::Json(v).into_response()
}

//! A small HTTP router that sends each request to a ready address behind a Service, following the
//! Service's EndpointSlices (`discovery.k8s.io/v1beta1` on 1.20, `v1` where served) — so a selector
//! switch really moves traffic. Pod IPs are mapped to the sample app processes through the kubelet's
//! [`AddressBook`]. Every response carries `x-fm-backend` (the process that answered); with no ready
//! backend the router answers 503.

use super::kubelet::AddressBook;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::task::JoinHandle;

struct Shared {
    book: AddressBook,
    /// EndpointSlice name → ready pod IPs.
    slices: RwLock<BTreeMap<String, Vec<String>>>,
    next: AtomicUsize,
    http: reqwest::Client,
}

impl Shared {
    fn backends(&self) -> Vec<SocketAddr> {
        let slices = match self.slices.read() {
            Ok(s) => s,
            Err(_) => return Vec::new(),
        };
        let mut out: Vec<SocketAddr> = slices
            .values()
            .flatten()
            .filter_map(|ip| self.book.backend(ip))
            .collect();
        out.sort();
        out
    }
}

pub struct TestRouter {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl TestRouter {
    /// Starts a router on `127.0.0.1:<free port>` for Service `service` in `namespace`.
    pub async fn start(
        client: &Client,
        namespace: &str,
        service: &str,
        book: AddressBook,
    ) -> anyhow::Result<TestRouter> {
        let group = kube::discovery::group(client, "discovery.k8s.io").await?;
        let version = if group.versions().any(|v| v == "v1") {
            "v1"
        } else {
            "v1beta1"
        };
        let (ar, _) = group
            .versioned_resources(version)
            .into_iter()
            .find(|(ar, _)| ar.kind == "EndpointSlice")
            .ok_or_else(|| {
                anyhow::anyhow!("no EndpointSlice resource in discovery.k8s.io/{version}")
            })?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let shared = Arc::new(Shared {
            book,
            slices: RwLock::new(BTreeMap::new()),
            next: AtomicUsize::new(0),
            http: reqwest::Client::builder().no_proxy().build()?,
        });
        let cfg =
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let follow = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let stream = watcher::watcher(api, cfg).default_backoff();
                futures::pin_mut!(stream);
                let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
                while let Some(ev) = stream.next().await {
                    let mut slices = match shared.slices.write() {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    match ev {
                        Ok(Event::Apply(o)) => {
                            slices.insert(o.name_any(), ready_ips(&o));
                        }
                        Ok(Event::Delete(o)) => {
                            slices.remove(&o.name_any());
                        }
                        Ok(Event::Init) => pending.clear(),
                        Ok(Event::InitApply(o)) => {
                            pending.insert(o.name_any(), ready_ips(&o));
                        }
                        Ok(Event::InitDone) => *slices = std::mem::take(&mut pending),
                        Err(_) => {}
                    }
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(proxy)
            .with_state(shared.clone());
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TestRouter {
            addr,
            shared,
            tasks: vec![follow, serve],
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The app processes currently behind the Service, sorted.
    pub fn backends(&self) -> Vec<SocketAddr> {
        self.shared.backends()
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn ready_ips(o: &DynamicObject) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(eps) = o.data.get("endpoints").and_then(|e| e.as_array()) {
        for ep in eps {
            // `ready` absent means ready (the API's rule).
            let ready = ep
                .pointer("/conditions/ready")
                .and_then(|r| r.as_bool())
                .unwrap_or(true);
            if !ready {
                continue;
            }
            if let Some(addrs) = ep.get("addresses").and_then(|a| a.as_array()) {
                out.extend(addrs.iter().filter_map(|a| a.as_str().map(str::to_string)));
            }
        }
    }
    out
}

async fn proxy(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let backends = shared.backends();
    if backends.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready endpoints behind the service",
        )
            .into_response();
    }
    let pick = backends[shared.next.fetch_add(1, Ordering::Relaxed) % backends.len()];
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let method = req.method().clone();
    let body = match axum::body::to_bytes(req.into_body(), 16 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let upstream = shared
        .http
        .request(method, format!("http://{pick}{path}"))
        .body(body)
        .send()
        .await;
    match upstream {
        Ok(r) => {
            let status = r.status();
            let ctype = r.headers().get("content-type").cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            if let Some(c) = ctype {
                resp.headers_mut().insert("content-type", c);
            }
            if let Ok(v) = HeaderValue::from_str(&pick.to_string()) {
                resp.headers_mut().insert("x-fm-backend", v);
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("backend {pick}: {e}")).into_response(),
    }
}

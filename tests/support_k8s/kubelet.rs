//! The stand-in kubelet: the testbed has no real one, so pods would stay Pending forever.
//!
//! It registers a Node, binds every pending pod of its namespace to it (`pods/binding`), reports
//! bound pods Running with an ordinary pod-range IP, and finishes deletions (grace 0). The image tag
//! decides the behaviour:
//! - a tag ending in `never-ready`: Running, container up, never Ready (`ContainersNotReady`);
//! - a tag ending in `crashloop`: container waiting in `CrashLoopBackOff`, `restartCount` bumped
//!   every second;
//! - a tag ending in `slow-ready`: Running, Ready only [`SLOW_READY`] after binding;
//! - anything else: Running and Ready.
//!
//! The [`AddressBook`] maps each pod IP to the loopback address of the sample app process serving
//! that image, which is what the router sends traffic to. Where the pod range is local to this host
//! (testbed/up.sh routes `10.244.0.0/16` to `lo`, as `ip route add local` does), the pod IP also
//! answers on the container's port, forwarding to that process: the apiserver's service and pod
//! proxies dial pod IPs, and so reach the app as they would through a real kubelet's pod network.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Which app process serves an image, and which pod IP stands for which process.
#[derive(Clone, Default)]
pub struct AddressBook {
    inner: Arc<Mutex<BookInner>>,
    ready_log: Arc<Mutex<Vec<(String, Instant)>>>,
}

#[derive(Default)]
struct BookInner {
    images: HashMap<String, SocketAddr>,
    pods: HashMap<String, SocketAddr>,
}

impl AddressBook {
    /// Pods running `image` are served by the process at `addr`.
    pub fn serve_image(&self, image: &str, addr: SocketAddr) {
        if let Ok(mut b) = self.inner.lock() {
            b.images.insert(image.to_string(), addr);
        }
    }

    /// The process behind a pod IP, if its image has one.
    pub fn backend(&self, pod_ip: &str) -> Option<SocketAddr> {
        self.inner
            .lock()
            .ok()
            .and_then(|b| b.pods.get(pod_ip).copied())
    }

    /// When each pod was reported Ready (the moment the status patch returned), in order.
    pub fn ready_log(&self) -> Vec<(String, Instant)> {
        self.ready_log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn log_ready(&self, pod: &str) {
        if let Ok(mut l) = self.ready_log.lock() {
            l.push((pod.to_string(), Instant::now()));
        }
    }

    fn assign(&self, pod_ip: &str, image: &str) {
        if let Ok(mut b) = self.inner.lock()
            && let Some(a) = b.images.get(image).copied()
        {
            b.pods.insert(pod_ip.to_string(), a);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Ready,
    NeverReady,
    CrashLoop,
    SlowReady,
}

/// How long a `slow-ready` pod stays not Ready.
pub const SLOW_READY: Duration = Duration::from_secs(2);

/// The Node a kubelet registers for `namespace` (deleted with the test namespace).
pub fn node_name(namespace: &str) -> String {
    format!("{namespace}-node")
}

pub fn behaviour_of(image: &str) -> Behaviour {
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
    if tag.ends_with("never-ready") {
        Behaviour::NeverReady
    } else if tag.ends_with("crashloop") {
        Behaviour::CrashLoop
    } else if tag.ends_with("slow-ready") {
        Behaviour::SlowReady
    } else {
        Behaviour::Ready
    }
}

/// A running stand-in kubelet for one namespace; stops (and deletes its Node) on `stop` or drop.
pub struct Kubelet {
    pub node: String,
    pub book: AddressBook,
    client: Client,
    task: JoinHandle<()>,
}

impl Kubelet {
    pub async fn start(
        client: &Client,
        namespace: &str,
        book: AddressBook,
    ) -> anyhow::Result<Kubelet> {
        let node = node_name(namespace);
        let nodes = Api::<Node>::all(client.clone());
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "fm-deploy-test": "true"}},
        }))?;
        nodes.create(&PostParams::default(), &n).await?;
        nodes
            .patch_status(
                &node,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "stand-in kubelet is posting ready status"}],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                }})),
            )
            .await?;
        let task = tokio::spawn(run(
            client.clone(),
            namespace.to_string(),
            node.clone(),
            book.clone(),
        ));
        Ok(Kubelet {
            node,
            book,
            client: client.clone(),
            task,
        })
    }

    pub async fn stop(self) {
        self.task.abort();
        super::delete_node(&self.client, &self.node).await;
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct PodState {
    ip: String,
    /// The pod IP's listener on the container port, when the pod range is local (dropped with the
    /// pod: the task is aborted).
    _listener: Option<PodListener>,
    image: String,
    behaviour: Behaviour,
    restarts: i32,
    /// For slow-ready pods: when to report Ready; `None` once reported.
    ready_at: Option<Instant>,
    ready: bool,
}

async fn run(client: Client, namespace: String, node: String, book: AddressBook) {
    let pods = Api::<Pod>::namespaced(client, &namespace);
    let mut known: BTreeMap<String, PodState> = BTreeMap::new();
    let octet: u8 = rand::random::<u8>() % 250;
    let mut next_ip: u32 = 1;
    let stream = watcher::watcher(pods.clone(), watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_bump = Instant::now();
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { return };
                let pod = match ev {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                    Ok(Event::Delete(p)) => { known.remove(&p.name_any()); continue }
                    Ok(Event::Init | Event::InitDone) | Err(_) => continue,
                };
                let name = pod.name_any();
                if pod.metadata.deletion_timestamp.is_some() {
                    let dp = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
                    let _ = pods.delete(&name, &dp).await;
                    known.remove(&name);
                    continue;
                }
                let spec_node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                match spec_node {
                    None => {
                        let binding = json!({
                            "apiVersion": "v1", "kind": "Binding",
                            "metadata": {"name": name, "namespace": namespace},
                            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                        });
                        let _ = pods
                            .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
                            .await;
                    }
                    Some(n) if n == node => {
                        if known.contains_key(&name) { continue }
                        let image = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.first())
                            .and_then(|c| c.image.clone())
                            .unwrap_or_default();
                        let ip = format!("10.244.{octet}.{next_ip}");
                        next_ip += 1;
                        book.assign(&ip, &image);
                        let port = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.first())
                            .and_then(|c| c.ports.as_ref())
                            .and_then(|p| p.first())
                            .and_then(|p| u16::try_from(p.container_port).ok())
                            .unwrap_or(8080);
                        let listener = match book.backend(&ip) {
                            Some(backend) => PodListener::start(&ip, port, backend).await,
                            None => None,
                        };
                        let behaviour = behaviour_of(&image);
                        let st = PodState {
                            _listener: listener,
                            ip,
                            behaviour,
                            image,
                            restarts: 0,
                            ready_at: (behaviour == Behaviour::SlowReady).then(|| Instant::now() + SLOW_READY),
                            ready: behaviour == Behaviour::Ready,
                        };
                        if report(&pods, &name, &pod, &st).await.is_ok() && st.ready {
                            book.log_ready(&name);
                        }
                        known.insert(name, st);
                    }
                    Some(_) => {}
                }
            }
            _ = tick.tick() => {
                let bump = last_bump.elapsed() >= Duration::from_secs(1);
                if bump {
                    last_bump = Instant::now();
                }
                for (name, st) in known.iter_mut() {
                    let due = st.ready_at.is_some_and(|t| Instant::now() >= t);
                    if due {
                        st.ready_at = None;
                        st.ready = true;
                    }
                    if (st.behaviour == Behaviour::CrashLoop && bump) || due {
                        if st.behaviour == Behaviour::CrashLoop {
                            st.restarts += 1;
                        }
                        if let Ok(Some(p)) = pods.get_opt(name).await
                            && report(&pods, name, &p, st).await.is_ok()
                            && due
                        {
                            book.log_ready(name);
                        }
                    }
                }
            }
        }
    }
}

/// `pod_ip:port` forwarding every connection to the app process at `backend`.
struct PodListener {
    task: JoinHandle<()>,
}

impl PodListener {
    /// `None` when the address cannot be bound here (the pod range is not local).
    async fn start(pod_ip: &str, port: u16, backend: SocketAddr) -> Option<PodListener> {
        let listener = tokio::net::TcpListener::bind((pod_ip, port)).await.ok()?;
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Some(PodListener { task })
    }
}

impl Drop for PodListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether pod IPs are local addresses here (testbed/up.sh's `local 10.244.0.0/16` route), so
/// the apiserver's proxies reach the stand-in pods.
pub async fn pod_range_is_local() -> bool {
    tokio::net::TcpListener::bind(("10.244.255.254", 0))
        .await
        .is_ok()
}

async fn report(pods: &Api<Pod>, name: &str, pod: &Pod, st: &PodState) -> kube::Result<Pod> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "app".into());
    let ready = st.ready;
    let (state, last_state) = match st.behaviour {
        Behaviour::Ready | Behaviour::NeverReady | Behaviour::SlowReady => {
            (json!({"running": {"startedAt": now}}), json!({}))
        }
        Behaviour::CrashLoop => (
            json!({"waiting": {"reason": "CrashLoopBackOff",
                   "message": format!("back-off 10s restarting failed container={container} pod={name}")}}),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}}),
        ),
    };
    let not_ready_msg = format!("containers with unready status: [{container}]");
    let cond = |t: &str| {
        if ready {
            json!({"type": t, "status": "True", "lastTransitionTime": now})
        } else {
            json!({"type": t, "status": "False", "reason": "ContainersNotReady",
                   "message": not_ready_msg, "lastTransitionTime": now})
        }
    };
    let status = json!({"status": {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": st.ip,
        "podIPs": [{"ip": st.ip}],
        "startTime": now,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            cond("Ready"),
            cond("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": container, "image": st.image, "imageID": format!("fake://{}", st.image),
            "ready": ready, "started": st.behaviour != Behaviour::CrashLoop,
            "restartCount": st.restarts, "state": state, "lastState": last_state,
        }],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
}

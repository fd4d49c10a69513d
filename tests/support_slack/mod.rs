//! A Slack incoming-webhook stand-in on loopback: records every body POSTed to its one path.

use std::sync::{Arc, Mutex};

/// Starts the stand-in answering `path` (e.g. `/services/T000/B000/XXXX`); returns the webhook
/// URL and the bodies it received so far.
pub async fn stand_in(path: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let posts = Arc::new(Mutex::new(Vec::new()));
    let seen = posts.clone();
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                if let Ok(mut s) = seen.lock() {
                    s.push(body);
                }
                "ok"
            }
        }),
    );
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind the Slack stand-in: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("address of the Slack stand-in: {e}"),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}{path}"), posts)
}

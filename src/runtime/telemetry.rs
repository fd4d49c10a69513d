//! Logging setup: `tracing` to stderr with an `EnvFilter`.
//!
//! HTTP client internals are capped at `info` whatever the filter asks, because their debug/trace
//! events can carry request headers — `Authorization` must never reach the log.

use tracing_subscriber::EnvFilter;

/// Crates whose verbose logs may include headers.
const HTTP_INTERNALS: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
    "tower_http",
    "http",
];

/// The filter directives to use: `requested` (`FM_DEPLOY_LOG` / `RUST_LOG`) if given, else `debug`
/// when the runner's debug logging is on (`RUNNER_DEBUG=1`), else `info`; HTTP internals capped.
pub fn log_filter(requested: Option<&str>, runner_debug: bool) -> String {
    let base = match requested.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => r.to_owned(),
        None if runner_debug => "debug".to_owned(),
        None => "info".to_owned(),
    };
    let mut directives: Vec<String> = base
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let target = d.split(['=', '[']).next().unwrap_or_default();
            let krate = target.split("::").next().unwrap_or_default();
            !HTTP_INTERNALS.contains(&krate)
        })
        .map(str::to_owned)
        .collect();
    directives.extend(HTTP_INTERNALS.iter().map(|c| format!("{c}=info")));
    directives.join(",")
}

/// Installs the global subscriber (stderr). `ansi` forces colour on: TTY detection fails inside
/// Actions containers, whose log viewer renders ANSI. A second call is a no-op.
pub fn init_tracing(filter: &str, ansi: bool) {
    let filter =
        EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(log_filter(None, false)));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Default is info; RUNNER_DEBUG turns on debug; HTTP internals are always capped at info.
    #[test]
    fn defaults_and_caps() {
        let f = log_filter(None, false);
        assert!(f.starts_with("info,hyper=info,"), "{f}");
        assert!(log_filter(None, true).starts_with("debug,"));
        assert!(log_filter(Some("  "), false).starts_with("info,"));
    }

    /// A request to trace the HTTP stack is dropped, other directives are kept.
    #[test]
    fn http_trace_is_not_honoured() {
        let f = log_filter(
            Some("fm_deploy=trace,hyper=trace,reqwest::connect=debug,h2[conn]=trace"),
            false,
        );
        assert!(f.starts_with("fm_deploy=trace,hyper=info,"), "{f}");
        for dropped in ["hyper=trace", "reqwest::connect=debug", "h2[conn]=trace"] {
            assert!(!f.contains(dropped), "{f}");
        }
        assert!(EnvFilter::try_new(&f).is_ok());
    }
}

//! Logging setup: `tracing` to stderr with an `EnvFilter`.
//!
//! Log events carry untrusted text (tool output, paths, error chains) and the runner reads stderr for
//! workflow commands too: each event is written whole through [`super::defuse`].
//!
//! HTTP client internals are capped at `info` whatever the filter asks, because their debug/trace
//! events can carry request headers — `Authorization` must never reach the log.

use std::io::Write;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
        .with_writer(DefusedStderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Hands `tracing` one buffer per event; the event reaches stderr defused when it is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefusedStderr;

impl<'a> MakeWriter<'a> for DefusedStderr {
    type Writer = DefusedEvent<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        DefusedEvent::new(std::io::stderr())
    }
}

/// One log event being written: collected, then written to `W` [`super::defuse`]d, in one write.
#[derive(Debug)]
pub struct DefusedEvent<W: Write> {
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> DefusedEvent<W> {
    pub fn new(out: W) -> Self {
        Self {
            buf: Vec::new(),
            out,
        }
    }
}

impl<W: Write> Write for DefusedEvent<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for DefusedEvent<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        // A log line that cannot be written has nowhere else to go.
        let _ = self.out.write_all(super::defuse(&text).as_bytes());
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log event carrying a hostile message reaches the writer whole and executes no command.
    #[test]
    fn log_events_are_defused() {
        let mut sink = Vec::new();
        {
            let mut ev = DefusedEvent::new(&mut sink);
            ev.write_all(b"WARN gate failed: stderr tail:\n").unwrap();
            ev.write_all(b"::warning title=INJECTED::x\n").unwrap();
        }
        let text = String::from_utf8(sink).unwrap();
        assert_eq!(
            text,
            "WARN gate failed: stderr tail:\n| ::warning title=INJECTED::x\n"
        );
        assert!(crate::runtime::runner_commands(&text).is_empty());
    }

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

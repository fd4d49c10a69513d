//! Prometheus scrape targets for the testbed's Prometheus (file service discovery, refreshed every
//! second): a target file per app process, removed on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub struct ScrapeTarget {
    path: PathBuf,
}

impl ScrapeTarget {
    /// Registers `addr` with labels (e.g. `color`, `version`, `namespace`) in the testbed's
    /// Prometheus; `sd_dir` is `FM_TESTBED_PROM_SD_DIR`.
    pub fn register(
        sd_dir: &str,
        addr: SocketAddr,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<ScrapeTarget> {
        let name = format!("{}.json", super::unique("target"));
        let path = PathBuf::from(sd_dir).join(name);
        let body = serde_json::json!([{"targets": [addr.to_string()], "labels": labels}]);
        // Write then rename so Prometheus never reads half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&body)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(ScrapeTarget { path })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

//! The policy's base-copy port over GitHub's contents API, for checkouts without the base commit.
//!
//! Decides nothing: which source is used and what a changed file means is `policy::base`.

use super::{Error, GithubClient};
use crate::policy::base::BaseFiles;
use base64::Engine as _;
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// One file as `GET /repos/{owner}/{repo}/contents/{path}` answers it.
#[derive(Deserialize)]
struct FileContent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

/// Everything but RFC 3986's unreserved characters is encoded inside a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `/repos/{owner}/{repo}/contents/{path}?ref={sha}` with each segment encoded.
pub fn contents_path(repo_path: &str, path: &str, sha: &str) -> String {
    let encoded: Vec<String> = path.split('/').map(encode_segment).collect();
    format!(
        "{repo_path}/contents/{}?ref={}",
        encoded.join("/"),
        encode_segment(sha)
    )
}

impl GithubClient {
    /// The text of `path` at commit `sha`; `None` when GitHub answers 404 (no such file there).
    pub async fn file_at(&self, sha: &str, path: &str) -> Result<Option<String>, Error> {
        let route = contents_path(&self.repo_path(), path, sha);
        let file: FileContent = match self.send(Method::GET, &route, None::<&()>).await {
            Ok(f) => f,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let unexpected = |what: String| Error::Unexpected {
            method: "GET".into(),
            path: route.clone(),
            what,
        };
        if file.kind != "file" {
            return Err(unexpected(format!(
                "`{path}` is a {}, not a file",
                file.kind
            )));
        }
        if file.encoding.as_deref() != Some("base64") {
            return Err(unexpected(format!(
                "content encoding {:?} (files over 1 MB are not returned inline)",
                file.encoding
            )));
        }
        let packed: String = file
            .content
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .map_err(|e| unexpected(format!("content is not base64: {e}")))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| unexpected(format!("`{path}` is not UTF-8 text")))
    }
}

impl BaseFiles for GithubClient {
    /// The contents API reads any commit of the repository; a missing one answers 404 per file.
    async fn has_commit(&self, _sha: &str) -> Result<(), String> {
        Ok(())
    }

    async fn read_at(&self, sha: &str, path: &str) -> Result<Option<String>, String> {
        self.file_at(sha, path).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each segment is encoded; the separators stay.
    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(
            contents_path("/repos/o/r", ".github/fm deploy#1.yml", "abc"),
            "/repos/o/r/contents/.github/fm%20deploy%231.yml?ref=abc"
        );
    }
}

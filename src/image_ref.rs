//! The image reference a run gates and deploys, composed once from the policy's `app.image` and
//! the `image`, `image-tag` and `image-digest` inputs. Pure; every consumer (the plan, the
//! container-scan gate's `{image}`, the deploy) calls [`compose`].
//!
//! - `image` names a repository (`ghcr.io/org/app`); `image-tag` (default: the commit SHA) is
//!   appended: `ghcr.io/org/app:<tag>`.
//! - `image-digest` (`sha256:<64 hex>`, what a build step prints) pins the content:
//!   `ghcr.io/org/app@sha256:…`, or `ghcr.io/org/app:<tag>@sha256:…` when a tag is given too. The
//!   cluster pulls exactly the bytes that were scanned.
//! - An `image` that already carries a tag or digest is used as given; combining it with
//!   `image-tag` or `image-digest` is refused rather than silently dropping one of them.

/// What the inputs say about the image; `None` means not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageInputs {
    /// `image`: a repository, or a complete reference.
    pub image: Option<String>,
    /// `image-tag`.
    pub tag: Option<String>,
    /// `image-digest`.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error(
        "compose the image reference: `image` `{image}` already carries a {carries}, so `{input}` cannot be applied (pass the repository alone)"
    )]
    Conflict {
        image: String,
        carries: &'static str,
        input: &'static str,
    },
}

/// Whether the last path segment names a tag (`repo:tag`) or the reference a digest (`@`). A
/// registry port (`host:5000/repo`) is not a tag.
fn carries(reference: &str) -> Option<&'static str> {
    if reference.contains('@') {
        return Some("digest");
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':').then_some("tag")
}

/// The reference to gate and deploy. `sha` is the commit the run is about (the default tag).
pub fn compose(inputs: &ImageInputs, app_image: &str, sha: &str) -> Result<String, ImageRefError> {
    let base = inputs.image.as_deref().unwrap_or(app_image);
    if let Some(carried) = carries(base) {
        let extra = [("image-tag", &inputs.tag), ("image-digest", &inputs.digest)]
            .into_iter()
            .find(|(_, v)| v.is_some());
        return match extra {
            Some((input, _)) => Err(ImageRefError::Conflict {
                image: base.to_string(),
                carries: carried,
                input,
            }),
            None => Ok(base.to_string()),
        };
    }
    Ok(match (&inputs.tag, &inputs.digest) {
        (Some(tag), Some(digest)) => format!("{base}:{tag}@{digest}"),
        (None, Some(digest)) => format!("{base}@{digest}"),
        (Some(tag), None) => format!("{base}:{tag}"),
        (None, None) => format!("{base}:{sha}"),
    })
}

/// `sha256:` and 64 lowercase hex digits: the digest a registry reports for a pushed image.
pub fn is_digest(v: &str) -> bool {
    v.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn inputs(image: Option<&str>, tag: Option<&str>, digest: Option<&str>) -> ImageInputs {
        ImageInputs {
            image: image.map(str::to_string),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }

    /// Protects the default: the policy's repository tagged with the commit.
    #[test]
    fn defaults_to_the_policy_image_at_the_commit() {
        let r = compose(&inputs(None, None, None), "ghcr.io/o/app", "abc");
        assert_eq!(r.as_deref(), Ok("ghcr.io/o/app:abc"));
    }

    /// Protects the fix: `image` together with `image-tag` keeps the tag.
    #[test]
    fn image_and_tag_combine() {
        let r = compose(
            &inputs(Some("registry.local:5000/team/app"), Some("v2"), None),
            "ghcr.io/o/app",
            "abc",
        );
        assert_eq!(r.as_deref(), Ok("registry.local:5000/team/app:v2"));
    }

    /// Protects digest pinning: with a digest the cluster pulls the scanned bytes.
    #[test]
    fn digest_pins_the_reference() {
        let r = compose(&inputs(None, None, Some(D)), "ghcr.io/o/app", "abc");
        assert_eq!(r, Ok(format!("ghcr.io/o/app@{D}")));
        let r = compose(&inputs(None, Some("v2"), Some(D)), "ghcr.io/o/app", "abc");
        assert_eq!(r, Ok(format!("ghcr.io/o/app:v2@{D}")));
    }

    /// Protects "never drop an input silently": a complete `image` refuses a tag or digest.
    #[test]
    fn complete_reference_refuses_more() {
        assert_eq!(
            compose(&inputs(Some("o/app:v1"), None, None), "x", "abc").as_deref(),
            Ok("o/app:v1")
        );
        let err = compose(&inputs(Some("o/app:v1"), Some("v2"), None), "x", "abc");
        assert!(
            matches!(
                &err,
                Err(ImageRefError::Conflict {
                    input: "image-tag",
                    carries: "tag",
                    ..
                })
            ),
            "{err:?}"
        );
        let err = compose(
            &inputs(Some(&format!("o/app@{D}")), None, Some(D)),
            "x",
            "abc",
        );
        assert!(
            matches!(
                &err,
                Err(ImageRefError::Conflict {
                    input: "image-digest",
                    carries: "digest",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    /// Protects the digest check the `image-digest` input relies on.
    #[test]
    fn digest_shape() {
        assert!(is_digest(D));
        assert!(!is_digest("sha256:ABC"));
        assert!(!is_digest(&D.replace("sha256", "sha512")));
        assert!(!is_digest(&format!("{D}0")));
    }
}

//! Content descriptors as they appear in manifests and in the referrers index.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::digest::Digest;

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type (referrers responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations (referrers responses carry all of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
    /// External URLs: content that need not be in the registry.
    #[serde(skip)]
    pub urls: Vec<String>,
    /// The platform an index entry is for, when it says.
    #[serde(skip)]
    pub platform: Option<Platform>,
}

/// The platform of an index entry (only what choosing a child needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `os`, e.g. `linux`.
    pub os: String,
    /// `architecture`, e.g. `amd64`.
    pub architecture: String,
}

//! What the server's configuration tells the notifier: the endpoints (as distribution's
//! `notifications.endpoints`, already validated) and berth's queue settings.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use crate::event::Action;

/// `notifications` with `berth.notifications`.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The enabled endpoints, in the order written.
    pub endpoints: Vec<EndpointConfig>,
    /// `notifications.events.includereferences`: manifest events list what the
    /// manifest references.
    pub include_references: bool,
    /// Where and how much is queued.
    pub queue: QueueConfig,
}

/// `berth.notifications.queue`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The node-local directory of the queue; `None`: in memory (lost on restart).
    pub directory: Option<PathBuf>,
    /// Undelivered events kept per endpoint; beyond it the oldest are dropped.
    pub max_events: u64,
    /// How often written events are flushed to the disk.
    pub flush_interval: Duration,
}

/// One endpoint, with distribution's defaults filled in.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Its name (unique; its cursor is kept under it).
    pub name: String,
    /// Where events are posted.
    pub url: Uri,
    /// Headers added to every post.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How long one post may take (distribution's default: 1s).
    pub timeout: Duration,
    /// Failures in a row before posts are spaced by `backoff` (default 10).
    pub threshold: u32,
    /// The pause between posts once `threshold` failed in a row (default 1s).
    pub backoff: Duration,
    /// Target media types whose events this endpoint does not get
    /// (`ignoredmediatypes` and `ignore.mediatypes`).
    pub ignored_media_types: Vec<String>,
    /// Actions whose events this endpoint does not get (`ignore.actions`).
    pub ignored_actions: Vec<Action>,
}

impl EndpointConfig {
    /// Whether this endpoint gets an event of `action` about a target of `media_type`.
    pub fn accepts(&self, action: Action, media_type: &str) -> bool {
        !self.ignored_actions.contains(&action)
            && !self.ignored_media_types.iter().any(|m| m == media_type)
    }
}

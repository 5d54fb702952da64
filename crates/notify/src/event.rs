//! The event model, in distribution's JSON shape: what an event says about its target,
//! the request that caused it, who made it and which registry saw it. Field names, their
//! order and which ones are left out when empty follow what distribution 2.8.2 sends
//! (checked against the real binary), so receivers written for it read berth's events.

use serde::Serialize;

/// The envelope's `Content-Type`.
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// What happened to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A manifest or blob was pushed (a blob on upload commit).
    Push,
    /// A manifest or blob was read (HEAD too, as in distribution).
    Pull,
    /// A blob was linked from another repository.
    Mount,
    /// A manifest, blob or tag was deleted.
    Delete,
}

impl Action {
    /// distribution's name for the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
        }
    }

    /// Parses distribution's name (as `ignore.actions` writes it).
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "push" => Action::Push,
            "pull" => Action::Pull,
            "mount" => Action::Mount,
            "delete" => Action::Delete,
            _ => return None,
        })
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A descriptor listed in `target.references` (a manifest's config, layers or
/// children). distribution 2.8.2 lists an index's children without their platform, and
/// so does berth.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// Media type of the referenced content.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// Size in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Digest.
    pub digest: String,
}

/// What the event is about. Empty fields are left out, as distribution leaves them out:
/// a delete names only the repository and the digest (or the tag).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Media type (`application/octet-stream` for blobs, as distribution says).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// Size in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Digest.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Same as `size` (distribution keeps both).
    #[serde(skip_serializing_if = "is_zero")]
    pub length: u64,
    /// The repository.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// The source repository of a mount.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from_repository: String,
    /// Where the target can be fetched.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The tag of a manifest pushed or pulled by tag, or of a deleted tag.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// A manifest's references (`notifications.events.includereferences`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// The request behind an event. `id`, `method` and `useragent` are always written, the
/// others when known (as in distribution).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestRecord {
    /// The request id (`X-Request-Id`, or the one berth made).
    pub id: String,
    /// The client address: the first `X-Forwarded-For` entry or `X-Real-Ip` when it is
    /// an IP address, else the TCP peer (`ip:port`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// The `Host` the request named.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The HTTP method.
    pub method: String,
    /// The `User-Agent`.
    pub useragent: String,
}

/// Who made the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Actor {
    /// The authenticated user; absent for anonymous requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The registry instance that saw the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Source {
    /// `hostname:port` of the listener.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// A random id of this process.
    #[serde(rename = "instanceID", skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
}

/// What a handler knows about one event; the notifier adds the id, the time and the
/// source.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// What happened.
    pub action: Action,
    /// To what.
    pub target: Target,
}

/// One event as sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    /// A random UUID.
    pub id: &'a str,
    /// RFC 3339 with nanoseconds, UTC.
    pub timestamp: &'a str,
    /// What happened.
    pub action: Action,
    /// To what.
    pub target: &'a Target,
    /// Because of which request.
    pub request: &'a RequestRecord,
    /// By whom.
    pub actor: &'a Actor,
    /// Seen by which registry.
    pub source: &'a Source,
}

/// A random version-4 UUID, hyphenated.
pub fn new_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    text
}

/// Now, as distribution writes event timestamps (RFC 3339, nanoseconds, UTC).
pub fn now_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_delete_names_only_repository_and_tag() {
        let target = Target {
            repository: "team/app".into(),
            tag: "v1".into(),
            ..Default::default()
        };
        let request = RequestRecord {
            id: "r".into(),
            method: "DELETE".into(),
            ..Default::default()
        };
        let e = Event {
            id: "i",
            timestamp: "t",
            action: Action::Delete,
            target: &target,
            request: &request,
            actor: &Actor::default(),
            source: &Source::default(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"id":"i","timestamp":"t","action":"delete","target":{"repository":"team/app","tag":"v1"},"request":{"id":"r","method":"DELETE","useragent":""},"actor":{},"source":{}}"#
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = now_timestamp();
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
    }
}

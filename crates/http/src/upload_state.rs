//! The `_state` token that upload URLs carry, in distribution's format, so that berth and
//! distribution nodes behind one load balancer continue each other's uploads. A token is
//! the JSON record `{"Name","UUID","Offset","StartedAt"}` of a session (the time as Go
//! writes it: RFC 3339 with the fraction's trailing zeros dropped), preceded by its
//! HMAC-SHA256 under `http.secret`, the whole in URL-safe base64 with padding.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use berth_core::{RepositoryName, UploadId};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the signature in front of the record.
const MAC_LEN: usize = 32;

/// URL-safe base64 that writes padding, as distribution does, and reads a token whether
/// or not something on the way dropped it (the signature still covers every byte).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key upload-state tokens are signed with: `http.secret`, or a random key for this
/// process alone when none is configured (as distribution does).
#[derive(Clone)]
pub struct UploadSecret {
    key: Arc<[u8]>,
    configured: bool,
}

impl UploadSecret {
    /// The configured `http.secret` (its UTF-8 bytes are the key, as in distribution).
    pub fn configured(secret: &str) -> Self {
        UploadSecret {
            key: secret.as_bytes().into(),
            configured: true,
        }
    }

    /// A random key known to this process only: tokens it signs are verified by no other
    /// node, and by this one only until it restarts.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        UploadSecret {
            key: key.as_slice().into(),
            configured: false,
        }
    }

    /// Whether the key is the configured `http.secret` (shared by a fleet) rather than
    /// this process's own random one.
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length, so this never fails; the fallback keeps the
        // function total without a panic path.
        HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()))
    }
}

impl Default for UploadSecret {
    fn default() -> Self {
        UploadSecret::random()
    }
}

impl fmt::Debug for UploadSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadSecret")
            .field("configured", &self.configured)
            .finish_non_exhaustive()
    }
}

/// Why a `_state` token was refused (distribution answers each with
/// `BLOB_UPLOAD_INVALID`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not URL-safe base64.
    #[error("the upload's _state is not URL-safe base64")]
    Encoding,
    /// The signature does not match this node's secret.
    #[error(
        "the upload's _state was signed with another secret (every node sharing this \
         storage needs the same http.secret)"
    )]
    Signature,
    /// Signed, but not a session record.
    #[error("the upload's _state is not a session record: {0}")]
    Record(String),
    /// The record names another repository than the URL's path.
    #[error("the upload's _state names repository {token:?}, not {path:?}")]
    Repository {
        /// What the token says.
        token: String,
        /// What the path says.
        path: String,
    },
    /// The record names another session than the URL's path.
    #[error("the upload's _state names session {token:?}, not {path:?}")]
    Session {
        /// What the token says.
        token: String,
        /// What the path says.
        path: String,
    },
}

/// What a token says about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadToken {
    /// The repository the session belongs to.
    pub name: String,
    /// The session id.
    pub uuid: String,
    /// Bytes the session held when the token was issued.
    pub offset: u64,
    /// When the session started (Go's zero time when the signer did not know).
    pub started_at: OffsetDateTime,
}

/// The record as distribution's JSON names its fields, in its order.
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "UUID")]
    uuid: String,
    #[serde(rename = "Offset")]
    offset: i64,
    #[serde(rename = "StartedAt")]
    started_at: String,
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), what Go writes for a time never set.
fn go_zero_time() -> OffsetDateTime {
    time::Date::from_calendar_date(1, time::Month::January, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl UploadToken {
    /// A token for a session of `name` standing at `offset`.
    pub(crate) fn new(
        name: &RepositoryName,
        id: &UploadId,
        offset: u64,
        started_at: Option<OffsetDateTime>,
    ) -> Self {
        UploadToken {
            name: name.to_string(),
            uuid: id.to_string(),
            offset,
            started_at: started_at.unwrap_or_else(go_zero_time),
        }
    }

    /// Signs and encodes the token (the value of `_state`, before URL escaping).
    pub(crate) fn pack(&self, secret: &UploadSecret) -> String {
        let record = Record {
            name: self.name.clone(),
            uuid: self.uuid.clone(),
            offset: i64::try_from(self.offset).unwrap_or(i64::MAX),
            started_at: self
                .started_at
                .to_offset(time::UtcOffset::UTC)
                .format(&Rfc3339)
                .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_owned()),
        };
        // A struct of strings and an integer always serialises.
        let json = serde_json::to_vec(&record).unwrap_or_default();
        let mut mac = secret.mac();
        mac.update(&json);
        let mut bytes = mac.finalize().into_bytes().to_vec();
        bytes.extend_from_slice(&json);
        BASE64.encode(bytes)
    }

    /// Decodes a `_state` value and checks its signature.
    pub(crate) fn unpack(secret: &UploadSecret, token: &str) -> Result<Self, StateError> {
        let bytes = BASE64.decode(token).map_err(|_| StateError::Encoding)?;
        if bytes.len() < MAC_LEN {
            return Err(StateError::Signature);
        }
        let (signature, json) = bytes.split_at(MAC_LEN);
        let mut mac = secret.mac();
        mac.update(json);
        mac.verify_slice(signature)
            .map_err(|_| StateError::Signature)?;
        let record: Record =
            serde_json::from_slice(json).map_err(|e| StateError::Record(e.to_string()))?;
        let offset = u64::try_from(record.offset)
            .map_err(|_| StateError::Record(format!("negative offset {}", record.offset)))?;
        let started_at = OffsetDateTime::parse(&record.started_at, &Rfc3339)
            .map_err(|e| StateError::Record(format!("StartedAt: {e}")))?;
        Ok(UploadToken {
            name: record.name,
            uuid: record.uuid,
            offset,
            started_at,
        })
    }

    /// Refuses a token issued for another repository or session than the URL names.
    pub(crate) fn check(&self, name: &RepositoryName, id: &UploadId) -> Result<(), StateError> {
        if self.name != name.as_str() {
            return Err(StateError::Repository {
                token: self.name.clone(),
                path: name.to_string(),
            });
        }
        if self.uuid != id.as_str() {
            return Err(StateError::Session {
                token: self.uuid.clone(),
                path: id.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    fn id() -> UploadId {
        UploadId::parse("d87c2b3e-8137-4dd0-85b2-9d9949d1703e").unwrap()
    }

    /// A token distribution 2.8.2 issued (POST on `t/a`, `http.secret: s3cret`).
    const FROM_DISTRIBUTION: &str = "JZsKlqrryak9hPtV-qos-3CH7ElnBeitBA587dju33B7Ik5hbWUiOiJ0L2EiLCJVVUlEIjoiZDg3YzJiM2UtODEzNy00ZGQwLTg1YjItOWQ5OTQ5ZDE3MDNlIiwiT2Zmc2V0IjowLCJTdGFydGVkQXQiOiIyMDI2LTExLTI5VDA3OjE2OjM4LjA4NzQ2MzA3OVoifQ==";

    #[test]
    fn reads_distributions_token_and_signs_it_identically() {
        let secret = UploadSecret::configured("s3cret");
        let t = UploadToken::unpack(&secret, FROM_DISTRIBUTION).unwrap();
        assert_eq!(t.name, "t/a");
        assert_eq!(t.uuid, id().as_str());
        assert_eq!(t.offset, 0);
        assert_eq!(t.started_at.nanosecond(), 87_463_079);
        t.check(&name("t/a"), &id()).unwrap();
        assert_eq!(
            t.pack(&secret),
            FROM_DISTRIBUTION,
            "berth signs the same record to the same bytes"
        );
    }

    #[test]
    fn round_trip() {
        let secret = UploadSecret::configured("fleet");
        let started = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_500_000_000).unwrap();
        let t = UploadToken::new(&name("team/app"), &id(), 12345, Some(started));
        let packed = t.pack(&secret);
        assert!(packed.ends_with('='), "padded like distribution: {packed}");
        let back = UploadToken::unpack(&secret, &packed).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.started_at, started);
        let json = BASE64.decode(&packed).unwrap()[MAC_LEN..].to_vec();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!(
                r#"{{"Name":"team/app","UUID":"{}","Offset":12345,"StartedAt":"2023-11-14T22:13:20.5Z"}}"#,
                id()
            )
        );
        // Padding dropped on the way still reads.
        assert_eq!(
            UploadToken::unpack(&secret, packed.trim_end_matches('=')).unwrap(),
            t
        );
    }

    #[test]
    fn unknown_start_is_gos_zero_time() {
        let secret = UploadSecret::configured("fleet");
        let t = UploadToken::new(&name("a"), &id(), 0, None);
        let json = BASE64.decode(t.pack(&secret)).unwrap()[MAC_LEN..].to_vec();
        assert!(
            String::from_utf8(json)
                .unwrap()
                .ends_with(r#""StartedAt":"0001-01-01T00:00:00Z"}"#)
        );
    }

    #[test]
    fn another_secret_is_refused() {
        let t = UploadToken::new(&name("a"), &id(), 7, None);
        let packed = t.pack(&UploadSecret::configured("one"));
        assert_eq!(
            UploadToken::unpack(&UploadSecret::configured("two"), &packed),
            Err(StateError::Signature)
        );
        assert_eq!(
            UploadToken::unpack(&UploadSecret::random(), &packed),
            Err(StateError::Signature)
        );
        assert_eq!(
            UploadToken::unpack(&UploadSecret::configured("one"), "not base64!"),
            Err(StateError::Encoding)
        );
        assert_eq!(
            UploadToken::unpack(&UploadSecret::configured("one"), ""),
            Err(StateError::Signature)
        );
    }

    #[test]
    fn tampered_record_is_refused() {
        let secret = UploadSecret::configured("one");
        let packed = UploadToken::new(&name("a"), &id(), 7, None).pack(&secret);
        let mut bytes = BASE64.decode(&packed).unwrap();
        let at = bytes.len() - 5;
        bytes[at] ^= 1;
        assert_eq!(
            UploadToken::unpack(&secret, &BASE64.encode(bytes)),
            Err(StateError::Signature)
        );
    }

    #[test]
    fn another_repository_or_session_is_refused() {
        let secret = UploadSecret::configured("one");
        let packed = UploadToken::new(&name("team/app"), &id(), 0, None).pack(&secret);
        let t = UploadToken::unpack(&secret, &packed).unwrap();
        assert!(matches!(
            t.check(&name("team/other"), &id()),
            Err(StateError::Repository { .. })
        ));
        let other = UploadId::parse("00000000-0000-4000-8000-000000000000").unwrap();
        assert!(matches!(
            t.check(&name("team/app"), &other),
            Err(StateError::Session { .. })
        ));
    }
}

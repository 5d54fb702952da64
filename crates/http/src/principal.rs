//! Who a request acts for, once authentication knows: the meeting point of the access
//! check (which inserts a [`Principal`] into the request's extensions) and what keys
//! limits by user (`ratelimit`). Nothing in this crate creates one yet.

/// The authenticated user of a request, as a request extension. Authentication inserts
/// it before the rate limiter runs, so the per-user bucket applies; anonymous requests
/// carry none and are limited only by client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(pub String);

impl Principal {
    /// The user name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

//! berth-auth: access control. Scopes and actions (`access`), Basic credentials and
//! htpasswd users (`basic`, `htpasswd`), bearer tokens verified as distribution does
//! (`token`), berth's per-repository policy (`policy`) and token issuer (`issuer`), and
//! the controller that turns a request's credentials and needs into a [`Principal`] or
//! a [`Refusal`] (`controller`). Nothing here knows HTTP beyond header values.

pub mod access;
pub mod basic;
pub mod controller;
pub mod htpasswd;
pub mod issuer;
pub mod policy;
pub mod principal;
pub mod token;

pub use access::{Action, Resource, Scope};
pub use controller::{AccessController, Needs, Refusal, RefusalKind, RequestInfo, Scheme};
pub use principal::Principal;

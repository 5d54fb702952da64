//! Who a request comes from and what they may do: every right (no access control, or a
//! Basic user without a policy), the rights a token lists, or what the policy gives the
//! user.

use std::sync::Arc;

use crate::access::{ANY_ACTION, AccessSet, Action, Resource, Scope};
use crate::policy::Policy;

#[derive(Debug, Clone)]
enum Rights {
    Everything,
    Token(Arc<AccessSet>),
    Policy(Arc<Policy>),
}

/// The caller of a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    user: Option<String>,
    rights: Rights,
    /// The policy, when one is configured: it also filters the catalog of callers whose
    /// rights come from a token without the catalog scope.
    policy: Option<Arc<Policy>>,
}

impl Principal {
    /// The caller when access control is off: may do everything.
    pub fn unrestricted() -> Principal {
        Principal {
            user: None,
            rights: Rights::Everything,
            policy: None,
        }
    }

    /// An authenticated Basic user without a policy: may do everything.
    pub(crate) fn trusted_user(user: String) -> Principal {
        Principal {
            user: Some(user),
            rights: Rights::Everything,
            policy: None,
        }
    }

    /// A caller whose rights come from the policy (`user` `None`: anonymous).
    pub(crate) fn by_policy(user: Option<String>, policy: Arc<Policy>) -> Principal {
        Principal {
            user,
            rights: Rights::Policy(policy.clone()),
            policy: Some(policy),
        }
    }

    /// An anonymous caller with no rights at all.
    pub(crate) fn nobody() -> Principal {
        Principal {
            user: None,
            rights: Rights::Token(Arc::default()),
            policy: None,
        }
    }

    /// A caller holding a verified token.
    pub(crate) fn by_token(
        user: Option<String>,
        access: Arc<AccessSet>,
        policy: Option<Arc<Policy>>,
    ) -> Principal {
        Principal {
            user,
            rights: Rights::Token(access),
            policy,
        }
    }

    /// Whether the caller may do everything (no access control, or a Basic user
    /// without a policy).
    pub fn is_unrestricted(&self) -> bool {
        matches!(self.rights, Rights::Everything)
    }

    /// The authenticated user name, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the caller may do `action` on `resource`.
    pub fn may(&self, resource: &Resource, action: &str) -> bool {
        match &self.rights {
            Rights::Everything => true,
            Rights::Token(set) => set.allows(resource, action),
            Rights::Policy(p) => p.allows(self.user(), resource, action),
        }
    }

    /// Whether the caller may pull repository `name`.
    pub fn may_pull(&self, name: &str) -> bool {
        self.may(&Resource::repository(name), Action::Pull.as_str())
    }

    /// Whether the caller may list every repository.
    pub fn lists_whole_catalog(&self) -> bool {
        self.may(&Resource::catalog(), ANY_ACTION)
    }

    /// Whether the caller may list the catalog at all: whole, or (with a policy) the
    /// repositories it may pull.
    pub fn may_list_catalog(&self) -> bool {
        self.lists_whole_catalog()
            || self
                .policy
                .as_ref()
                .is_some_and(|p| p.grants_anything(self.user()))
    }

    /// Whether the caller may list repository `name` in a filtered catalog.
    pub fn lists(&self, name: &str) -> bool {
        match (&self.rights, &self.policy) {
            (Rights::Token(_), Some(p)) => p.actions(self.user(), name).contains(Action::Pull),
            _ => self.may_pull(name),
        }
    }

    /// Whether every scope is granted in full. The catalog scope also counts as granted
    /// when a policy can give the caller a filtered catalog.
    pub fn satisfies(&self, scopes: &[Scope]) -> bool {
        scopes.iter().all(|s| {
            if s.resource.is_catalog() {
                return self.may_list_catalog();
            }
            s.actions.iter().all(|a| self.may(&s.resource, a))
        })
    }
}

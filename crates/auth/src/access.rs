//! The vocabulary of access control: actions, the resources they apply to, scopes as the
//! token protocol writes them (`repository:team/app:pull,push`), and the set of rights a
//! token's `access` claim grants.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The resource type of repositories.
pub const REPOSITORY: &str = "repository";
/// The resource type of registry-wide resources (`registry:catalog:*`).
pub const REGISTRY: &str = "registry";
/// The action that stands for every action.
pub const ANY_ACTION: &str = "*";

/// One thing a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Upload blobs, push manifests and tags.
    Push,
    /// Delete manifests and blobs.
    Delete,
}

impl Action {
    /// Every action, in the order scopes list them.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The name a scope uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// The action a scope names, if berth knows it.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What a scope is about: a type and a name (`repository` + `team/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    /// `repository` or `registry`.
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
}

impl Resource {
    /// A repository.
    pub fn repository(name: &str) -> Resource {
        Resource {
            kind: REPOSITORY.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The registry catalog (`registry:catalog`).
    pub fn catalog() -> Resource {
        Resource {
            kind: REGISTRY.to_owned(),
            name: "catalog".to_owned(),
        }
    }

    /// Whether this is the catalog.
    pub fn is_catalog(&self) -> bool {
        self.kind == REGISTRY && self.name == "catalog"
    }
}

/// A scope that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: expected TYPE:NAME:ACTIONS")]
pub struct ScopeError(pub String);

/// A resource and the actions asked for (or granted) on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The resource.
    pub resource: Resource,
    /// Action names, in the order given; may include `*`.
    pub actions: Vec<String>,
}

impl Scope {
    /// A repository scope.
    pub fn repository(name: &str, actions: &[Action]) -> Scope {
        Scope {
            resource: Resource::repository(name),
            actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Scope {
        Scope {
            resource: Resource::catalog(),
            actions: vec![ANY_ACTION.to_owned()],
        }
    }

    /// Parses `TYPE[(CLASS)]:NAME:ACTION[,ACTION...]`. The name may itself contain
    /// colons (a registry host with a port), so the type is cut at the first colon and
    /// the actions at the last; the class is accepted and dropped, as distribution does.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        let bad = || ScopeError(s.to_owned());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        let kind = match kind.split_once('(') {
            Some((k, class)) if class.ends_with(')') => k,
            Some(_) => return Err(bad()),
            None => kind,
        };
        let valid_kind = !kind.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid_kind || name.is_empty() || actions.is_empty() {
            return Err(bad());
        }
        let actions: Vec<String> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if actions.is_empty() {
            return Err(bad());
        }
        Ok(Scope {
            resource: Resource {
                kind: kind.to_owned(),
                name: name.to_owned(),
            },
            actions,
        })
    }

    /// Parses a space-separated list of scopes, as the OAuth2 form and challenges write
    /// them.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, ScopeError> {
        s.split(' ')
            .filter(|p| !p.is_empty())
            .map(Scope::parse)
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource.kind,
            self.resource.name,
            self.actions.join(",")
        )
    }
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    /// Resource type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// Granted actions.
    #[serde(default)]
    pub actions: Vec<String>,
}

impl From<&Scope> for ResourceActions {
    fn from(s: &Scope) -> Self {
        ResourceActions {
            kind: s.resource.kind.clone(),
            name: s.resource.name.clone(),
            actions: s.actions.clone(),
        }
    }
}

/// The rights a token grants: for each resource, a set of actions (`*` grants all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSet(HashMap<Resource, HashSet<String>>);

impl AccessSet {
    /// The union of a token's `access` entries.
    pub fn from_claims(entries: &[ResourceActions]) -> AccessSet {
        let mut map: HashMap<Resource, HashSet<String>> = HashMap::new();
        for e in entries {
            let set = map
                .entry(Resource {
                    kind: e.kind.clone(),
                    name: e.name.clone(),
                })
                .or_default();
            set.extend(e.actions.iter().cloned());
        }
        AccessSet(map)
    }

    /// Whether `action` on `resource` is granted.
    pub fn allows(&self, resource: &Resource, action: &str) -> bool {
        self.0
            .get(resource)
            .is_some_and(|set| set.contains(ANY_ACTION) || set.contains(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        let s = Scope::parse("repository:team/app:pull,push").unwrap();
        assert_eq!(s.resource, Resource::repository("team/app"));
        assert_eq!(s.actions, ["pull", "push"]);
        assert_eq!(s.to_string(), "repository:team/app:pull,push");
        let s = Scope::parse("repository:localhost:5000/app:pull").unwrap();
        assert_eq!(s.resource.name, "localhost:5000/app");
        let s = Scope::parse("repository(plugin):app:pull").unwrap();
        assert_eq!(s.resource.kind, "repository");
        assert_eq!(Scope::catalog().to_string(), "registry:catalog:*");
        for bad in [
            "",
            "repository",
            "repository:app",
            ":app:pull",
            "repository::pull",
            "repository:app:",
            "repository:app:,",
            "Repo:app:pull",
            "repository(x:app:pull",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
        let list = Scope::parse_list("repository:a:pull  registry:catalog:*").unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn access_sets_grant_listed_actions_and_wildcards() {
        let set = AccessSet::from_claims(&[
            ResourceActions {
                kind: "repository".into(),
                name: "a".into(),
                actions: vec!["pull".into()],
            },
            ResourceActions {
                kind: "repository".into(),
                name: "a".into(),
                actions: vec!["push".into()],
            },
            ResourceActions {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            },
        ]);
        let a = Resource::repository("a");
        assert!(set.allows(&a, "pull") && set.allows(&a, "push"));
        assert!(!set.allows(&a, "delete"));
        assert!(!set.allows(&Resource::repository("b"), "pull"));
        assert!(set.allows(&Resource::catalog(), "*"));
    }
}

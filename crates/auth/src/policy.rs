//! berth's per-repository policy: rules that give users, groups or anonymous callers
//! actions on repositories whose names match patterns. Rights are the union of every
//! matching rule; nothing is granted that no rule grants.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::access::{ANY_ACTION, Action, Resource, Scope};

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A repository pattern is malformed.
    #[error("rule {rule}: invalid repository pattern {pattern:?}: {why}")]
    Pattern {
        /// Rule index (from 0).
        rule: usize,
        /// The pattern.
        pattern: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An action name is unknown.
    #[error("rule {rule}: unknown action {action:?} (pull, push, delete or *)")]
    Action {
        /// Rule index (from 0).
        rule: usize,
        /// The action.
        action: String,
    },
    /// A rule names nobody.
    #[error("rule {0}: names no users, groups or anonymous: it would grant nothing")]
    NoSubject(usize),
    /// A rule names no repositories and no catalog.
    #[error("rule {0}: names no repositories")]
    NoRepositories(usize),
    /// A rule names a group that is not defined.
    #[error("rule {rule}: unknown group {group:?}")]
    UnknownGroup {
        /// Rule index (from 0).
        rule: usize,
        /// The group.
        group: String,
    },
}

/// One rule as written in the configuration (`berth.auth.policy[]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSpec {
    /// Repository name patterns: exact names, `*` within one path segment, `**` for any
    /// number of segments (`team/*`, `team/**`, `**`).
    pub repositories: Vec<String>,
    /// User names; `*` is any authenticated user.
    pub users: Vec<String>,
    /// Group names (from `berth.auth.groups`).
    pub groups: Vec<String>,
    /// Whether callers without credentials get these rights (and so everyone does).
    pub anonymous: bool,
    /// `pull`, `push`, `delete`, or `*` for all three.
    pub actions: Vec<String>,
    /// Whether the subjects may list the whole catalog (`registry:catalog:*`).
    pub catalog: bool,
}

/// A set of actions as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// Every action.
    pub const ALL: Actions = Actions(0b111);

    fn bit(a: Action) -> u8 {
        match a {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & Actions::bit(a) != 0
    }

    fn with(self, a: Action) -> Actions {
        Actions(self.0 | Actions::bit(a))
    }

    fn union(self, o: Actions) -> Actions {
        Actions(self.0 | o.0)
    }
}

/// A repository-name pattern, split into path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(Vec<String>);

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, &'static str> {
        if s.is_empty() {
            return Err("empty");
        }
        let segs: Vec<String> = s.split('/').map(str::to_owned).collect();
        if segs.iter().any(String::is_empty) {
            return Err("empty path segment");
        }
        if segs.iter().any(|g| g.contains("**") && g != "**") {
            return Err("** must be a whole path segment");
        }
        Ok(Pattern(segs))
    }

    fn matches(&self, name: &str) -> bool {
        let segs: Vec<&str> = name.split('/').collect();
        match_segments(&self.0, &segs)
    }
}

fn match_segments(pattern: &[String], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((p, rest)) if p == "**" => (0..=name.len()).any(|k| match_segments(rest, &name[k..])),
        Some((p, rest)) => match name.split_first() {
            Some((n, name_rest)) => {
                glob(p.as_bytes(), n.as_bytes()) && match_segments(rest, name_rest)
            }
            None => false,
        },
    }
}

/// `*` matches any run of characters within one segment; everything else is literal.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[derive(Debug, Clone)]
struct Rule {
    patterns: Vec<Pattern>,
    users: HashSet<String>,
    any_user: bool,
    groups: HashSet<String>,
    anonymous: bool,
    actions: Actions,
    catalog: bool,
}

impl Rule {
    fn applies_to(&self, user: Option<&str>, member_of: &HashMap<String, HashSet<String>>) -> bool {
        if self.anonymous {
            return true;
        }
        let Some(user) = user else {
            return false;
        };
        self.any_user
            || self.users.contains(user)
            || member_of
                .get(user)
                .is_some_and(|gs| gs.iter().any(|g| self.groups.contains(g)))
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// user -> groups the user belongs to.
    member_of: HashMap<String, HashSet<String>>,
}

impl Policy {
    /// Compiles rules and groups (group name -> member user names).
    pub fn new(
        specs: &[RuleSpec],
        groups: &HashMap<String, Vec<String>>,
    ) -> Result<Policy, PolicyError> {
        let mut member_of: HashMap<String, HashSet<String>> = HashMap::new();
        for (group, members) in groups {
            for m in members {
                member_of
                    .entry(m.clone())
                    .or_default()
                    .insert(group.clone());
            }
        }
        let mut rules = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let patterns = spec
                .repositories
                .iter()
                .map(|p| {
                    Pattern::parse(p).map_err(|why| PolicyError::Pattern {
                        rule: i,
                        pattern: p.clone(),
                        why,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if patterns.is_empty() && !spec.catalog {
                return Err(PolicyError::NoRepositories(i));
            }
            let mut actions = Actions::NONE;
            for a in &spec.actions {
                actions = if a == ANY_ACTION {
                    Actions::ALL
                } else {
                    let action = Action::parse(a).ok_or_else(|| PolicyError::Action {
                        rule: i,
                        action: a.clone(),
                    })?;
                    actions.with(action)
                };
            }
            if spec.users.is_empty() && spec.groups.is_empty() && !spec.anonymous {
                return Err(PolicyError::NoSubject(i));
            }
            if let Some(g) = spec.groups.iter().find(|g| !groups.contains_key(*g)) {
                return Err(PolicyError::UnknownGroup {
                    rule: i,
                    group: g.clone(),
                });
            }
            rules.push(Rule {
                patterns,
                any_user: spec.users.iter().any(|u| u == "*"),
                users: spec.users.iter().filter(|u| *u != "*").cloned().collect(),
                groups: spec.groups.iter().cloned().collect(),
                anonymous: spec.anonymous,
                actions,
                catalog: spec.catalog,
            });
        }
        Ok(Policy { rules, member_of })
    }

    fn applicable<'a>(&'a self, user: Option<&'a str>) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.applies_to(user, &self.member_of))
    }

    /// What `user` (`None`: anonymous) may do to repository `name`.
    pub fn actions(&self, user: Option<&str>, name: &str) -> Actions {
        self.applicable(user)
            .filter(|r| r.patterns.iter().any(|p| p.matches(name)))
            .fold(Actions::NONE, |acc, r| acc.union(r.actions))
    }

    /// Whether `user` may list the whole catalog.
    pub fn catalog(&self, user: Option<&str>) -> bool {
        self.applicable(user).any(|r| r.catalog)
    }

    /// Whether any rule applies to `user` at all (so a filtered catalog is worth listing).
    pub fn grants_anything(&self, user: Option<&str>) -> bool {
        self.applicable(user).next().is_some()
    }

    /// Whether `user` may do `action` on `resource`.
    pub fn allows(&self, user: Option<&str>, resource: &Resource, action: &str) -> bool {
        if resource.is_catalog() {
            return self.catalog(user);
        }
        if resource.kind != crate::access::REPOSITORY {
            return false;
        }
        let granted = self.actions(user, &resource.name);
        if action == ANY_ACTION {
            return granted == Actions::ALL;
        }
        Action::parse(action).is_some_and(|a| granted.contains(a))
    }

    /// The part of `requested` that the policy grants `user`: each scope keeps only its
    /// granted actions, and scopes left with none are dropped.
    pub fn grant(&self, user: Option<&str>, requested: &[Scope]) -> Vec<Scope> {
        requested
            .iter()
            .filter_map(|s| {
                let actions: Vec<String> = if s.resource.is_catalog() {
                    if self.catalog(user) {
                        s.actions.clone()
                    } else {
                        Vec::new()
                    }
                } else if s.resource.kind == crate::access::REPOSITORY {
                    let granted = self.actions(user, &s.resource.name);
                    let mut out = Vec::new();
                    for a in &s.actions {
                        if a == ANY_ACTION {
                            out.extend(
                                Action::ALL
                                    .into_iter()
                                    .filter(|x| granted.contains(*x))
                                    .map(|x| x.as_str().to_owned()),
                            );
                        } else if Action::parse(a).is_some_and(|x| granted.contains(x)) {
                            out.push(a.clone());
                        }
                    }
                    out.dedup();
                    out
                } else {
                    Vec::new()
                };
                (!actions.is_empty()).then(|| Scope {
                    resource: s.resource.clone(),
                    actions,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(repos: &[&str], users: &[&str], groups: &[&str], actions: &[&str]) -> RuleSpec {
        RuleSpec {
            repositories: repos.iter().map(|s| s.to_string()).collect(),
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            ..RuleSpec::default()
        }
    }

    #[test]
    fn patterns() {
        let m = |p: &str, n: &str| Pattern::parse(p).unwrap().matches(n);
        assert!(m("team/*", "team/app"));
        assert!(!m("team/*", "team/app/sub"));
        assert!(!m("team/*", "team"));
        assert!(m("team/**", "team/app/sub"));
        assert!(m("team/**", "team"));
        assert!(m("**", "anything/at/all"));
        assert!(m("app", "app"));
        assert!(!m("app", "app2"));
        assert!(m("app-*", "app-web"));
        assert!(m("*/base", "lib/base"));
        assert!(m("**/base", "a/b/base"));
        assert!(!m("**/base", "a/b/basement"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
        for bad in ["", "a//b", "a/**b", "/a"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rights_are_the_union_of_matching_rules() {
        let groups = HashMap::from([("dev".to_owned(), vec!["bob".to_owned()])]);
        let mut public = rule(&["public/**"], &[], &[], &["pull"]);
        public.anonymous = true;
        let mut admin = rule(&["**"], &["root"], &[], &["*"]);
        admin.catalog = true;
        let p = Policy::new(
            &[
                rule(&["team/*"], &["alice"], &["dev"], &["pull", "push"]),
                public,
                admin,
                rule(&["team/app"], &["*"], &[], &["pull"]),
            ],
            &groups,
        )
        .unwrap();
        assert_eq!(
            p.actions(Some("alice"), "team/app"),
            Actions::NONE.with(Action::Pull).with(Action::Push)
        );
        assert!(p.actions(Some("bob"), "team/x").contains(Action::Push));
        assert!(!p.actions(Some("bob"), "team/x").contains(Action::Delete));
        assert_eq!(p.actions(Some("carol"), "team/x"), Actions::NONE);
        assert!(p.actions(Some("carol"), "team/app").contains(Action::Pull));
        assert!(p.actions(None, "public/a/b").contains(Action::Pull));
        assert!(!p.actions(None, "team/app").contains(Action::Pull));
        assert!(p.actions(Some("alice"), "public/x").contains(Action::Pull));
        assert_eq!(p.actions(Some("root"), "x"), Actions::ALL);
        assert!(p.catalog(Some("root")) && !p.catalog(Some("alice")));
        assert!(p.allows(Some("root"), &Resource::catalog(), "*"));
        assert!(!p.allows(Some("alice"), &Resource::catalog(), "*"));

        let asked = Scope::parse_list(
            "repository:team/app:pull,push,delete repository:other:pull registry:catalog:*",
        )
        .unwrap();
        let granted = p.grant(Some("alice"), &asked);
        assert_eq!(granted.len(), 1);
        assert_eq!(granted[0].to_string(), "repository:team/app:pull,push");
        let granted = p.grant(
            Some("root"),
            &Scope::parse_list("repository:x:* registry:catalog:*").unwrap(),
        );
        assert_eq!(granted[0].actions, ["pull", "push", "delete"]);
        assert!(granted[1].resource.is_catalog());
    }

    #[test]
    fn bad_rules_are_refused() {
        let none = HashMap::new();
        assert!(matches!(
            Policy::new(&[rule(&["a"], &["u"], &[], &["write"])], &none),
            Err(PolicyError::Action { .. })
        ));
        assert!(matches!(
            Policy::new(&[rule(&["a"], &[], &[], &["pull"])], &none),
            Err(PolicyError::NoSubject(0))
        ));
        assert!(matches!(
            Policy::new(&[rule(&["a"], &[], &["ops"], &["pull"])], &none),
            Err(PolicyError::UnknownGroup { .. })
        ));
        assert!(matches!(
            Policy::new(&[rule(&[], &["u"], &[], &["pull"])], &none),
            Err(PolicyError::NoRepositories(0))
        ));
        assert!(matches!(
            Policy::new(&[rule(&["a//b"], &["u"], &[], &["pull"])], &none),
            Err(PolicyError::Pattern { .. })
        ));
    }
}

//! The policy: rules mapping users, groups and anonymous callers to repository globs
//! and actions. A caller may do what any rule that applies to it grants (rules only
//! allow; nothing is denied explicitly).

use std::collections::{HashMap, HashSet};

use globset::GlobMatcher;

use super::actions::Actions;
use super::config::AuthConfig;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// No credentials.
    Anonymous,
    /// An authenticated user.
    User(&'a str),
}

pub use crate::oci::name::repository_glob as compile_glob;

#[derive(Debug)]
struct CompiledRule {
    users: HashSet<String>,
    any_user: bool,
    groups: Vec<String>,
    anonymous: bool,
    repositories: Vec<GlobMatcher>,
    actions: Actions,
}

/// The compiled rules and group memberships of an [`AuthConfig`]. Rules for
/// anonymous callers apply to authenticated users as well.
#[derive(Debug)]
pub struct Policy {
    members: HashMap<String, HashSet<String>>,
    rules: Vec<CompiledRule>,
}

impl Policy {
    /// Compiles the configuration's rules (call [`AuthConfig::validate`] first for
    /// friendlier messages; this fails on the same inputs).
    pub fn new(config: &AuthConfig) -> Result<Policy, String> {
        let members = config
            .groups
            .iter()
            .map(|(g, users)| (g.clone(), users.iter().cloned().collect()))
            .collect();
        let mut rules = Vec::new();
        for r in &config.rules {
            rules.push(CompiledRule {
                users: r.users.iter().filter(|u| *u != "*").cloned().collect(),
                any_user: r.users.iter().any(|u| u == "*"),
                groups: r.groups.clone(),
                anonymous: r.anonymous,
                repositories: r
                    .repositories
                    .iter()
                    .map(|p| compile_glob(p))
                    .collect::<Result<_, _>>()?,
                actions: r
                    .actions
                    .iter()
                    .fold(Actions::NONE, |a, w| a.union(Actions::parse_list(w))),
            });
        }
        Ok(Policy { members, rules })
    }

    fn applies(&self, rule: &CompiledRule, who: Subject<'_>) -> bool {
        match who {
            Subject::Anonymous => rule.anonymous,
            // What anonymous callers may do, authenticated users may do too.
            Subject::User(u) => {
                rule.anonymous
                    || rule.any_user
                    || rule.users.contains(u)
                    || rule
                        .groups
                        .iter()
                        .any(|g| self.members.get(g).is_some_and(|m| m.contains(u)))
            }
        }
    }

    /// What `who` may do on `repo`.
    pub fn grants(&self, who: Subject<'_>, repo: &str) -> Actions {
        self.rules
            .iter()
            .filter(|r| self.applies(r, who))
            .filter(|r| r.repositories.iter().any(|g| g.is_match(repo)))
            .fold(Actions::NONE, |a, r| a.union(r.actions))
    }

    /// Whether `who` may pull every repository (a rule with the pattern `**`).
    pub fn pulls_everything(&self, who: Subject<'_>) -> bool {
        self.rules.iter().any(|r| {
            self.applies(r, who)
                && r.actions.contains(super::actions::Action::Pull)
                && r.repositories.iter().any(|g| g.glob().glob() == "**")
        })
    }

    /// Whether any rule grants `who` anything at all.
    pub fn grants_anything(&self, who: Subject<'_>) -> bool {
        self.rules
            .iter()
            .any(|r| self.applies(r, who) && !r.actions.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::super::actions::Action::{self, *};
    use super::super::config::Rule;
    use super::*;
    use proptest::prelude::*;

    fn rule(
        users: &[&str],
        groups: &[&str],
        anonymous: bool,
        repos: &[&str],
        actions: &[&str],
    ) -> Rule {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Rule {
            users: s(users),
            groups: s(groups),
            anonymous,
            repositories: s(repos),
            actions: s(actions),
        }
    }

    fn example() -> Policy {
        let mut c = AuthConfig {
            rules: vec![
                rule(&[], &[], true, &["public/**"], &["pull"]),
                rule(
                    &["alice"],
                    &[],
                    false,
                    &["org2/team-a/*"],
                    &["pull", "push"],
                ),
                rule(&[], &["admins"], false, &["**"], &["*"]),
                rule(&["*"], &[], false, &["shared"], &["pull"]),
            ],
            ..AuthConfig::default()
        };
        c.groups.insert("admins".into(), vec!["root".into()]);
        c.validate().unwrap();
        Policy::new(&c).unwrap()
    }

    #[test]
    fn decision_table() {
        let p = example();
        let a = |v: &[Action]| Actions::of(v);
        let table: &[(Subject, &str, Actions)] = &[
            (Subject::Anonymous, "public/x", a(&[Pull])),
            (Subject::Anonymous, "public/x/y", a(&[Pull])),
            (Subject::Anonymous, "publicity", a(&[])),
            (Subject::Anonymous, "shared", a(&[])),
            (Subject::User("alice"), "org2/team-a/app", a(&[Pull, Push])),
            (Subject::User("alice"), "org2/team-a/app/deep", a(&[])),
            (Subject::User("alice"), "org2/team-b/app", a(&[])),
            (Subject::User("alice"), "public/x", a(&[Pull])),
            (Subject::User("alice"), "shared", a(&[Pull])),
            (
                Subject::User("root"),
                "anything/at/all",
                a(&[Pull, Push, Delete]),
            ),
            (Subject::User("bob"), "shared", a(&[Pull])),
            (Subject::User("bob"), "org2/team-a/app", a(&[])),
        ];
        for (who, repo, want) in table {
            assert_eq!(p.grants(*who, repo), *want, "{who:?} on {repo}");
        }
        assert!(p.grants_anything(Subject::Anonymous));
        assert!(p.grants_anything(Subject::User("nobody-in-particular")));
    }

    #[test]
    fn nobody_but_named_subjects_get_anything_without_catch_alls() {
        let c = AuthConfig {
            rules: vec![rule(&["alice"], &[], false, &["a"], &["pull"])],
            ..AuthConfig::default()
        };
        let p = Policy::new(&c).unwrap();
        assert!(!p.grants_anything(Subject::Anonymous));
        assert!(!p.grants_anything(Subject::User("bob")));
        assert!(p.grants_anything(Subject::User("alice")));
    }

    /// A model of a rule: explicit lists, segment-wise matching written out by hand.
    #[derive(Debug, Clone)]
    struct ModelRule {
        users: Vec<&'static str>,
        anonymous: bool,
        group: bool,
        pattern: Vec<&'static str>,
        actions: Vec<Action>,
    }

    /// `*` matches one whole segment here (the generator only produces whole-segment
    /// stars), `**` as the last segment matches one or more segments.
    fn model_match(pattern: &[&str], repo: &[&str]) -> bool {
        match (pattern.first(), repo.first()) {
            (None, None) => true,
            (Some(&"**"), Some(_)) if pattern.len() == 1 => true,
            (Some(p), Some(r)) => (*p == "*" || p == r) && model_match(&pattern[1..], &repo[1..]),
            _ => false,
        }
    }

    const USERS: [&str; 3] = ["alice", "bob", "carol"];
    const SEGMENTS: [&str; 3] = ["a", "b", "c"];

    fn arb_rule() -> impl Strategy<Value = ModelRule> {
        (
            proptest::sample::subsequence(USERS.to_vec(), 0..=2),
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*")], 0..=2),
            prop_oneof![Just(false), Just(true)],
            proptest::sample::subsequence(vec![Pull, Push, Delete], 1..=3),
        )
            .prop_map(|(users, anonymous, group, mut pattern, deep, actions)| {
                pattern.push(if deep { "**" } else { "c" });
                ModelRule {
                    users,
                    anonymous,
                    group,
                    pattern,
                    actions,
                }
            })
    }

    proptest! {
        /// For random rules and random (subject, repository) pairs, the compiled
        /// policy grants exactly the union of the actions of the rules that the model
        /// says apply and match. Group `g` always holds bob.
        #[test]
        fn policy_matches_the_model(
            rules in proptest::collection::vec(arb_rule(), 0..5),
            who in proptest::sample::select(vec![None, Some("alice"), Some("bob"), Some("carol"), Some("dave")]),
            repo in proptest::collection::vec(proptest::sample::select(SEGMENTS.to_vec()), 1..4),
        ) {
            let mut config = AuthConfig { rules: vec![], ..AuthConfig::default() };
            config.groups.insert("g".into(), vec!["bob".into()]);
            for r in &rules {
                let actions: Vec<&str> = r.actions.iter().map(|a| a.as_str()).collect();
                let groups: &[&str] = if r.group { &["g"] } else { &[] };
                let pattern = r.pattern.join("/");
                let anonymous = r.anonymous || (r.users.is_empty() && !r.group);
                config.rules.push(rule(&r.users, groups, anonymous, &[&pattern], &actions));
            }
            config.validate().unwrap();
            let policy = Policy::new(&config).unwrap();
            let subject = who.map_or(Subject::Anonymous, Subject::User);
            let expected = rules.iter().zip(&config.rules).filter(|(m, c)| {
                let applies = match who {
                    None => c.anonymous,
                    Some(u) => c.anonymous || m.users.contains(&u) || (m.group && u == "bob"),
                };
                applies && model_match(&m.pattern, &repo)
            }).fold(Actions::NONE, |a, (m, _)| a.union(Actions::of(&m.actions)));
            prop_assert_eq!(policy.grants(subject, &repo.join("/")), expected);
        }
    }
}

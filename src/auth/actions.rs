//! What a caller may do to a repository: `pull`, `push`, `delete`, as a small set.

use std::fmt;

/// One action of the registry token protocol on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs, mount them, push manifests and tags.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// Every action, in the order they are written in scopes.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// Parses `pull`, `push` or `delete`.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn bit(self) -> u8 {
        match self {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }
}

/// A set of [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// Pull, push and delete.
    pub const ALL: Actions = Actions(7);

    /// The set holding `actions`.
    pub fn of(actions: &[Action]) -> Actions {
        Actions(actions.iter().fold(0, |b, a| b | a.bit()))
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }

    /// Union.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Intersection.
    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions, in protocol order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// Parses a comma-separated list; `*` means every action. Unknown words are
    /// ignored, as the token protocol asks of servers.
    pub fn parse_list(s: &str) -> Actions {
        s.split(',').fold(Actions::NONE, |acc, w| match w.trim() {
            "*" => Actions::ALL,
            w => acc.union(Action::parse(w).map_or(Actions::NONE, |a| Actions::of(&[a]))),
        })
    }
}

impl fmt::Display for Actions {
    /// `pull,push`: the spelling of a scope's last part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = self.iter().map(Action::as_str).collect();
        f.write_str(&words.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_print_in_protocol_order() {
        assert_eq!(Actions::parse_list("push,pull").to_string(), "pull,push");
        assert_eq!(Actions::parse_list("*"), Actions::ALL);
        assert_eq!(
            Actions::parse_list("pull,bogus"),
            Actions::of(&[Action::Pull])
        );
        assert_eq!(Actions::parse_list(""), Actions::NONE);
    }
}

//! Who a request acts for: a subject, the tenant it is bound to, and its scopes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Scopes form a ladder: `admin` can do everything `write` can, which can do everything
/// `read` can.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated tenant name (see [`super::is_valid_name`]); deserialising one validates
/// it too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

string_newtype!(Tenant, named "tenant name");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The API key id, or `anonymous`.
    pub subject: String,
    pub tenant: Tenant,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// True when any granted scope is at least `needed` on the scope ladder.
    pub fn allows(&self, needed: Scope) -> bool {
        self.scopes.iter().any(|s| *s >= needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_form_a_ladder() {
        let p = Principal {
            subject: "k".into(),
            tenant: Tenant::parse("t").unwrap(),
            scopes: vec![Scope::Write],
        };
        assert!(p.allows(Scope::Read));
        assert!(p.allows(Scope::Write));
        assert!(!p.allows(Scope::Admin));
    }
}

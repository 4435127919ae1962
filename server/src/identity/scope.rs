//! The seven permission scopes of DESIGN §2, spelled exactly as users write them.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "mail:read")]
    MailRead,
    #[serde(rename = "mail:send")]
    MailSend,
    #[serde(rename = "mail:manage")]
    MailManage,
    #[serde(rename = "vault:read")]
    VaultRead,
    #[serde(rename = "vault:write")]
    VaultWrite,
    #[serde(rename = "identity:sign")]
    IdentitySign,
    #[serde(rename = "identity:verify")]
    IdentityVerify,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::MailRead,
        Scope::MailSend,
        Scope::MailManage,
        Scope::VaultRead,
        Scope::VaultWrite,
        Scope::IdentitySign,
        Scope::IdentityVerify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MailRead => "mail:read",
            Scope::MailSend => "mail:send",
            Scope::MailManage => "mail:manage",
            Scope::VaultRead => "vault:read",
            Scope::VaultWrite => "vault:write",
            Scope::IdentitySign => "identity:sign",
            Scope::IdentityVerify => "identity:verify",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes as a bitmask: cheap to copy into every [`super::Actor`] and to intersect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL)
    }
    pub fn contains(self, s: Scope) -> bool {
        self.0 & (1 << s as u8) != 0
    }
    pub fn insert(&mut self, s: Scope) {
        self.0 |= 1 << s as u8;
    }
    pub fn intersect(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }
    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
    /// Parses user input, naming the first unknown scope.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<ScopeSet, String> {
        let mut set = ScopeSet::default();
        for i in items {
            set.insert(Scope::parse(i.as_ref()).ok_or_else(|| {
                format!(
                    "unknown scope \"{}\" (known: {})",
                    i.as_ref(),
                    ScopeSet::all().names().join(", ")
                )
            })?);
        }
        Ok(set)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut s = ScopeSet::default();
        for x in iter {
            s.insert(x);
        }
        s
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let v: Vec<Scope> = Vec::deserialize(de)?;
        Ok(v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_designed_and_round_trip() {
        let names = ScopeSet::all().names();
        assert_eq!(
            names,
            vec![
                "mail:read",
                "mail:send",
                "mail:manage",
                "vault:read",
                "vault:write",
                "identity:sign",
                "identity:verify"
            ]
        );
        let s = ScopeSet::parse_list(&["vault:read", "mail:read"]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["mail:read","vault:read"]"#);
        assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), s);
        assert!(ScopeSet::parse_list(&["mail:write"])
            .unwrap_err()
            .contains("mail:write"));
    }

    #[test]
    fn subsets() {
        let a = ScopeSet::parse_list(&["mail:read"]).unwrap();
        let b = ScopeSet::parse_list(&["mail:read", "mail:send"]).unwrap();
        assert!(a.is_subset_of(b));
        assert!(!b.is_subset_of(a));
        assert_eq!(b.intersect(a), a);
    }
}

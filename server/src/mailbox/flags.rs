//! Flags (IMAP system flags and keywords) and labels: validation, normal form, and the
//! "replace the set" / "add and remove" edits that PATCH accepts.

use super::MailboxError;
use serde::Deserialize;

pub const SEEN: &str = "\\Seen";
pub const FLAGGED: &str = "\\Flagged";
pub const ANSWERED: &str = "\\Answered";
pub const DRAFT: &str = "\\Draft";
pub const DELETED: &str = "\\Deleted";

/// The settable system flags (RFC 3501 §2.3.2). `\Recent` is session state, never stored.
const SYSTEM: [&str; 5] = [SEEN, FLAGGED, ANSWERED, DRAFT, DELETED];

/// More than this many flags or labels on one message is a client bug, not a use.
const MAX_PER_MESSAGE: usize = 64;
const MAX_LEN: usize = 64;

/// A system flag in its canonical spelling, or a keyword made only of IMAP atom characters
/// (so the IMAP server can send it back without quoting).
pub fn normalize_flag(s: &str) -> Result<String, MailboxError> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('\\') {
        return SYSTEM
            .iter()
            .find(|f| f[1..].eq_ignore_ascii_case(rest))
            .map(|f| f.to_string())
            .ok_or_else(|| {
                MailboxError::Invalid(format!(
                    "unknown system flag {s:?} (settable: {})",
                    SYSTEM.join(", ")
                ))
            });
    }
    let atom = |c: char| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c);
    if s.is_empty() || s.len() > MAX_LEN || !s.chars().all(atom) {
        return Err(MailboxError::Invalid(format!(
            "invalid keyword {:?}: 1 to {MAX_LEN} printable ASCII characters without spaces or (){{%*\"\\]",
            s.chars().take(80).collect::<String>()
        )));
    }
    Ok(s.to_string())
}

/// Free text shown to people and agents; only control characters and length are refused.
pub fn normalize_label(s: &str) -> Result<String, MailboxError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_LEN || s.chars().any(char::is_control) {
        return Err(MailboxError::Invalid(format!(
            "invalid label {:?}: 1 to {MAX_LEN} characters, no control characters",
            s.chars().take(80).collect::<String>()
        )));
    }
    Ok(s.to_string())
}

/// Normalizes, sorts and de-duplicates a whole set.
pub fn normalize_set(
    items: &[String],
    norm: fn(&str) -> Result<String, MailboxError>,
    what: &str,
) -> Result<Vec<String>, MailboxError> {
    let mut out = items
        .iter()
        .map(|s| norm(s))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    if out.len() > MAX_PER_MESSAGE {
        return Err(MailboxError::Invalid(format!(
            "at most {MAX_PER_MESSAGE} {what} per message"
        )));
    }
    Ok(out)
}

/// A PATCH value for flags or labels: a list replaces the set; `{add, remove}` edits it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SetEdit {
    Replace(Vec<String>),
    Change(Delta),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

impl SetEdit {
    /// Validates every name first, so a bad request changes nothing.
    pub(super) fn prepare(
        &self,
        norm: fn(&str) -> Result<String, MailboxError>,
        what: &str,
    ) -> Result<PreparedEdit, MailboxError> {
        Ok(match self {
            SetEdit::Replace(v) => PreparedEdit::Replace(normalize_set(v, norm, what)?),
            SetEdit::Change(d) => PreparedEdit::Change {
                add: normalize_set(&d.add, norm, what)?,
                remove: normalize_set(&d.remove, norm, what)?,
            },
        })
    }
}

/// A validated edit, applied inside the transaction to whatever the current set is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PreparedEdit {
    Replace(Vec<String>),
    Change {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

impl PreparedEdit {
    pub(super) fn apply(
        &self,
        current: &[String],
        what: &str,
    ) -> Result<Vec<String>, MailboxError> {
        let mut out = match self {
            PreparedEdit::Replace(v) => v.clone(),
            PreparedEdit::Change { add, remove } => {
                let mut out: Vec<String> = current
                    .iter()
                    .filter(|c| !remove.contains(c))
                    .cloned()
                    .collect();
                out.extend(add.iter().cloned());
                out
            }
        };
        out.sort();
        out.dedup();
        if out.len() > MAX_PER_MESSAGE {
            return Err(MailboxError::Invalid(format!(
                "at most {MAX_PER_MESSAGE} {what} per message"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_flags_are_canonical_and_keywords_checked() {
        assert_eq!(normalize_flag("\\seen").unwrap(), SEEN);
        assert_eq!(normalize_flag(" \\FLAGGED ").unwrap(), FLAGGED);
        assert_eq!(normalize_flag("$Forwarded").unwrap(), "$Forwarded");
        assert!(normalize_flag("\\Recent").is_err());
        assert!(normalize_flag("two words").is_err());
        assert!(normalize_flag("a(b").is_err());
        assert!(normalize_flag("").is_err());
        assert!(normalize_flag(&"x".repeat(65)).is_err());
        assert_eq!(normalize_label(" Receipts ").unwrap(), "Receipts");
        assert_eq!(normalize_label("billing/2026 ✓").unwrap(), "billing/2026 ✓");
        assert!(normalize_label("a\nb").is_err());
    }

    #[test]
    fn edits_replace_or_change() {
        let body: SetEdit = serde_json::from_str(r#"{"add":["\\seen"],"remove":["x"]}"#).unwrap();
        let p = body.prepare(normalize_flag, "flags").unwrap();
        let cur = vec!["x".to_string(), "y".to_string()];
        assert_eq!(p.apply(&cur, "flags").unwrap(), vec![SEEN, "y"]);
        let body: SetEdit = serde_json::from_str(r#"["b","a","b"]"#).unwrap();
        let p = body.prepare(normalize_label, "labels").unwrap();
        assert_eq!(p.apply(&cur, "labels").unwrap(), vec!["a", "b"]);
        assert!(serde_json::from_str::<SetEdit>(r#"{"plus":["a"]}"#).is_err());
        let bad: SetEdit = serde_json::from_str(r#"{"add":["\\Bogus"]}"#).unwrap();
        assert!(bad.prepare(normalize_flag, "flags").is_err());
    }
}

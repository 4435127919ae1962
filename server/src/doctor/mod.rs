//! `legate doctor`: one pass over what makes a mail host work, each finding a line with
//! `ok`, `warn` or `fail` and, when not ok, the fix. Checks that need something the operator
//! has not configured are skipped and say which key turns them on.
//!
//! The checks that only read (certificate, disk, clock, reverse DNS, port 25) live in
//! [`probes`]; the CLI adds those that depend on whether a server runs (listeners, store,
//! DNS plan vs live), because only it knows which path (admin socket or store) it took.

pub mod probes;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn skip(name: &str, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Skip,
            ..Check::ok(name, detail)
        }
    }
    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Warn,
            fix: Some(fix.into()),
            ..Check::ok(name, detail)
        }
    }
    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Check::ok(name, detail)
        }
    }
}

/// Every finding, in the order checked.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// No check failed (warnings do not make the host unusable).
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"ok": self.ok(), "checks": self.checks})
    }

    /// `STATUS  name  detail`, and `      fix: …` under anything not ok.
    pub fn text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out += &format!("{:<4}  {:<width$}  {}\n", c.status.word(), c.name, c.detail);
            if let Some(f) = &c.fix {
                out += &format!("{:<4}  {:<width$}  fix: {f}\n", "", "");
            }
        }
        let fails = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warns = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        out += &format!("{fails} failed, {warns} warning(s)\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_fails_the_report_and_prints_its_fix() {
        let mut r = Report::default();
        r.push(Check::ok("config", "valid"));
        r.push(Check::warn("cert", "self-signed", "configure [acme]"));
        assert!(r.ok());
        r.push(Check::fail("port25", "blocked", "ask your provider"));
        assert!(!r.ok());
        let t = r.text();
        assert!(t.contains("fail  port25  blocked"), "{t}");
        assert!(t.contains("fix: ask your provider"), "{t}");
        assert!(t.ends_with("1 failed, 1 warning(s)\n"));
        assert_eq!(r.to_json()["checks"][2]["status"], "fail");
    }
}

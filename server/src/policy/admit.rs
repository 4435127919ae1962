//! The decision on one send, a pure function of the effective policy, the agent's counters,
//! its contacts and the time (injected, so window expiry is tested without waiting an hour).
//!
//! Caps count in fixed windows: the clock hour and the UTC day. A window's counts reset when
//! the next one starts, so `Retry-After` is the time to that start.

use super::model::{Effective, Refusal};
use super::suppress::Suppression;
use crate::config::FirstContact;
use serde::{Deserialize, Serialize};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// One agent's sending in its current windows (stored per agent, updated in the
/// transaction that queues each message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub hour_start_ms: i64,
    pub hour: u64,
    pub day_start_ms: i64,
    pub day: u64,
    pub day_rcpts: u64,
}

impl Counters {
    /// These counts as seen at `now`: a window that has ended counts zero.
    pub fn at(&self, now_ms: i64) -> Counters {
        let hour_start_ms = now_ms - now_ms.rem_euclid(HOUR_MS);
        let day_start_ms = now_ms - now_ms.rem_euclid(DAY_MS);
        let same_hour = self.hour_start_ms == hour_start_ms;
        let same_day = self.day_start_ms == day_start_ms;
        Counters {
            hour_start_ms,
            hour: if same_hour { self.hour } else { 0 },
            day_start_ms,
            day: if same_day { self.day } else { 0 },
            day_rcpts: if same_day { self.day_rcpts } else { 0 },
        }
    }
}

/// One recipient as queued: its address and (lower-case) domain.
pub struct Rcpt<'a> {
    pub address: &'a str,
    pub domain: &'a str,
}

fn secs_until(end_ms: i64, now_ms: i64) -> u64 {
    let ms = (end_ms - now_ms).max(1000);
    (ms as u64).div_ceil(1000)
}

/// Judges a send of `size` bytes to `rcpts` at `now_ms`. Accepted: the counters with this
/// send added, to be stored. `is_contact` says whether the agent has exchanged mail with an
/// address before; `suppressed` gives the org's suppression entry of an address, if any.
/// `approved`: a human approved this send (a held message being released), so a hold rule
/// no longer applies; every other rule does, and the send is counted now.
///
/// A hold ([`Refusal::Hold`]) is decided after every rule that refuses outright, and
/// before the caps: a held message is counted when it is released, not when it is held.
#[allow(clippy::too_many_arguments)]
pub fn judge<E>(
    eff: &Effective,
    approved: bool,
    rcpts: &[Rcpt<'_>],
    size: u64,
    counters: &Counters,
    now_ms: i64,
    mut is_contact: impl FnMut(&str) -> Result<bool, E>,
    mut suppressed: impl FnMut(&str) -> Result<Option<Suppression>, E>,
) -> Result<Result<Counters, Refusal>, E> {
    let deny = |rule, detail: String| Ok(Err(Refusal::Denied { rule, detail }));
    if size > eff.max_message_bytes {
        return deny(
            "max_message_bytes",
            format!(
                "the message is {size} bytes; this agent may send at most {}",
                eff.max_message_bytes
            ),
        );
    }
    let n = rcpts.len() as u64;
    if n > eff.max_recipients_per_message {
        return deny(
            "max_recipients_per_message",
            format!(
                "{n} recipients; this agent may address at most {} per message",
                eff.max_recipients_per_message
            ),
        );
    }
    for r in rcpts {
        if let Some(b) = eff.block_domains.iter().find(|b| b.matches(r.domain)) {
            return deny(
                "block_domains",
                format!("{} is blocked (pattern {b})", r.address),
            );
        }
        if let Some(allow) = &eff.allow_domains {
            if !allow.iter().any(|a| a.matches(r.domain)) {
                return deny(
                    "allow_domains",
                    format!("{} is not in this agent's allowed domains", r.address),
                );
            }
        }
    }
    for r in rcpts {
        if let Some(s) = suppressed(r.address)? {
            return Ok(Err(Refusal::Suppressed {
                address: r.address.to_string(),
                since_ms: s.added_ms,
                reason: s.reason,
            }));
        }
    }
    let hold_applies = eff.first_contact == FirstContact::Hold && !approved;
    if eff.first_contact == FirstContact::Deny || hold_applies {
        for r in rcpts {
            if is_contact(r.address)? {
                continue;
            }
            if hold_applies {
                return Ok(Err(Refusal::Hold {
                    rule: "first_contact",
                    detail: format!("first contact with {} needs a human's approval", r.address),
                }));
            }
            return deny(
                "first_contact",
                format!(
                    "{} has never exchanged mail with this agent, and first contact is denied",
                    r.address
                ),
            );
        }
    }
    let c = counters.at(now_ms);
    let limit = |rule, limit, end| {
        Ok(Err(Refusal::Limit {
            rule,
            limit,
            retry_after_secs: secs_until(end, now_ms),
        }))
    };
    if c.hour + 1 > eff.max_per_hour {
        return limit("max_per_hour", eff.max_per_hour, c.hour_start_ms + HOUR_MS);
    }
    if c.day + 1 > eff.max_per_day {
        return limit("max_per_day", eff.max_per_day, c.day_start_ms + DAY_MS);
    }
    if c.day_rcpts + n > eff.max_recipients_per_day {
        return limit(
            "max_recipients_per_day",
            eff.max_recipients_per_day,
            c.day_start_ms + DAY_MS,
        );
    }
    Ok(Ok(Counters {
        hour: c.hour + 1,
        day: c.day + 1,
        day_rcpts: c.day_rcpts + n,
        ..c
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SendPolicyConfig;
    use crate::policy::model::SendPolicy;

    fn eff(own: SendPolicy) -> Effective {
        Effective::from_config(&SendPolicyConfig::default()).overlay(&own)
    }

    const R: [Rcpt<'static>; 1] = [Rcpt {
        address: "x@example.com",
        domain: "example.com",
    }];

    fn run(e: &Effective, c: &Counters, now: i64) -> Result<Counters, Refusal> {
        judge::<()>(e, false, &R, 10, c, now, |_| Ok(true), |_| Ok(None)).unwrap()
    }

    #[test]
    fn the_hourly_cap_refuses_until_the_next_hour() {
        let e = eff(SendPolicy {
            max_per_hour: Some(2),
            ..Default::default()
        });
        // 10:59:30 on some day.
        let t0 = 20_000 * DAY_MS + 10 * HOUR_MS + 59 * 60_000 + 30_000;
        let mut c = Counters::default();
        c = run(&e, &c, t0).unwrap();
        c = run(&e, &c, t0 + 1).unwrap();
        assert_eq!(
            run(&e, &c, t0 + 2),
            Err(Refusal::Limit {
                rule: "max_per_hour",
                limit: 2,
                retry_after_secs: 30
            })
        );
        // The next hour starts: accepted, and the day keeps counting.
        let c2 = run(&e, &c, t0 + 30_000).unwrap();
        assert_eq!((c2.hour, c2.day), (1, 3));
    }

    #[test]
    fn the_daily_caps_count_messages_and_recipients() {
        let e = eff(SendPolicy {
            max_per_day: Some(3),
            max_recipients_per_day: Some(2),
            ..Default::default()
        });
        let t0 = 20_000 * DAY_MS;
        let c = run(&e, &Counters::default(), t0).unwrap();
        let c = run(&e, &c, t0 + 2 * HOUR_MS).unwrap();
        let r = run(&e, &c, t0 + 3 * HOUR_MS).unwrap_err();
        assert_eq!(r.rule(), "max_recipients_per_day");
        assert!(run(&e, &c, t0 + DAY_MS).is_ok());
    }

    #[test]
    fn rules_name_themselves() {
        let e = eff(SendPolicy {
            block_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        });
        assert_eq!(
            run(&e, &Counters::default(), 0).unwrap_err().rule(),
            "block_domains"
        );
        let e = eff(SendPolicy {
            first_contact: Some(FirstContact::Hold),
            ..Default::default()
        });
        let first = |approved, counters: &Counters| {
            judge::<()>(
                &e,
                approved,
                &R,
                10,
                counters,
                0,
                |_| Ok(false),
                |_| Ok(None),
            )
            .unwrap()
        };
        let r = first(false, &Counters::default()).unwrap_err();
        assert!(matches!(r, Refusal::Hold { .. }), "{r}");
        assert_eq!(r.rule(), "first_contact");
        // Approved: the hold is lifted and the send counted; the caps still apply.
        assert_eq!(first(true, &Counters::default()).unwrap().hour, 1);
        let full = Counters {
            hour: 100,
            ..Default::default()
        };
        assert_eq!(first(true, &full).unwrap_err().rule(), "max_per_hour");
        // A held send is not counted, so the caps do not hold it back either.
        assert!(matches!(first(false, &full), Err(Refusal::Hold { .. })));
        let e = eff(SendPolicy {
            max_message_bytes: Some(9),
            ..Default::default()
        });
        assert_eq!(
            run(&e, &Counters::default(), 0).unwrap_err().rule(),
            "max_message_bytes"
        );
    }
}

//! The reputation score (issue 24 §6): a pure function of an agent's recorded history, so the
//! same history always gives the same score and anyone can recompute it from the factors.
//!
//! Points (0-100, rounded; a revoked agent scores 0):
//!
//! | factor     | points | rule                                                              |
//! |------------|--------|-------------------------------------------------------------------|
//! | age        | 0-20   | 20 x min(days since creation, 90) / 90                            |
//! | volume     | 0-10   | 10 x min(recipients with a final outcome in the window, 100) / 100 |
//! | delivery   | 0-30   | 30 x delivered / (delivered + bounced + complained); 15 with none   |
//! | dmarc      | 0-10   | 10 x pass / (pass + fail) where reports exist; 5 without            |
//! | conduct    | 0-30   | 30 minus penalties, floored at 0:                                  |
//! |            |        |  10 per complaint; 10 x deferred / attempted recipients;           |
//! |            |        |  2 per policy refusal (at most 10); 1 per denied request (at most  |
//! |            |        |  10); 3 per revoked API key (at most 9)                            |

use serde_json::{json, Value};

/// The window the rates are taken over.
pub const WINDOW_DAYS: i64 = 30;
const AGE_FULL_DAYS: f64 = 90.0;
const VOLUME_FULL: f64 = 100.0;

/// What the score is computed from, counted over the window (age over the agent's life).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub age_days: f64,
    pub revoked: bool,
    /// Recipients by outcome, for messages sent in the window.
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub complained: u64,
    /// Recipients still waiting (not counted in rates).
    pub pending: u64,
    /// DMARC results of the agent's mail from aggregate reports, when attributable.
    pub dmarc_pass: u64,
    pub dmarc_fail: u64,
    pub policy_refusals: u64,
    pub denied_requests: u64,
    pub revoked_keys: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reputation {
    pub score: u8,
    pub factors: Value,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn score(h: &History) -> Reputation {
    let finals = h.delivered + h.bounced + h.complained;
    let attempted = finals + h.deferred;
    let age = 20.0 * h.age_days.clamp(0.0, AGE_FULL_DAYS) / AGE_FULL_DAYS;
    let volume = 10.0 * (finals as f64).min(VOLUME_FULL) / VOLUME_FULL;
    let delivery = ratio(h.delivered, finals).map_or(15.0, |r| 30.0 * r);
    let dmarc = ratio(h.dmarc_pass, h.dmarc_pass + h.dmarc_fail).map_or(5.0, |r| 10.0 * r);
    let penalties = 10.0 * h.complained as f64
        + ratio(h.deferred, attempted).map_or(0.0, |r| 10.0 * r)
        + (2.0 * h.policy_refusals as f64).min(10.0)
        + (h.denied_requests as f64).min(10.0)
        + (3.0 * h.revoked_keys as f64).min(9.0);
    let conduct = (30.0 - penalties).max(0.0);
    let total = if h.revoked {
        0.0
    } else {
        (age + volume + delivery + dmarc + conduct).clamp(0.0, 100.0)
    };
    let rate = |n: u64, d: u64| ratio(n, d).map(round2);
    Reputation {
        score: total.round() as u8,
        factors: json!({
            "revoked": h.revoked,
            "age": {"days": round2(h.age_days), "points": round2(age)},
            "volume": {"recipients": finals, "pending": h.pending, "points": round2(volume)},
            "delivery": {
                "delivered": h.delivered, "deferred": h.deferred, "bounced": h.bounced,
                "complained": h.complained,
                "delivered_rate": rate(h.delivered, finals), "deferred_rate": rate(h.deferred, attempted),
                "bounced_rate": rate(h.bounced, finals), "complained_rate": rate(h.complained, finals),
                "points": round2(delivery),
            },
            "dmarc": {"pass": h.dmarc_pass, "fail": h.dmarc_fail, "points": round2(dmarc)},
            "conduct": {
                "policy_refusals": h.policy_refusals, "denied_requests": h.denied_requests,
                "revoked_keys": h.revoked_keys, "points": round2(conduct),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_agent_is_neutral_and_a_good_record_scores_high() {
        // no history: 0 age + 0 volume + 15 delivery + 5 dmarc + 30 conduct
        assert_eq!(score(&History::default()).score, 50);
        let good = History {
            age_days: 120.0,
            delivered: 200,
            dmarc_pass: 10,
            ..Default::default()
        };
        assert_eq!(score(&good).score, 100);
        assert_eq!(score(&good), score(&good.clone()), "deterministic");
    }

    #[test]
    fn bad_conduct_costs_points_and_revocation_zeroes() {
        let h = History {
            age_days: 45.0,
            delivered: 40,
            bounced: 10,
            deferred: 50,
            policy_refusals: 3,
            denied_requests: 4,
            revoked_keys: 1,
            ..Default::default()
        };
        // age 10, volume 5, delivery 24, dmarc 5, conduct 30 - (5 + 6 + 4 + 3) = 12
        let r = score(&h);
        assert_eq!(r.score, 56);
        assert_eq!(r.factors["delivery"]["bounced_rate"], 0.2);
        assert_eq!(r.factors["conduct"]["points"], 12.0);
        let complained = History {
            complained: 5,
            ..h.clone()
        };
        assert!(score(&complained).score < r.score);
        assert_eq!(score(&complained).factors["conduct"]["points"], 0.0);
        assert_eq!(score(&History { revoked: true, ..h }).score, 0);
        let wild = History {
            age_days: f64::MAX,
            denied_requests: u64::MAX,
            ..Default::default()
        };
        assert!(score(&wild).score <= 100);
    }
}

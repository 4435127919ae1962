//! The overview: mail received, sent and bounced per hour over the last 24 hours (an SVG
//! chart drawn here, no script), queue depth, inbound DMARC pass rate, certificate expiry,
//! and the version.
//!
//! The hourly figures come from the server's own counters (the same as `/metrics`), sampled
//! every five minutes into 24 hourly buckets kept in memory: they cover the time since the
//! server started, which the page says.

use super::error::ConsoleResult;
use super::layout::page;
use super::session::Operator;
use super::AppState;
use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

const HOURS: usize = 24;
const SAMPLE_SECS: u64 = 300;

/// Counter totals at one instant: received, sent, bounced.
type Totals = [u64; 3];

#[derive(Default)]
struct Hourly {
    /// hour (unix / 3600) -> counts in that hour.
    buckets: HashMap<i64, Totals>,
    last: Option<Totals>,
    started: bool,
}

/// Samplers per running server (tests run several in one process), keyed by the address of
/// its metrics registry.
fn samplers() -> &'static Mutex<HashMap<usize, Arc<Mutex<Hourly>>>> {
    static S: OnceLock<Mutex<HashMap<usize, Arc<Mutex<Hourly>>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

fn totals(m: &crate::metrics::Metrics) -> Totals {
    let sum = |v: &prometheus::IntCounterVec, label: usize, want: &[&str]| -> u64 {
        use prometheus::core::Collector;
        v.collect()
            .iter()
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .get(label)
                    .is_some_and(|l| want.contains(&l.value()))
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    };
    [
        sum(&m.smtp_messages, 0, &["accepted", "delivered"]),
        sum(&m.delivery, 0, &["delivered", "sent"]),
        sum(&m.delivery, 0, &["bounced", "failed", "permanent"]),
    ]
}

fn sample(h: &Mutex<Hourly>, m: &crate::metrics::Metrics) {
    let now = totals(m);
    let hour = crate::util::now_unix() / 3600;
    let mut g = h.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(prev) = g.last {
        let b = g.buckets.entry(hour).or_default();
        for i in 0..3 {
            b[i] += now[i].saturating_sub(prev[i]);
        }
    }
    g.last = Some(now);
    g.buckets.retain(|k, _| *k > hour - HOURS as i64);
}

/// The sampler of this server, started on first use.
fn hourly(s: &AppState) -> Arc<Mutex<Hourly>> {
    let key = Arc::as_ptr(&s.metrics) as usize;
    let h = samplers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone();
    sample(&h, &s.metrics);
    let start = {
        let mut g = h.lock().unwrap_or_else(|p| p.into_inner());
        !std::mem::replace(&mut g.started, true)
    };
    if start {
        let weak: Weak<crate::metrics::Metrics> = Arc::downgrade(&s.metrics);
        let hh = h.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(SAMPLE_SECS)).await;
                let Some(m) = weak.upgrade() else {
                    samplers()
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&key);
                    return;
                };
                sample(&hh, &m);
            }
        });
    }
    h
}

/// A grouped bar chart of the last 24 hours, oldest on the left.
fn chart(h: &Hourly) -> Markup {
    let now = crate::util::now_unix() / 3600;
    let rows: Vec<(i64, Totals)> = (0..HOURS as i64)
        .map(|i| {
            let hour = now - (HOURS as i64 - 1) + i;
            (hour, h.buckets.get(&hour).copied().unwrap_or_default())
        })
        .collect();
    let max = rows
        .iter()
        .flat_map(|(_, t)| t.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, hgt, pad) = (720.0_f64, 160.0_f64, 20.0_f64);
    let slot = (w - pad) / HOURS as f64;
    let bar = slot / 4.0;
    let total: u64 = rows.iter().map(|(_, t)| t.iter().sum::<u64>()).sum();
    let label = format!(
        "Mail per hour over the last 24 hours: {} received, {} sent, {} bounced",
        rows.iter().map(|(_, t)| t[0]).sum::<u64>(),
        rows.iter().map(|(_, t)| t[1]).sum::<u64>(),
        rows.iter().map(|(_, t)| t[2]).sum::<u64>()
    );
    html! {
        svg.chart viewBox={"0 0 " (w) " " (hgt + 20.0)} role="img" aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            @for (i, (hour, t)) in rows.iter().enumerate() {
                @for (k, class) in ["received", "sent", "bounced"].iter().enumerate() {
                    @let v = t[k] as f64;
                    @let bh = (v / max as f64) * (hgt - pad);
                    rect class=(class) x=(format!("{:.1}", pad + i as f64 * slot + k as f64 * bar)) y=(format!("{:.1}", hgt - bh)) width=(format!("{:.1}", bar)) height=(format!("{:.1}", bh)) {}
                }
                @if i % 6 == 0 {
                    text x=(format!("{:.1}", pad + i as f64 * slot)) y=(hgt + 14.0) { (format!("{:02}:00", hour.rem_euclid(24))) }
                }
            }
            text x="2" y="12" { (max) }
        }
        p.legend {
            span.received { "■ received" } span.sent { "■ sent" } span.bounced { "■ bounced" }
            @if total == 0 { span.muted { "(nothing since the server started)" } }
        }
    }
}

fn dmarc_rate(m: &crate::metrics::Metrics) -> Option<(u64, u64)> {
    use prometheus::core::Collector;
    let mut pass = 0;
    let mut all = 0;
    for f in m.auth_results.collect() {
        for x in f.get_metric() {
            let labels = x.get_label();
            let method = labels
                .iter()
                .find(|l| l.name() == "method")
                .map(|l| l.value());
            let result = labels
                .iter()
                .find(|l| l.name() == "result")
                .map(|l| l.value());
            if method == Some("dmarc") {
                let n = x.get_counter().get_value() as u64;
                all += n;
                if result == Some("pass") {
                    pass += n;
                }
            }
        }
    }
    (all > 0).then_some((pass, all))
}

fn cert_expiry(c: &crate::config::Config) -> Option<i64> {
    let path = if !c.tls.cert.is_empty() {
        std::path::PathBuf::from(&c.tls.cert)
    } else {
        c.storage.path.join("tls-cert.pem")
    };
    let pem = std::fs::read(path).ok()?;
    crate::tls::validity::of_pem(&pem).ok().map(|v| v.not_after)
}

pub async fn page_handler(State(s): State<AppState>, op: Operator) -> ConsoleResult<Html<String>> {
    let h = hourly(&s);
    let queue = s.queue.list(
        &op.actor,
        &crate::queue::QueueQuery {
            limit: Some(500),
            cursor: None,
            all: false,
        },
    )?;
    let depth = queue["items"].as_array().map_or(0, Vec::len);
    let more = queue["next_cursor"].is_string();
    let dmarc = dmarc_rate(&s.metrics);
    let cert = cert_expiry(&s.config);
    let chart_markup = {
        let g = h.lock().unwrap_or_else(|p| p.into_inner());
        chart(&g)
    };
    let body = html! {
        h1 { "Overview of " (s.config.server.domain) }
        div.cards {
            div.card { div.muted { "Queue" } div.big { (depth) @if more { "+" } } a href="/console/queue" { "messages waiting" } }
            div.card { div.muted { "Inbound DMARC pass" }
                div.big { @match dmarc { Some((p, a)) => { (p * 100 / a) "%" }, None => "—" } }
                @if let Some((p, a)) = dmarc { span.muted { (p) " of " (a) } } @else { span.muted { "no inbound mail yet" } }
            }
            div.card { div.muted { "Certificate expires" }
                div.big { @match cert { Some(t) => { (crate::util::rfc3339(t).split('T').next().unwrap_or("").to_string()) }, None => "—" } }
                @if let Some(t) = cert { span.muted { ((t - crate::util::now_unix()) / 86_400) " days" } }
            }
            div.card { div.muted { "DNS" } div.big { "check" } a href="/console/dns" { "plan and live check" } }
            div.card { div.muted { "Version" } div.big { (env!("CARGO_PKG_VERSION")) } }
        }
        h2 { "Mail per hour, last 24 hours" }
        (chart_markup)
    };
    Ok(page(&op, "overview", "Overview", body))
}

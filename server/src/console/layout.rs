//! The page shell and small shared pieces. Markup is maud: checked at compile time, every
//! interpolation escaped, so text from mail, agents or audit entries is always text.

use super::session::Operator;
use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

/// The navigation, in the order an operator needs it.
const NAV: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("agents", "Agents"),
    ("mail", "Mail"),
    ("audit", "Audit"),
    ("dns", "DNS"),
    ("queue", "Queue"),
    ("vault", "Vault"),
    ("webhooks", "Webhooks"),
    ("settings", "Settings"),
];

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="referrer" content="same-origin";
        title { (title) " · legate" }
        link rel="stylesheet" href="/console/assets/app.css";
        script src="/console/assets/app.js" defer {}
    }
}

/// A page for a signed-in operator.
pub fn page(op: &Operator, active: &str, title: &str, body: Markup) -> Html<String> {
    let doc = html! {
        html lang="en" {
            head { (head(title)) }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "legate" }
                    nav aria-label="Main" {
                        ul {
                            @for (key, label) in NAV {
                                @let href = if *key == "overview" { "/console/".to_string() } else { format!("/console/{key}") };
                                li {
                                    @if *key == active {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/console/logout" {
                        (csrf(&op.csrf))
                        span.who { (op.human.email) }
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    (body)
                }
            }
        }
    };
    Html(doc.into_string())
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    let doc = html! {
        html lang="en" {
            head { (head(title)) }
            body.bare {
                main id="main" { (body) }
            }
        }
    };
    Html(doc.into_string())
}

/// The hidden token field every form carries.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A notice after a redirect (`?done=...`): only our own fixed texts, chosen by key, so a
/// crafted link cannot put words in the console's mouth.
pub fn notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("key_revoked") => "The key was revoked.",
        Some("agent_revoked") => {
            "The agent was revoked: its keys and tokens no longer work, its vault was destroyed."
        }
        Some("password_set") => "Password changed. Other sessions were signed out.",
        Some("totp_on") => "Two-factor sign-in is on.",
        Some("totp_off") => "Two-factor sign-in is off.",
        Some("retried") => "Retry scheduled.",
        Some("cancelled") => "Delivery cancelled.",
        Some("deleted") => "Deleted.",
        Some("client_revoked") => "The client's access was revoked.",
        Some("webhook_enabled") => "The webhook is enabled again; its failure count starts over.",
        Some("webhook_disabled") => "The webhook is disabled: no events are posted to it.",
        Some("webhook_test_ok") => "The test event was accepted by the endpoint.",
        Some("webhook_test_failed") => "The test event was not accepted by the endpoint.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}

/// A copy button for the text of the element `target` (progressive: without JS the text is
/// still there to select).
pub fn copy_button(target: &str) -> Markup {
    html! { button.copy type="button" data-copy=(target) hidden { "Copy" } }
}

/// An RFC 3339 time shown as is, or a dash.
pub fn when(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("—").replace('T', " ")
}

/// A JSON value as display text (strings unquoted).
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A query-string component, percent-encoded.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

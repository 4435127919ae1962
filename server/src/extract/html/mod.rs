//! HTML -> text with html2text, after pruning the DOM.
//!
//! Quoted history is easiest to find in the DOM, where mail clients mark it: Gmail's
//! `div.gmail_quote`, Apple's `blockquote type=cite`, Outlook's `#divRplyFwdMsg`,
//! `#appendonsend` and the `border-top` header box, Thunderbird's `.moz-cite-prefix`,
//! Yahoo's `.yahoo_quoted`, Proton's `.protonmail_quote`. Outlook-style markers start the
//! history and everything after them in document order is history, so the document is
//! truncated there; blockquotes are removed on their own so that inline replies between
//! them survive. Hidden elements (preheaders) and signature blocks go too.
//!
//! A custom decorator (`decorator.rs`) renders links as their text, the URL riding along as
//! an annotation so anchors are collected with their words. Tables are rendered in raw
//! mode (one cell after another): mail uses tables for layout, not for data.

use html2text::render::TaggedLine;
use html2text::{Handle, RcDom};

use super::quotes;
use decorator::{MailDecorator, Mark};

mod decorator;

/// Wide enough that html2text never wraps a paragraph: lines are meaningful to the quote
/// and code detectors, and whitespace is normalised afterwards anyway.
const RENDER_WIDTH: usize = 4000;
/// Pruning stops this deep (the subtree below is kept as it is). `MAX_PARSE_DEPTH` already
/// bounds real nesting; this bounds our own recursion whatever html5ever builds.
const MAX_DEPTH: usize = 512;
/// html5ever's tree builder is quadratic in nesting depth (20 000 nested divs take
/// seconds); above this estimated depth the HTML is only stripped of its tags.
const MAX_PARSE_DEPTH: usize = 400;
/// Without a `gmail_attr` child, this much of a Gmail quote is read for a forward marker.
const GMAIL_ATTR_BYTES: usize = 400;
/// HTML beyond this many bytes is not rendered (the raw HTML is still stored whole).
const MAX_HTML_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Prune {
    /// Remove quoted history. Off for forwards, whose quoted part is the content.
    pub quotes: bool,
}

/// An `<a href>` that survived pruning, with its visible text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub url: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Rendered {
    pub text: String,
    pub links: Vec<Anchor>,
}

pub(crate) fn render(html: &str, prune: Prune) -> Rendered {
    let html = truncate_at_char(html, MAX_HTML_BYTES);
    if nesting_exceeds(html, MAX_PARSE_DEPTH) {
        return Rendered {
            text: strip_tags(html),
            links: Vec::new(),
        };
    }
    let config = html2text::config::with_decorator(MailDecorator)
        .raw_mode(true)
        .no_link_wrapping()
        .allow_width_overflow();
    let Ok(dom) = config.parse_html(html.as_bytes()) else {
        return Rendered {
            text: strip_tags(html),
            links: Vec::new(),
        };
    };
    prune_children(&dom.document, prune, 0);
    let hrefs = collect_hrefs(&dom);
    let lines = config
        .dom_to_render_tree(&dom)
        .and_then(|tree| config.render_to_lines(tree, RENDER_WIDTH));
    let Ok(lines) = lines else {
        return Rendered {
            text: strip_tags(html),
            links: hrefs
                .into_iter()
                .map(|url| Anchor { url, text: None })
                .collect(),
        };
    };
    let text = lines
        .iter()
        .map(|l| l.tagged_strings().map(|t| t.s.as_str()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");
    let texts = anchor_texts(&lines);
    let links = hrefs
        .into_iter()
        .map(|url| {
            let text = texts
                .iter()
                .find(|(u, _)| *u == url)
                .map(|(_, t)| t.clone());
            Anchor { url, text }
        })
        .collect();
    Rendered { text, links }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Remove,
    /// This element and everything after it in document order is quoted history.
    Truncate,
}

/// Prunes `node`'s subtree; true when a truncation point was met inside it.
fn prune_children(node: &Handle, prune: Prune, depth: usize) -> bool {
    if depth >= MAX_DEPTH {
        return false;
    }
    let children: Vec<Handle> = node.children.borrow().clone();
    let mut kept = Vec::with_capacity(children.len());
    let mut truncated = false;
    for child in children {
        match action(&child, prune) {
            Action::Remove => {}
            Action::Truncate => {
                truncated = true;
                break;
            }
            Action::Keep => {
                let inner = prune_children(&child, prune, depth + 1);
                kept.push(child);
                if inner {
                    truncated = true;
                    break;
                }
            }
        }
    }
    *node.children.borrow_mut() = kept;
    truncated
}

/// Cheap upper estimate of element nesting: opening tags minus closing tags, not counting
/// void elements and the ones HTML closes by itself (`p`, `li`, `td`, ...).
fn nesting_exceeds(html: &str, limit: usize) -> bool {
    const FLAT: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "p", "li", "td", "th", "tr", "option", "dt", "dd", "tbody", "thead", "o:p",
    ];
    let bytes = html.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'<') {
        i += off + 1;
        let closing = bytes.get(i) == Some(&b'/');
        let start = if closing { i + 1 } else { i };
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b':'))
            .map_or(bytes.len(), |n| start + n);
        if end == start {
            continue;
        }
        let name = html[start..end].to_ascii_lowercase();
        if FLAT.contains(&name.as_str()) {
            continue;
        }
        let self_closing = bytes[end..]
            .iter()
            .position(|&b| b == b'>')
            .is_some_and(|n| n > 0 && bytes[end + n - 1] == b'/');
        if closing {
            depth = depth.saturating_sub(1);
        } else if !self_closing {
            depth += 1;
            if depth > limit {
                return true;
            }
        }
    }
    false
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The attributes pruning looks at, lower-cased (style also without whitespace).
struct Element {
    tag: String,
    id: String,
    class: String,
    style: String,
    kind: String,
}

fn element(node: &Handle) -> Option<Element> {
    let html2text::Element { name, attrs, .. } = &node.data else {
        return None;
    };
    let attrs = attrs.borrow();
    let get = |key: &str| {
        attrs
            .iter()
            .find(|a| (*a.name.local).eq_ignore_ascii_case(key))
            .map(|a| a.value.to_ascii_lowercase())
            .unwrap_or_default()
    };
    Some(Element {
        tag: (*name.local).to_ascii_lowercase(),
        id: get("id"),
        class: get("class"),
        style: get("style").split_whitespace().collect(),
        kind: get("type"),
    })
}

fn action(node: &Handle, prune: Prune) -> Action {
    let Some(el) = element(node) else {
        return Action::Keep;
    };
    if matches!(
        el.tag.as_str(),
        "head" | "script" | "style" | "title" | "template"
    ) || el.style.contains("display:none")
        || el.style.contains("mso-hide:all")
    {
        return Action::Remove;
    }
    if el.class.contains("gmail_signature")
        || el.class.contains("moz-signature")
        || el.id == "signature"
    {
        return Action::Remove;
    }
    if !prune.quotes {
        return Action::Keep;
    }
    if matches!(
        el.id.as_str(),
        "divrplyfwdmsg" | "appendonsend" | "mail-editor-reference-message-container"
    ) || el.class.contains("moz-cite-prefix")
        || el.class.contains("yahoo_quoted")
        || el.class.contains("protonmail_quote")
        || (el.style.contains("border:none") && el.style.contains("border-top:solid"))
    {
        return Action::Truncate;
    }
    if el.class.contains("gmail_quote") {
        // A Gmail forward sits in the same container as a reply; the forward is content.
        return if is_gmail_forward(node) {
            Action::Keep
        } else {
            Action::Remove
        };
    }
    if el.tag == "blockquote" && (el.kind == "cite" || el.class.contains("quote")) {
        return Action::Remove;
    }
    Action::Keep
}

/// Whether a `gmail_quote` container holds a forward: its attribution line (`gmail_attr`)
/// says so. Only the attribution is read, so a reply quoting an old forward is still a reply.
fn is_gmail_forward(node: &Handle) -> bool {
    let children = node.children.borrow();
    let attr = children
        .iter()
        .find(|c| element(c).is_some_and(|e| e.class.contains("gmail_attr")));
    match attr {
        Some(attr) => quotes::mentions_forward(&RcDom::node_as_dom_string(attr)),
        None => {
            let html = RcDom::node_as_dom_string(node);
            quotes::mentions_forward(truncate_at_char(&html, GMAIL_ATTR_BYTES))
        }
    }
}

/// http(s) `href`s in document order, deduplicated.
fn collect_hrefs(dom: &RcDom) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut stack: Vec<Handle> = vec![dom.document.clone()];
    while let Some(node) = stack.pop() {
        if let Some(href) = href_of(&node) {
            let lower = href.to_ascii_lowercase();
            if (lower.starts_with("https://") || lower.starts_with("http://"))
                && !out.contains(&href)
            {
                out.push(href);
            }
        }
        let children = node.children.borrow();
        stack.extend(children.iter().rev().cloned());
    }
    out
}

fn href_of(node: &Handle) -> Option<String> {
    let html2text::Element { name, attrs, .. } = &node.data else {
        return None;
    };
    if !(*name.local).eq_ignore_ascii_case("a") {
        return None;
    }
    let attrs = attrs.borrow();
    let href = attrs
        .iter()
        .find(|a| (*a.name.local).eq_ignore_ascii_case("href"))?;
    Some(href.value.trim().to_string())
}

/// Visible text per link target (first occurrence wins), from the rendered lines.
fn anchor_texts(lines: &[TaggedLine<Vec<Mark>>]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut flush = |current: &mut Option<(String, String)>| {
        if let Some((url, text)) = current.take() {
            let text = super::text::collapse_line(&text);
            if !text.is_empty() && !out.iter().any(|(u, _)| *u == url) {
                out.push((url, text));
            }
        }
    };
    for line in lines {
        for ts in line.tagged_strings() {
            let url = ts.tag.iter().rev().find_map(|m| match m {
                Mark::Link(u) => Some(u),
                Mark::Plain => None,
            });
            match url {
                Some(u) => {
                    if current.as_ref().is_some_and(|(cu, _)| cu == u) {
                        if let Some((_, t)) = current.as_mut() {
                            t.push_str(&ts.s);
                        }
                    } else {
                        flush(&mut current);
                        current = Some((u.clone(), ts.s.clone()));
                    }
                }
                None if ts.s.trim().is_empty() => {}
                None => flush(&mut current),
            }
        }
        if let Some((_, t)) = current.as_mut() {
            t.push(' ');
        }
    }
    flush(&mut current);
    out
}

/// Last resort when html5ever or the renderer gives up: drop tags, keep text.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Prune = Prune { quotes: true };
    const OFF: Prune = Prune { quotes: false };

    #[test]
    fn renders_text_and_anchor_texts() {
        let r = render(
            "<html><head><style>p{color:red}</style></head><body><h1>Welcome</h1>\
             <p>Please <a href=\"https://ex.example/verify?t=1\">verify your <b>email</b></a>.</p>\
             <a href=\"https://ex.example/logo\"><img src=\"x.png\"></a></body></html>",
            ON,
        );
        assert!(r.text.contains("Welcome"), "{}", r.text);
        assert!(!r.text.contains('#'));
        assert!(!r.text.contains("color"));
        assert!(r.text.contains("Please verify your email."), "{}", r.text);
        assert_eq!(
            r.links,
            vec![
                Anchor {
                    url: "https://ex.example/verify?t=1".into(),
                    text: Some("verify your email".into())
                },
                Anchor {
                    url: "https://ex.example/logo".into(),
                    text: None
                }
            ]
        );
    }

    #[test]
    fn hidden_preheader_removed() {
        let r = render(
            "<div style=\"display: none; max-height:0\">Preheader junk</div><p>Body</p>",
            ON,
        );
        assert!(!r.text.contains("Preheader"));
        assert!(r.text.contains("Body"));
    }

    #[test]
    fn gmail_quote_removed_unless_forward() {
        let reply = "<div dir=\"ltr\">New text</div><br><div class=\"gmail_quote\">\
                     <div class=\"gmail_attr\">On Mon, Jan 8, 2024 at 10:12 AM Jane &lt;j@x.example&gt; wrote:<br></div>\
                     <blockquote class=\"gmail_quote\">Old text</blockquote></div>";
        let r = render(reply, ON);
        assert!(r.text.contains("New text"));
        assert!(!r.text.contains("Old text"));
        assert!(!r.text.contains("wrote"));
        assert!(render(reply, OFF).text.contains("Old text"));

        let fwd = "<div>FYI</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">\
                   ---------- Forwarded message ---------<br>From: a@x.example</div><br>Forwarded body</div>";
        assert!(render(fwd, ON).text.contains("Forwarded body"));
    }

    #[test]
    fn gmail_reply_quoting_an_old_forward_is_still_removed() {
        let html = "<div>Thanks!</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">\
                    On Mon, Jan 8, 2024 Jane &lt;j@x.example&gt; wrote:<br></div><blockquote class=\"gmail_quote\">\
                    ---------- Forwarded message ---------<br>Old forwarded body</blockquote></div>";
        let r = render(html, ON);
        assert!(r.text.contains("Thanks!"));
        assert!(!r.text.contains("Old forwarded body"), "{}", r.text);
    }

    #[test]
    fn outlook_marker_truncates_rest_of_document() {
        let html = "<div class=\"WordSection1\"><p>Reply here</p>\
                    <div style=\"border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in\">\
                    <p><b>From:</b> Jane</p></div><p>Old stuff</p></div><p>More old</p>";
        let r = render(html, ON);
        assert!(r.text.contains("Reply here"));
        assert!(!r.text.contains("Jane"));
        assert!(!r.text.contains("Old stuff"));
        assert!(!r.text.contains("More old"));
    }

    #[test]
    fn apple_cite_blockquote_removed_but_plain_blockquote_kept() {
        let r = render(
            "<p>Sure.</p><blockquote type=\"cite\">quoted</blockquote><blockquote>pull quote</blockquote>",
            ON,
        );
        assert!(!r.text.contains("quoted"));
        assert!(r.text.contains("> pull quote"), "{}", r.text);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let html = "<div>".repeat(20_000) + "deep" + &"</div>".repeat(20_000);
        let started = std::time::Instant::now();
        let r = render(&html, ON);
        assert!(r.text.contains("deep"), "{:?}", r.text);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn moderately_deep_html_keeps_text_and_links() {
        let html = "<div>".repeat(300)
            + "<p>inner <a href=\"https://x.example/v/12345678\">Verify</a></p>"
            + &"</div>".repeat(300);
        let r = render(&html, ON);
        assert!(r.text.contains("inner"), "{:?}", r.text);
        assert!(r.text.contains("Verify"));
        assert_eq!(r.links.len(), 1);
    }

    #[test]
    fn nesting_estimate() {
        assert!(!nesting_exceeds("<div><p>a<p>b<br><img src=x/></div>", 1));
        assert!(nesting_exceeds("<div><span><b>x</b></span></div>", 2));
        assert!(!nesting_exceeds(&"<div></div>".repeat(10_000), 1));
        assert!(!nesting_exceeds("<o:p></o:p><x/><<<>>>", 0));
    }

    #[test]
    fn huge_html_is_cut_not_rejected() {
        let html = "<p>Hello</p>".to_string() + &"é".repeat(MAX_HTML_BYTES);
        assert!(render(&html, ON).text.starts_with("Hello"));
    }
}

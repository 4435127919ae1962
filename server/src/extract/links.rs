//! Links and what they are for.
//!
//! Sources: anchors of the (quote-pruned) HTML with their text, bare URLs in the chosen
//! text, and the http(s) targets of `List-Unsubscribe`. Quoted history is never a source.
//!
//! Kind, in this order: the anchor text (or, for a bare URL, its path and query, then the
//! words just before it) is matched against unsubscribe, password-reset, verification and
//! sign-in vocabulary, in that priority ("Confirm password reset" is a reset). A
//! verification, sign-in or reset kind also needs the URL to carry something that looks
//! like a token (a query value or a path segment with digits); a "Log in" button that
//! opens the plain login page is `Other`, because an agent waiting for a magic link must
//! not take it for one. Every other http(s) link is kept as `Other`, up to a cap.

use std::sync::LazyLock;

use regex::Regex;

use super::text::re;

use super::html::Anchor;
use super::{Link, LinkKind};

/// Vocabulary for anchor text and surrounding words, by kind, in priority order.
static WORDS: LazyLock<[(LinkKind, Regex); 4]> = LazyLock::new(|| {
    [
        (
            LinkKind::Unsubscribe,
            re(
                r"(?i)unsubscribe|opt[- ]out|abmelden|abbestellen|désabonner|désinscri|darse de baja|cancelar (?:la )?suscripci|annulla (?:l'|la )?iscrizione|uitschrijven|afmelden|descadastrar|cancelar inscrição|配信停止|退订",
            ),
        ),
        (
            LinkKind::PasswordReset,
            re(
                r"(?i)\breset|forgot|recover|new password|change (?:your )?password|zurücksetzen|neues passwort|réinitialiser|nouveau mot de passe|restablecer|nueva contraseña|redefinir|reimposta|opnieuw instellen|wachtwoord herstellen|パスワード(?:の)?(?:再設定|リセット)|重置密码",
            ),
        ),
        (
            LinkKind::Verification,
            re(
                r"(?i)\bverif|\bconfirm|\bactivat|\bvalidat|bestätig|verifizier|aktivier|vérifi|\bactiver\b|confirmar|verificar|\bactivar|conferma|\bverifica\b|\battiva|bevestig|verifiër|activeren|\bativar|確認|認証|验证|确认",
            ),
        ),
        (
            LinkKind::SignIn,
            re(
                r"(?i)\bsign[- ]?in\b|\blog[- ]?in\b|magic link|einloggen|\banmelden|se connecter|\bconnexion\b|iniciar sesión|inicia sesión|\baccedi\b|inloggen|ログイン|サインイン|登录",
            ),
        ),
    ]
});

/// Vocabulary in URL paths and queries, by kind, in priority order.
static URL_WORDS: LazyLock<[(LinkKind, Regex); 4]> = LazyLock::new(|| {
    [
        (LinkKind::Unsubscribe, re(r"unsubscribe|\bunsub\b|opt-?out")),
        (
            LinkKind::PasswordReset,
            re(r"reset|forgot|recover|new[-_]?password|set[-_]?password"),
        ),
        (LinkKind::Verification, re(r"verif|confirm|activat|validat")),
        (
            LinkKind::SignIn,
            re(r"magic|sign[-_]?in|log[-_]?in|passwordless"),
        ),
    ]
});

static BARE_URL: LazyLock<Regex> = LazyLock::new(|| re(r#"(?i)\bhttps?://[^\s<>"'\]\[{}|\\^`]+"#));

/// Query parameters that steer navigation or analytics, not identity.
const NON_TOKEN_PARAMS: &[&str] = &[
    "next",
    "redirect",
    "redirect_uri",
    "return",
    "returnto",
    "return_to",
    "continue",
    "lang",
    "locale",
    "hl",
    "ref",
    "source",
    "src",
    "campaign",
    "medium",
    "email",
    "utm",
];
/// Links kept per message (verification/sign-in/reset links come first in the walk).
const MAX_LINKS: usize = 50;
/// A path segment at least this long and containing a digit reads as a token.
const MIN_TOKEN_SEGMENT: usize = 6;

/// All links, deduplicated by URL; a later sighting may upgrade an `Other` link's kind.
pub(crate) fn collect(content: &str, anchors: &[Anchor], list_unsubscribe: &[String]) -> Vec<Link> {
    let mut out: Vec<Link> = Vec::new();
    for a in anchors {
        if let Some(kind) = classify(&a.url, a.text.as_deref(), None) {
            push(&mut out, a.url.clone(), kind, a.text.clone());
        }
    }
    for (url, before) in bare_urls(content) {
        if let Some(kind) = classify(&url, None, Some(&before)) {
            push(&mut out, url, kind, None);
        }
    }
    for url in list_unsubscribe {
        if url::Url::parse(url).is_ok() {
            push(&mut out, url.clone(), LinkKind::Unsubscribe, None);
        }
    }
    // Keep the important ones if there are too many.
    out.sort_by_key(|l| l.kind == LinkKind::Other);
    out.truncate(MAX_LINKS);
    out
}

fn push(out: &mut Vec<Link>, url: String, kind: LinkKind, text: Option<String>) {
    if let Some(existing) = out.iter_mut().find(|l| l.url == url) {
        if existing.kind == LinkKind::Other && kind != LinkKind::Other {
            existing.kind = kind;
        }
        if existing.text.is_none() {
            existing.text = text;
        }
        return;
    }
    out.push(Link { url, kind, text });
}

/// `None` when the URL does not parse.
fn classify(url: &str, text: Option<&str>, before: Option<&str>) -> Option<LinkKind> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let mut where_ = parsed.path().to_ascii_lowercase();
    if let Some(q) = parsed.query() {
        where_.push('?');
        where_.push_str(&q.to_ascii_lowercase());
    }
    if let Some(f) = parsed.fragment() {
        where_.push('#');
        where_.push_str(&f.to_ascii_lowercase());
    }
    let by_text = text.and_then(|t| by_words(&WORDS, t));
    let by_url = by_words(&URL_WORDS, &where_);
    let by_before = before.and_then(|b| by_words(&WORDS, b));
    let kind = match text {
        Some(_) => by_text.or(by_url),
        None => by_url.or(by_before),
    }
    .unwrap_or(LinkKind::Other);
    let needs_token = matches!(
        kind,
        LinkKind::Verification | LinkKind::SignIn | LinkKind::PasswordReset
    );
    Some(if needs_token && !has_token(&parsed) {
        LinkKind::Other
    } else {
        kind
    })
}

fn by_words(table: &[(LinkKind, Regex); 4], s: &str) -> Option<LinkKind> {
    table.iter().find(|(_, r)| r.is_match(s)).map(|(k, _)| *k)
}

/// Something in the URL that identifies one user's one action.
fn has_token(url: &url::Url) -> bool {
    let by_query = url.query_pairs().any(|(k, v)| {
        let k = k.to_ascii_lowercase();
        !k.starts_with("utm")
            && !NON_TOKEN_PARAMS.contains(&k.as_str())
            && v.len() >= MIN_TOKEN_SEGMENT
    });
    let by_path = url.path_segments().is_some_and(|mut segs| {
        segs.any(|s| s.len() >= MIN_TOKEN_SEGMENT && s.bytes().any(|c| c.is_ascii_digit()))
    });
    let by_fragment = url
        .fragment()
        .is_some_and(|f| f.len() >= MIN_TOKEN_SEGMENT && f.bytes().any(|c| c.is_ascii_digit()));
    by_query || by_path || by_fragment
}

/// Bare URLs with the words before them: the rest of the line, or when the URL stands on
/// its own line, the closest non-blank line above.
fn bare_urls(content: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = content.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for m in BARE_URL.find_iter(line) {
            let url = trim_url(m.as_str());
            let mut before = line[..m.start()].trim().to_string();
            if before.split_whitespace().count() < 2 {
                if let Some(above) = lines[..i]
                    .iter()
                    .rev()
                    .take(3)
                    .find(|l| !l.trim().is_empty())
                {
                    before = format!("{} {}", above.trim(), before);
                }
            }
            out.push((url.to_string(), before));
        }
    }
    out
}

/// Drops sentence punctuation and an unbalanced closing bracket after a URL.
fn trim_url(url: &str) -> &str {
    let mut u = url.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"', '>']);
    if u.ends_with(')') && u.matches('(').count() < u.matches(')').count() {
        u = &u[..u.len() - 1];
        u = u.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        LazyLock::force(&WORDS);
        LazyLock::force(&URL_WORDS);
        LazyLock::force(&BARE_URL);
    }

    fn anchor(url: &str, text: &str) -> Anchor {
        Anchor {
            url: url.into(),
            text: Some(text.into()),
        }
    }

    fn kinds(links: &[Link]) -> Vec<(&str, LinkKind)> {
        links.iter().map(|l| (l.url.as_str(), l.kind)).collect()
    }

    #[test]
    fn anchor_text_decides() {
        let links = collect(
            "",
            &[
                anchor("https://t.example/c/aZ91kQ2x", "Verify email address"),
                anchor("https://t.example/c/bb81kQ2x", "Reset your password"),
                anchor(
                    "https://app.example/auth?token=9f8e7d6c5b",
                    "Sign in to Acme",
                ),
                anchor("https://news.example/u/991234?list=7", "Unsubscribe"),
                anchor("https://news.example/article/how-we-build", "Read more"),
            ],
            &[],
        );
        assert_eq!(
            kinds(&links),
            vec![
                ("https://t.example/c/aZ91kQ2x", LinkKind::Verification),
                ("https://t.example/c/bb81kQ2x", LinkKind::PasswordReset),
                (
                    "https://app.example/auth?token=9f8e7d6c5b",
                    LinkKind::SignIn
                ),
                (
                    "https://news.example/u/991234?list=7",
                    LinkKind::Unsubscribe
                ),
                ("https://news.example/article/how-we-build", LinkKind::Other),
            ]
        );
        assert_eq!(links[0].text.as_deref(), Some("Verify email address"));
    }

    #[test]
    fn plain_login_page_is_not_a_sign_in_link() {
        let links = collect("", &[anchor("https://app.example/login", "Log in")], &[]);
        assert_eq!(links[0].kind, LinkKind::Other);
    }

    #[test]
    fn bare_urls_by_path_then_words() {
        let text = "Confirm your address:\n\nhttps://ex.example/e/8c1f9a2b7d\n\n\
                    Reset link: https://ex.example/account/password/reset?t=Zk81mmq2.\n\
                    Magic: (https://ex.example/magic/abc123def)";
        let links = collect(text, &[], &[]);
        assert_eq!(
            kinds(&links),
            vec![
                ("https://ex.example/e/8c1f9a2b7d", LinkKind::Verification),
                (
                    "https://ex.example/account/password/reset?t=Zk81mmq2",
                    LinkKind::PasswordReset
                ),
                ("https://ex.example/magic/abc123def", LinkKind::SignIn),
            ]
        );
        assert!(links.iter().all(|l| l.text.is_none()));
    }

    #[test]
    fn list_unsubscribe_and_dedup_upgrade() {
        let links = collect(
            "Manage: https://n.example/unsubscribe/abc123",
            &[anchor("https://n.example/unsubscribe/abc123", "here")],
            &[
                "https://n.example/unsubscribe/abc123".into(),
                "https://n.example/lu/1".into(),
            ],
        );
        assert_eq!(links.len(), 2);
        assert!(links.iter().all(|l| l.kind == LinkKind::Unsubscribe));
        assert_eq!(links[0].text.as_deref(), Some("here"));
    }

    #[test]
    fn priority_reset_over_confirm() {
        let links = collect(
            "",
            &[anchor(
                "https://ex.example/x/91ab2c3d",
                "Confirm password reset",
            )],
            &[],
        );
        assert_eq!(links[0].kind, LinkKind::PasswordReset);
    }

    #[test]
    fn non_http_ignored() {
        assert!(collect("mailto:a@b.example ftp://x.example/1", &[], &[]).is_empty());
    }
}

//! The operator web console over real HTTP: sign-in (first with an admin token, then with
//! the password, then with a TOTP code), the session cookie and response headers, CSRF
//! refusals, an agent made in the console seen over REST, audit entries naming the human,
//! and HTML mail shown only as text.

use legate_tests::TestServer;
use reqwest::header::{HeaderMap, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

pub struct Browser {
    base: String,
    pub http: reqwest::Client,
    /// The cookies set so far (name=value).
    jar: Vec<(String, String)>,
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The form token of the page (every form carries the same one).
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("csrf field")
            + 19;
        self.body[at..]
            .split('"')
            .next()
            .expect("value")
            .to_string()
    }
}

impl Browser {
    pub fn new(server: &TestServer) -> Browser {
        Browser {
            base: server.base.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            jar: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().expect("ascii");
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').expect("name=value");
            self.jar.retain(|(n, _)| n != k);
            if !attrs.contains("Max-Age=0") {
                self.jar.push((k.to_string(), v.to_string()));
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.jar.is_empty() {
            req
        } else {
            req.header(COOKIE, self.cookie_header())
        };
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.remember(&headers);
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// GETs `form_page`, then posts `form` to `action` with that page's token.
    pub async fn submit(&mut self, form_page: &str, action: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get(form_page).await.csrf();
        let mut fields = vec![("csrf", token.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }
}

/// A browser signed in for the first time with the admin token (which sets the password).
pub async fn first_sign_in(server: &TestServer) -> Browser {
    let mut b = Browser::new(server);
    let p = b
        .submit(
            "/console/login/first",
            "/console/login/first",
            &[
                ("token", &server.admin_token),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location(), "/console/");
    b
}

async fn sign_in(server: &TestServer, password: &str) -> (Browser, Page) {
    let mut b = Browser::new(server);
    let p = b
        .submit(
            "/console/login",
            "/console/login",
            &[("email", "admin@agents.test"), ("password", password)],
        )
        .await;
    (b, p)
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_pages_carry_strict_headers() {
    let server = TestServer::start().await;
    let mut anon = Browser::new(&server);
    let p = anon.get("/console/").await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location(), "/console/login");

    // A wrong admin token does not set a password.
    let p = anon
        .submit(
            "/console/login/first",
            "/console/login/first",
            &[
                ("token", "lg_nope"),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 401);

    let mut b = Browser::new(&server);
    let token = b.get("/console/login/first").await.csrf();
    let p = b
        .post(
            "/console/login/first",
            &[
                ("csrf", &token),
                ("token", &server.admin_token),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let cookie = p
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("lg_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Plain HTTP on loopback (local development): no Secure, so the browser keeps it.
    assert!(!cookie.contains("Secure"), "{cookie}");

    let p = b.get("/console/").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Overview of agents.test"));
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(p.headers["x-frame-options"], "DENY");
    assert_eq!(p.headers["x-content-type-options"], "nosniff");
    assert_eq!(p.headers["cache-control"], "no-store");
    assert!(!p.body.contains("<script>") && !p.body.contains(" style="));

    // A second first sign-in is refused: the password exists.
    let mut again = Browser::new(&server);
    let p = again
        .submit(
            "/console/login/first",
            "/console/login/first",
            &[
                ("token", &server.admin_token),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await;
    assert_eq!(p.status, 409);

    // The session cookie presented for another host is refused.
    let stolen = b.cookie_header();
    let resp = b
        .http
        .get(format!("{}/console/", server.base))
        .header(COOKIE, &stolen)
        .header(HOST, "console.elsewhere.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);

    // Sign out: the old cookie opens nothing.
    let token = b.get("/console/").await.csrf();
    let p = b.post("/console/logout", &[("csrf", &token)]).await;
    assert_eq!(p.status, 303);
    let resp = b
        .http
        .get(format!("{}/console/", server.base))
        .header(COOKIE, &stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);

    // Password sign-in: wrong is 401 and audited, right opens a session.
    let (_, p) = sign_in(&server, "wrong password here").await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("Wrong email or password"));
    let (mut b, p) = sign_in(&server, PASSWORD).await;
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/console/agents").await.status, 200);
    let (st, v) = server
        .call(
            "GET",
            "/v1/audit?action=auth.denied",
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    // Failures from one address are aggregated (the first written in full, the rest counted).
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["peer"] == "127.0.0.1"),
        "{v}"
    );
}

#[tokio::test]
async fn posts_without_the_form_token_are_refused() {
    let server = TestServer::start().await;
    let mut b = first_sign_in(&server).await;
    let form = [("local", "nocsrf"), ("scopes", "mail:read")];
    let p = b.post("/console/agents", &form).await;
    assert_eq!(p.status, 403);
    let p = b
        .post(
            "/console/agents",
            &[("csrf", "forged"), ("local", "nocsrf")],
        )
        .await;
    assert_eq!(p.status, 403);
    // The right token from another origin is refused too.
    let token = b.get("/console/agents/new").await.csrf();
    let req = b
        .http
        .post(format!("{}/console/agents", server.base))
        .header(ORIGIN, "https://evil.test")
        .form(&[("csrf", token.as_str()), ("local", "nocsrf")]);
    assert_eq!(b.send(req).await.status, 403);
    // The sign-in form without its pre-session token.
    let mut anon = Browser::new(&server);
    let p = anon
        .post(
            "/console/login",
            &[("email", "admin@agents.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 403);
    let (st, _) = server
        .call(
            "GET",
            "/v1/agents/nocsrf@agents.test",
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn an_agent_made_in_the_console_works_over_rest_and_the_audit_names_the_human() {
    let server = TestServer::start().await;
    let mut b = first_sign_in(&server).await;
    let p = b
        .submit(
            "/console/agents/new",
            "/console/agents",
            &[
                ("local", "web"),
                ("name", "Web bot"),
                ("scopes", "mail:read"),
                ("scopes", "vault:read"),
            ],
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let at = p.body.find("id=\"new-key\">").expect("key shown") + 13;
    let key = p.body[at..].split('<').next().unwrap().to_string();
    assert!(key.starts_with("lg_"));
    let (st, who) = server.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(st, 200, "{who}");
    assert_eq!(who["address"], "web@agents.test");
    let mut scopes: Vec<&str> = who["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["mail:read", "vault:read"]);

    // The agent page lists its key; revoking it there stops it.
    let id = who["id"].as_str().unwrap().to_string();
    let key_id = who["key_id"].as_str().unwrap().to_string();
    let page = b.get(&format!("/console/agents/{id}")).await;
    assert!(page.body.contains(&key_id));
    assert!(page.body.contains("human:admin@agents.test"));
    let p = b
        .post(
            &format!("/console/agents/{id}/keys/{key_id}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, 303);
    let (st, _) = server.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(st, 401);

    // The audit log says the human did it, through a console session.
    let (_, v) = server
        .call(
            "GET",
            "/v1/audit?action=agent.create",
            Some(&server.admin_token),
            None,
        )
        .await;
    let e = &v["items"][0];
    assert_eq!(e["actor"]["kind"], "human", "{e}");
    assert_eq!(e["chain"][0], "human:admin@agents.test");
    assert!(
        e["detail"]["key_id"]
            .as_str()
            .unwrap()
            .starts_with("console:"),
        "{e}"
    );
    let (_, v) = server
        .call(
            "GET",
            "/v1/audit?action=key.revoke",
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(v["items"][0]["actor"]["kind"], "human", "{v}");

    // Revoking the agent through its confirmation page.
    let confirm = b.get(&format!("/console/agents/{id}/revoke")).await;
    assert!(confirm.body.contains("crypto-shred"));
    let p = b
        .post(
            &format!("/console/agents/{id}/revoke"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(p.status, 303);
    let (_, a) = server
        .call(
            "GET",
            &format!("/v1/agents/{id}"),
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(a["status"], "revoked");
}

#[tokio::test]
async fn html_mail_is_shown_only_as_text_with_codes_marked() {
    let server = TestServer::start().await;
    let (agent, _) = server.agent("inbox", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap();
    let raw = "From: Shop <noreply@shop.test>\r\nTo: inbox@agents.test\r\nSubject: Your code\r\n\
        MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
        <html><body><script>alert('x')</script><img src=\"https://track.test/p.gif\">\
        <p>Your verification code is <b>482915</b>.</p></body></html>\r\n";
    let m = server
        .deliver(id, legate::mailbox::Folder::Inbox, raw.as_bytes())
        .await;
    let mut b = first_sign_in(&server).await;
    let list = b.get(&format!("/console/mail?agent={id}")).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Your code"));
    let page = b.get(&format!("/console/mail/{id}/{}", m.id)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<mark class=\"code\">482915</mark>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"));
    assert!(!page.body.contains("<img"));
    assert!(!page.body.contains("track.test/p.gif\">"));
    let raw_page = b.get(&format!("/console/mail/{id}/{}/raw", m.id)).await;
    assert!(raw_page.body.contains("&lt;script&gt;alert"));
    // Reading was audited under the agent, naming the human's console session.
    let (_, v) = server
        .call(
            "GET",
            "/v1/audit?action=mail.get",
            Some(&server.admin_token),
            None,
        )
        .await;
    let e = &v["items"][0];
    assert_eq!(e["chain"][0], "human:admin@agents.test", "{e}");
    assert!(e["detail"]["key_id"]
        .as_str()
        .unwrap()
        .starts_with("console:"));
}

#[tokio::test]
async fn totp_is_a_second_factor_once_enrolled() {
    let server = TestServer::start().await;
    let mut b = first_sign_in(&server).await;
    let p = b
        .submit("/console/settings", "/console/settings/totp", &[])
        .await;
    assert_eq!(p.status, 200);
    let at = p.body.find("id=\"totp-seed\">").expect("seed shown") + 15;
    let seed = p.body[at..].split('<').next().unwrap().to_string();
    let secret = data_encoding::BASE32_NOPAD.decode(seed.as_bytes()).unwrap();
    let totp = legate::vault::totp::Totp::new(secret, legate::vault::totp::Algorithm::Sha1, 6, 30);
    let now = legate::util::now_unix() as u64;
    let csrf = p.csrf();
    let p = b
        .post(
            "/console/settings/totp/confirm",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(p.status, 422);
    let p = b
        .post(
            "/console/settings/totp/confirm",
            &[("csrf", &csrf), ("code", &totp.code_at(now))],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);

    // The password alone now opens only the code form.
    let (mut b2, p) = sign_in(&server, PASSWORD).await;
    assert_eq!(p.location(), "/console/login/totp");
    assert_eq!(b2.get("/console/agents").await.status, 303);
    let form = b2.get("/console/login/totp").await;
    let p = b2
        .post(
            "/console/login/totp",
            &[("csrf", &form.csrf()), ("code", "123")],
        )
        .await;
    assert_eq!(p.status, 401);
    let p = b2
        .post(
            "/console/login/totp",
            &[("csrf", &form.csrf()), ("code", &totp.code_at(now + 30))],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(b2.get("/console/agents").await.status, 200);
    // The same code cannot be used twice.
    let (mut b3, _) = sign_in(&server, PASSWORD).await;
    let form = b3.get("/console/login/totp").await;
    let p = b3
        .post(
            "/console/login/totp",
            &[("csrf", &form.csrf()), ("code", &totp.code_at(now + 30))],
        )
        .await;
    assert_eq!(p.status, 401);
    // Five wrong codes in one session end it: guessing goes back to the password.
    for _ in 0..3 {
        let p = b3
            .post(
                "/console/login/totp",
                &[("csrf", &form.csrf()), ("code", "000001")],
            )
            .await;
        assert_eq!(p.status, 401);
    }
    let p = b3
        .post(
            "/console/login/totp",
            &[("csrf", &form.csrf()), ("code", "000001")],
        )
        .await;
    assert_eq!((p.status, p.location()), (303, "/console/login"));
    let p = b3
        .post(
            "/console/login/totp",
            &[("csrf", &form.csrf()), ("code", &totp.code_at(now + 60))],
        )
        .await;
    // The session is gone: even the right code is refused, and nothing opens.
    assert_eq!(p.status, 403);
    assert_eq!(b3.get("/console/agents").await.status, 303);
}

#[tokio::test]
async fn every_page_renders_for_a_signed_in_operator() {
    let server = TestServer::start().await;
    let (agent, key) = server
        .agent("pages", &["mail:read", "vault:write", "vault:read"])
        .await;
    let id = agent["id"].as_str().unwrap();
    let (st, _) = server
        .call(
            "PUT",
            "/v1/vault/site",
            Some(&key),
            Some(
                serde_json::json!({"kind": "login", "username": "u", "password": "hunter2-secret"}),
            ),
        )
        .await;
    assert!(st == 200 || st == 201);
    let mut b = first_sign_in(&server).await;
    for path in [
        "/console/".to_string(),
        "/console/agents".into(),
        format!("/console/agents?q={id}"),
        "/console/agents/new".into(),
        format!("/console/agents/{id}"),
        "/console/mail".into(),
        format!("/console/mail?agent={id}&folder=INBOX"),
        "/console/audit".into(),
        "/console/audit?outcome=ok&action=agent.create".into(),
        "/console/dns".into(),
        "/console/queue".into(),
        "/console/queue?all=true".into(),
        "/console/vault".into(),
        format!("/console/vault?agent={id}"),
        "/console/settings".into(),
        "/console/assets/app.css".into(),
        "/console/assets/app.js".into(),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(!p.body.contains("hunter2-secret"), "{path} shows a secret");
    }
    let p = b.get(&format!("/console/vault?agent={id}")).await;
    assert!(p.body.contains("site"));
    let p = b
        .submit("/console/audit", "/console/audit/verify", &[])
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("The chain is intact"), "{}", p.body);
    assert_eq!(b.get("/console/nowhere").await.status, 404);
}

/// `legate admin password` reads the password from standard input (over the admin socket
/// when a server runs, on the store when none does); the console then accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_a_console_password() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let init = legate_tests::cli_init(&data, "pw.test");
    let cfg = super::admin_socket::served_config(init["config"].as_str().unwrap());
    let cfg_path = dir.path().join("served.toml").display().to_string();
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let set = move |password: &str| {
        let mut child = std::process::Command::new(legate_tests::legate_bin())
            .args(["--config", &cfg_path, "admin", "password"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run legate");
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = set("short");
    assert!(!short.status.success(), "a short password is refused");
    let out = set(PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin@pw.test"));

    let holder = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(holder, cfg).await;
    let mut b = Browser::new(&server);
    let p = b
        .submit(
            "/console/login",
            "/console/login",
            &[("email", "admin@pw.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location(), "/console/");
    // While it runs, the command goes through the admin socket and ends the sessions.
    let new = "another long password";
    let set2 = set.clone();
    let out = tokio::task::spawn_blocking(move || set2(new))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.get("/console/agents").await.status, 303);
}

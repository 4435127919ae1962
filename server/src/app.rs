//! Wiring: builds the services (`services`), binds the listeners, and owns the one shutdown
//! path (DESIGN §11). Nothing imports this module but the binary and the tests.

use crate::config::Config;
use crate::identity::Bootstrap;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::services::{did_host, resolver_config, Services};

/// Start-up choices that are not configuration.
#[derive(Default)]
pub struct StartOptions {
    /// `LEGATE_BOOTSTRAP_ADMIN_TOKEN`.
    pub bootstrap_token: Option<String>,
}

/// A started server: its bound addresses and the handle to stop it.
pub struct Running {
    pub services: Arc<Services>,
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// The certificate every TLS listener serves (swapped on ACME renewal).
    pub tls: Arc<crate::tls::CertResolver>,
    pub smtp_addr: Option<SocketAddr>,
    pub submission_addr: Option<SocketAddr>,
    pub submissions_addr: Option<SocketAddr>,
    pub imap_addr: Option<SocketAddr>,
    pub imaps_addr: Option<SocketAddr>,
    /// What the first start created (the admin token is in it once).
    pub bootstrap: Option<Bootstrap>,
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

async fn bind(what: &str, addr: &str) -> anyhow::Result<Option<TcpListener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))?;
    Ok(Some(l))
}

/// A mail-listener TLS config over the configured certificate (see [`crate::tls::Tls`]).
pub fn tls_config(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    Ok(crate::tls::Tls::from_config(config, None)?.mail_config()?)
}

fn inbound_context(s: &Services) -> anyhow::Result<crate::smtp::inbound::Inbound> {
    let mailauth = crate::mailauth::MailAuth::new(&resolver_config(&s.config)?)
        .context("cannot set up the DNS resolver (set dns.nameservers?)")?;
    Ok(crate::smtp::inbound::Inbound {
        hostname: s.config.server.hostname.clone(),
        limits: crate::smtp::inbound::Limits::from(&s.config.smtp)
            .with_spool_dir(s.config.storage.path.join("spool")),
        identity: s.identity.clone(),
        mailbox: s.mailbox.clone(),
        mailauth,
        audit: s.audit.clone(),
        metrics: s.metrics.clone(),
        queue: s.queue.clone(),
        reports: s.reports.clone(),
        // The one failure limiter, shared with REST, MCP and IMAP.
        auth_limiter: s.audit.denials().clone(),
        rejections: Default::default(),
    })
}

/// The REST API with MCP mounted at `/mcp`: the same on the HTTP and HTTPS listeners. Keys
/// over plain non-loopback HTTP are refused for both.
fn api_app(services: &Arc<Services>, shutdown: &CancellationToken) -> axum::Router {
    let mut api = crate::api::router(services.clone());
    if services.config.console.enabled {
        api = crate::console::router(services.clone()).merge(api);
    }
    api = crate::oauth::router(services.clone()).merge(api);
    api.nest_service(
        "/mcp",
        crate::mcp::router(services.clone(), shutdown.child_token()),
    )
    .layer(axum::middleware::from_fn_with_state(
        services.clone(),
        crate::api::require_tls_for_keys,
    ))
}

/// Binds every configured listener, then serves until [`Running::stop`].
pub async fn start(config: Config, opts: StartOptions) -> anyhow::Result<Running> {
    let http = bind("http", &config.listen.http).await?;
    let https = bind("https", &config.listen.https).await?;
    let smtp = bind("smtp", &config.listen.smtp).await?;
    let submission = bind("submission", &config.listen.submission).await?;
    let submissions = bind("submissions", &config.listen.submissions).await?;
    let imap = bind("imap", &config.listen.imap).await?;
    let imaps = bind("imaps", &config.listen.imaps).await?;
    let imap_addr = imap.as_ref().map(|l| l.local_addr()).transpose()?;
    let imaps_addr = imaps.as_ref().map(|l| l.local_addr()).transpose()?;
    let smtp_addr = smtp.as_ref().map(|l| l.local_addr()).transpose()?;
    let submission_addr = submission.as_ref().map(|l| l.local_addr()).transpose()?;
    let submissions_addr = submissions.as_ref().map(|l| l.local_addr()).transpose()?;
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let https_addr = https.as_ref().map(|l| l.local_addr()).transpose()?;
    // Clients reach the API over HTTPS when it is on.
    let did_host = did_host(&config, https_addr.or(http_addr).map(|a| a.port()));
    let services = Arc::new(Services::open(config, did_host)?);
    if let Some(problem) = services.audit.record_anchor_problem()? {
        tracing::error!(%problem, "audit head checkpoint mismatch; recorded in the log as audit.head_mismatch");
    }
    let bootstrap = services.bootstrap(opts.bootstrap_token.as_deref())?;
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    // Everything that can fail or take time happens before any listener serves.
    let tls =
        crate::tls::Tls::from_config(&services.config, Some((&services.store, &services.vault)))?;
    use crate::smtp::inbound::Kind;
    let mut smtp_listeners = Vec::new();
    for (l, kind) in [
        (smtp, Kind::Mx),
        (submission, Kind::Submission),
        (submissions, Kind::Submissions),
    ] {
        if let Some(l) = l {
            smtp_listeners.push((l, kind));
        }
    }
    let smtp_ctx = if smtp_listeners.is_empty() {
        None
    } else {
        Some((Arc::new(inbound_context(&services)?), tls.mail_config()?))
    };

    let limits = crate::api::serve::ServeLimits::from_config(&services.config.api);
    if let Some(listener) = https {
        let app = api_app(&services, &shutdown);
        let token = shutdown.clone();
        let listener = crate::tls::TlsListener::new(listener, tls.https_config()?, token.clone())?;
        tasks.push((
            "https",
            tokio::spawn(crate::api::serve::serve(listener, app, true, limits, token)),
        ));
    }
    if let Some(listener) = http {
        use crate::config::HttpMode;
        let mut router = match services.config.listen.http_mode {
            HttpMode::Full => api_app(&services, &shutdown),
            HttpMode::Redirect => crate::api::redirect_router(services.clone()),
        };
        if let Some(acme) = &tls.acme {
            router = acme.http01_router().merge(router);
        }
        let token = shutdown.clone();
        tasks.push((
            "http",
            tokio::spawn(crate::api::serve::serve(
                listener, router, false, limits, token,
            )),
        ));
    }
    if services.config.admin.socket {
        spawn_admin_socket(&services, &shutdown, &mut tasks)?;
    }
    {
        let queue = services.queue.clone();
        let token = shutdown.clone();
        tasks.push(("queue", tokio::spawn(queue.run(token))));
    }
    {
        // Not in `tasks`: a delivery in flight at shutdown is sent again after the restart.
        let retention = Duration::from_secs(
            services
                .config
                .events
                .retention_secs()
                .map_err(|e| anyhow::anyhow!("events.retention: {e}"))?,
        );
        let every = Duration::from_secs(services.config.events.prune_interval_secs);
        services
            .webhooks
            .dispatcher()
            .start(shutdown.clone(), retention, every)?;
        // DMARC aggregate and TLS-RPT reports go out once a day (each day and domain once).
        let reports = services.reports.clone();
        reports.set_outbox(crate::reports::Outbox {
            queue: services.queue.clone(),
            identity: services.identity.clone(),
            resolver: crate::reports::resolver(&resolver_config(&services.config)?)
                .map_err(|e| anyhow::anyhow!("cannot set up the report resolver: {e}"))?,
        });
        let c = &services.config;
        let enabled = c.dmarc.send_reports || c.reports.send_tls_reports;
        let every = Duration::from_secs(
            c.dmarc
                .report_interval_secs
                .min(c.reports.tls_report_interval_secs)
                .max(60),
        );
        let token = shutdown.clone();
        if enabled {
            // In `tasks`: stopping waits for it, so nothing holds the store after `stop`.
            let job = tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tick.tick() => {
                            if let Err(e) = reports.send_due().await {
                                tracing::error!(error = %e, "the report job failed");
                            }
                        }
                    }
                }
            });
            tasks.push(("reports", job));
        }
    }
    {
        // Search postings reach their blocks a batch at a time (`mailbox::search::merge`);
        // searches read what is still pending, so this only bounds how much that is.
        let mailbox = services.mailbox.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {
                        let mb = mailbox.clone();
                        match tokio::task::spawn_blocking(move || mb.merge_search_all()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "cannot merge search postings"),
                            Err(e) => tracing::error!(error = %e, "the search merge task failed"),
                        }
                    }
                }
            }
        });
    }
    {
        // Not in `tasks`: `stop` writes every pending summary itself.
        let audit = services.audit.clone();
        let token = shutdown.clone();
        let every = Duration::from_secs(services.config.limits.auth_denied_audit_interval_secs)
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = audit.flush_denials(false) {
                            tracing::error!(error = %e, "cannot write denial summaries");
                        }
                    }
                }
            }
        });
    }
    if let Some((ctx, tls)) = smtp_ctx {
        for (listener, kind) in smtp_listeners {
            let token = shutdown.clone();
            tasks.push((
                "smtp",
                tokio::spawn(crate::smtp::inbound::serve_as(
                    listener,
                    ctx.clone(),
                    Some(tls.clone()),
                    kind,
                    token,
                )),
            ));
        }
    }
    if imap.is_some() || imaps.is_some() {
        let ctx = Arc::new(crate::imap::Imap::new(
            services.config.server.hostname.clone(),
            services.config.imap.clone(),
            services.identity.clone(),
            services.mailbox.clone(),
            services.audit.clone(),
            services.metrics.clone(),
            services.audit.denials().clone(),
        ));
        let mail_tls = tls.mail_config()?;
        for (listener, implicit) in [(imap, false), (imaps, true)] {
            if let Some(listener) = listener {
                tasks.push((
                    if implicit { "imaps" } else { "imap" },
                    tokio::spawn(crate::imap::serve(
                        listener,
                        ctx.clone(),
                        Some(mail_tls.clone()),
                        implicit,
                        shutdown.clone(),
                    )),
                ));
            }
        }
    }
    if let Some(acme) = tls.acme.clone() {
        // Not in `tasks`: an order in flight is abandoned at shutdown, not drained.
        tokio::spawn(acme.run(shutdown.clone()));
    }
    // Several nodes on one store: what another node changed wakes and reloads here too.
    crate::nodes::follow(
        &services.store,
        crate::nodes::Followers {
            mailbox: services.mailbox.clone(),
            queue: services.queue.clone(),
            certificate: tls.acme.clone().map(|acme| {
                Arc::new(move || {
                    acme.reload();
                }) as Arc<dyn Fn() + Send + Sync>
            }),
        },
        shutdown.clone(),
    );
    tracing::info!(http = ?http_addr, https = ?https_addr, smtp = ?smtp_addr, submission = ?submission_addr, submissions = ?submissions_addr, imap = ?imap_addr, imaps = ?imaps_addr, domain = %services.config.server.domain, "legate started");
    Ok(Running {
        services,
        http_addr,
        https_addr,
        tls: tls.resolver.clone(),
        smtp_addr,
        submission_addr,
        submissions_addr,
        imap_addr,
        imaps_addr,
        bootstrap,
        shutdown,
        tasks,
    })
}

/// The CLI's way in while the server holds the store (`admin`). A path too long for a Unix
/// socket (108 bytes) or an unwritable directory is reported and the server runs without it:
/// mail matters more than the convenience, and the CLI then says the store is in use.
fn spawn_admin_socket(
    services: &Arc<Services>,
    shutdown: &CancellationToken,
    tasks: &mut Vec<(&'static str, JoinHandle<()>)>,
) -> anyhow::Result<()> {
    let path = services.config.storage.path.join(crate::admin::SOCKET_FILE);
    let listener = match crate::admin::socket::AdminListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot listen on the admin socket; the CLI cannot reach this server");
            return Ok(());
        }
    };
    let actor = services
        .identity
        .first_human()?
        .map(|h| crate::identity::Actor::cli(&h.id, &h.email));
    tracing::info!(path = %listener.path().display(), "admin socket listening");
    tasks.push((
        "admin",
        tokio::spawn(listener.serve(
            services.clone(),
            actor,
            services.config.admin.clone(),
            shutdown.clone(),
        )),
    ));
    Ok(())
}

impl Running {
    /// A token that, when cancelled, begins the shutdown (signal handlers hold it).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight work finish within the grace period, flushes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        // Long-polls would otherwise hold the HTTP drain for their whole timeout.
        self.services.mailbox.shutdown();
        self.services.streams.shutdown();
        let grace = Duration::from_secs(self.services.config.api.shutdown_grace_secs);
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(listener = name, "grace period over; cutting connections");
                    task.abort();
                }
            }
        }
        self.services.audit.flush_denials(true)?;
        self.services.audit.commit().await?;
        self.services.store.flush_blocking()?;
        // Connection tasks drop their handles to the services a moment after the listener
        // ends; waiting for them means the store is closed (and its lock released) when
        // `stop` returns, so a restart in the same process can open it.
        let release = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.services) > 1 && tokio::time::Instant::now() < release {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if Arc::strong_count(&self.services) > 1 {
            tracing::warn!("connections still hold the services after the grace period");
        }
        tracing::info!("legate stopped");
        Ok(())
    }

    /// Runs until `shutdown_token()` is cancelled, then stops.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        self.stop().await
    }
}

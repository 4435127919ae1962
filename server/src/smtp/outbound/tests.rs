//! The client against scripted servers over real loopback sockets.

use super::fake::{raw_server, Fake, Script};
use super::*;

pub(super) const MESSAGE: &[u8] =
    b"From: a@a.test\r\nTo: x@b.test\r\nSubject: hi\r\n\r\nHello.\r\n";

pub(super) fn no_dns() -> ResolverConfig {
    // Nothing listens there; static routes to IP literals never ask.
    ResolverConfig {
        nameservers: vec!["127.0.0.1:9".parse().unwrap()],
        timeout: Duration::from_millis(300),
    }
}

pub(super) fn quick(mut s: OutboundSettings) -> OutboundSettings {
    let t = Duration::from_secs(3);
    // One connection per delivery, so each test sees whole sessions; reuse has its own.
    s.connection_reuse = Duration::ZERO;
    s.connect_timeout = t;
    s.timeouts = SmtpTimeouts {
        greeting: t,
        mail: t,
        rcpt: t,
        data_init: t,
        data_block: t,
        data_end: t,
    };
    s
}

pub(super) fn routed(addr: SocketAddr, require_tls: bool) -> SmtpTransport {
    transport(addr, require_tls, Duration::ZERO)
}

/// A transport that keeps sessions for `linger` after each message.
fn reusing(addr: SocketAddr, linger: Duration) -> SmtpTransport {
    transport(addr, false, linger)
}

fn transport(addr: SocketAddr, require_tls: bool, linger: Duration) -> SmtpTransport {
    trusting(addr, require_tls, linger, Vec::new())
}

/// A routed transport that also trusts `roots` (as `outbound.danger_extra_roots_file`).
fn trusting(
    addr: SocketAddr,
    require_tls: bool,
    linger: Duration,
    roots: Vec<CertificateDer<'static>>,
) -> SmtpTransport {
    let route = RouteConfig {
        domain: "B.test".into(),
        next_hop: addr.to_string(),
        require_tls,
    };
    let mut s = quick(OutboundSettings::new("mx.a.test", vec![route], no_dns()));
    s.connection_reuse = linger;
    s.extra_roots = roots;
    SmtpTransport::new(s).unwrap()
}

/// A fake MX with STARTTLS and a self-signed certificate for `names`, and that certificate.
async fn tls_fake(names: &[&str]) -> (Fake, CertificateDer<'static>) {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let (cert, key) = crate::tls::self_signed(dir.path(), &names).unwrap();
    let root = crate::tls::read_certs(&cert).unwrap().remove(0);
    let fake = Fake::start(Script {
        tls: Some(crate::tls::server_config(&cert, &key).unwrap()),
        ..Script::default()
    })
    .await;
    (fake, root)
}

/// Sends one message to x@b.test and one to y@b.test; both must be delivered.
async fn deliver_two(t: &SmtpTransport, case: &str) {
    for rcpt in ["x@b.test", "y@b.test"] {
        let report = t.deliver(&env(&[rcpt]), MESSAGE).await;
        assert!(delivered(&report.outcomes[0]), "{case}: {report:?}");
    }
}

/// The second message went over a connection of its own, and each body arrived once.
fn second_connection_carried_the_second_message(fake: &Fake, case: &str) {
    let log = fake.log();
    assert_eq!(log.connections, 2, "{case}");
    assert_eq!(log.data, [MESSAGE, MESSAGE].concat(), "{case}");
}

pub(super) fn env(rcpts: &[&str]) -> Envelope {
    Envelope {
        mail_from: "a@a.test".into(),
        rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
        domain: "b.test".into(),
    }
}

pub(super) fn delivered(o: &RcptOutcome) -> bool {
    matches!(o, RcptOutcome::Delivered { .. })
}

pub(super) fn temporary(o: &RcptOutcome, prefix: &str) -> bool {
    matches!(o, RcptOutcome::Temporary { reply } if reply.starts_with(prefix))
}

pub(super) fn permanent(o: &RcptOutcome, prefix: &str) -> bool {
    matches!(o, RcptOutcome::Permanent { reply } if reply.starts_with(prefix))
}

#[tokio::test]
async fn delivers_over_a_static_route() {
    let fake = Fake::start(Script::default()).await;
    let t = routed(fake.addr, false);
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert_eq!(
        report.outcomes,
        vec![RcptOutcome::Delivered {
            reply: "250 2.0.0 Ok: queued".into()
        }]
    );
    assert_eq!(report.remote_host.as_deref(), Some("127.0.0.1 [127.0.0.1]"));
    let log = fake.log();
    assert_eq!(
        log.commands,
        vec![
            "EHLO mx.a.test",
            "MAIL FROM:<a@a.test>",
            "RCPT TO:<x@b.test>",
            "DATA",
            "QUIT"
        ]
    );
    assert_eq!(log.data, MESSAGE);
    // Without PIPELINING every command waited for the previous reply.
    let r = &log.replies_before;
    assert!(r.windows(2).all(|w| w[1] > w[0]), "{r:?}");
}

#[tokio::test]
async fn a_4xx_at_rcpt_defers_only_that_recipient() {
    let fake = Fake::start(Script {
        rcpt: vec![("x@b.test".into(), "450 4.2.1 Mailbox busy".into())],
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test", "y@b.test"]), MESSAGE)
        .await;
    assert_eq!(
        report.outcomes[0],
        RcptOutcome::Temporary {
            reply: "450 4.2.1 Mailbox busy".into()
        }
    );
    assert!(delivered(&report.outcomes[1]));
}

#[tokio::test]
async fn a_5xx_at_data_fails_everyone_permanently() {
    let fake = Fake::start(Script {
        data: "554 5.7.1 Not today".into(),
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test", "y@b.test"]), MESSAGE)
        .await;
    assert_eq!(report.outcomes.len(), 2);
    assert!(report
        .outcomes
        .iter()
        .all(|o| permanent(o, "554 5.7.1 Not today")));
    assert!(fake.log().data.is_empty());
}

#[tokio::test]
async fn a_5xx_at_mail_and_at_end_of_data() {
    let fake = Fake::start(Script {
        mail: "553 5.7.1 Sender rejected".into(),
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(permanent(&report.outcomes[0], "553 5.7.1"));
    assert!(!fake.log().commands.iter().any(|c| c.starts_with("RCPT")));

    let fake = Fake::start(Script {
        end: "452 4.3.1 Insufficient system storage".into(),
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "452 4.3.1"));
}

#[tokio::test]
async fn dot_stuffing_and_bare_lf() {
    let fake = Fake::start(Script::default()).await;
    let msg = b"Subject: dots\n\n.hidden\n..two\r\n.\r\nend";
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), msg)
        .await;
    assert!(delivered(&report.outcomes[0]));
    assert_eq!(
        fake.log().data,
        b"Subject: dots\r\n\r\n..hidden\r\n...two\r\n..\r\nend\r\n"
    );
}

#[tokio::test]
async fn pipelining_sends_mail_rcpts_and_data_at_once() {
    let fake = Fake::start(Script {
        ehlo: vec!["PIPELINING".into(), "SIZE 100000".into(), "8BITMIME".into()],
        rcpt: vec![("y@b.test".into(), "550 5.1.1 No such user".into())],
        ..Script::default()
    })
    .await;
    let msg = "Subject: caf\u{e9}\r\n\r\n\u{e9}t\u{e9}\r\n".as_bytes();
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test", "y@b.test", "z@b.test"]), msg)
        .await;
    assert!(delivered(&report.outcomes[0]));
    assert!(permanent(&report.outcomes[1], "550 5.1.1 No such user"));
    assert!(delivered(&report.outcomes[2]));
    let log = fake.log();
    let at = |verb: &str| {
        log.commands
            .iter()
            .position(|c| c.starts_with(verb))
            .unwrap()
    };
    let (mail, data) = (at("MAIL"), at("DATA"));
    assert_eq!(data - mail, 4, "{:?}", log.commands);
    let batch = &log.replies_before[mail..=data];
    assert!(batch.iter().all(|&r| r == batch[0]), "{batch:?}");
    assert_eq!(
        log.commands[mail],
        format!("MAIL FROM:<a@a.test> SIZE={} BODY=8BITMIME", msg.len())
    );
    assert_eq!(log.data, msg);
}

#[tokio::test]
async fn pipelining_with_every_recipient_refused_sends_no_body() {
    let fake = Fake::start(Script {
        ehlo: vec!["PIPELINING".into()],
        rcpt: vec![("x@b.test".into(), "550 5.1.1 No".into())],
        data: "554 5.5.1 No valid recipients".into(),
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(permanent(&report.outcomes[0], "550 5.1.1"));
    assert!(fake.log().data.is_empty());
}

#[tokio::test]
async fn size_limit_of_the_server_is_permanent() {
    let fake = Fake::start(Script {
        ehlo: vec!["SIZE 20".into()],
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(permanent(&report.outcomes[0], "552 5.3.4"), "{report:?}");
    assert!(!fake.log().commands.iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn helo_when_ehlo_is_refused() {
    let fake = Fake::start(Script {
        ehlo_reject: Some("502 5.5.2 What is EHLO".into()),
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), "8-bit \u{e9}\r\n".as_bytes())
        .await;
    assert!(delivered(&report.outcomes[0]));
    let log = fake.log();
    assert_eq!(
        log.commands[..3],
        ["EHLO mx.a.test", "HELO mx.a.test", "MAIL FROM:<a@a.test>"]
    );
}

#[tokio::test]
async fn starttls_when_offered() {
    let (fake, root) = tls_fake(&["127.0.0.1"]).await;
    let report = trusting(fake.addr, true, Duration::ZERO, vec![root])
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    let log = fake.log();
    assert_eq!(
        log.commands[..3],
        ["EHLO mx.a.test", "STARTTLS", "EHLO mx.a.test"]
    );
    assert_eq!(log.over_tls[..3], [false, false, true]);
    let mail = log
        .commands
        .iter()
        .position(|c| c.starts_with("MAIL"))
        .unwrap();
    assert!(log.over_tls[mail..].iter().all(|&t| t));
    assert!(log.data_over_tls);
    assert_eq!(log.data, MESSAGE);
    assert_eq!(report.tls, Some(TlsLevel::Verified));
}

#[tokio::test]
async fn required_tls_with_a_certificate_that_fails_is_deferred_not_downgraded() {
    // Self-signed and not trusted; then trusted but for another name.
    let cases = [
        (&["127.0.0.1"][..], false, "certificate-not-trusted"),
        (&["other.test"][..], true, "certificate-host-mismatch"),
    ];
    for (names, trust, reason) in cases {
        let (fake, root) = tls_fake(names).await;
        let roots = if trust { vec![root] } else { Vec::new() };
        let report = trusting(fake.addr, true, Duration::ZERO, roots)
            .deliver(&env(&["x@b.test"]), MESSAGE)
            .await;
        assert!(temporary(&report.outcomes[0], "451 4.7.5"), "{report:?}");
        assert!(report.outcomes[0].reply().contains(reason), "{report:?}");
        let log = fake.log();
        // One connection: no retry in clear text, and no mail command over the bad session.
        assert_eq!(log.connections, 1, "{reason}");
        assert!(
            !log.commands.iter().any(|c| c.starts_with("MAIL")),
            "{reason}"
        );
        assert!(log.data.is_empty(), "{reason}");
    }
}

#[tokio::test]
async fn opportunistic_delivery_records_the_level_it_reached() {
    let (fake, _) = tls_fake(&["127.0.0.1"]).await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(report.tls, Some(TlsLevel::Opportunistic));

    let (fake, root) = tls_fake(&["127.0.0.1"]).await;
    let report = trusting(fake.addr, false, Duration::ZERO, vec![root])
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(report.tls, Some(TlsLevel::Verified));

    let fake = Fake::start(Script::default()).await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(report.tls, Some(TlsLevel::None));
}

#[tokio::test]
async fn required_tls_without_starttls_sends_nothing() {
    let fake = Fake::start(Script::default()).await;
    let report = routed(fake.addr, true)
        .deliver(&env(&["x@b.test", "y@b.test"]), MESSAGE)
        .await;
    assert!(
        report.outcomes.iter().all(|o| temporary(o, "451 4.7.5")),
        "{report:?}"
    );
    let log = fake.log();
    assert!(!log.commands.iter().any(|c| c.starts_with("MAIL")));
    assert!(log.data.is_empty());
}

#[tokio::test]
async fn failed_opportunistic_tls_retries_in_clear_unless_required() {
    let script = Script {
        tls_broken: true,
        ..Script::default()
    };
    let fake = Fake::start(script.clone()).await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    let log = fake.log();
    assert_eq!(log.connections, 2);
    assert_eq!(log.data, MESSAGE);

    let fake = Fake::start(script).await;
    let report = routed(fake.addr, true)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "451 4.7.5"), "{report:?}");
    let log = fake.log();
    assert_eq!(log.connections, 1);
    assert!(log.data.is_empty());
}

#[tokio::test]
async fn unreachable_and_broken_servers_are_temporary() {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let report = routed(dead, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "451 4.4.1"), "{report:?}");

    let (addr, _task) = raw_server(b"HELLO? this is not SMTP\r\n").await;
    let report = routed(addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "451 4.4.2"), "{report:?}");

    // Never greets: the greeting timeout ends it.
    let (addr, _task) = raw_server(b"").await;
    let mut s = OutboundSettings::new("mx.a.test", Vec::new(), no_dns());
    s = quick(s);
    s.timeouts.greeting = Duration::from_millis(200);
    s.routes.push(RouteConfig {
        domain: "b.test".into(),
        next_hop: addr.to_string(),
        require_tls: false,
    });
    let report = SmtpTransport::new(s)
        .unwrap()
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "451 4.4.2"), "{report:?}");
    assert!(report.outcomes[0].reply().contains("timeout"));

    let fake = Fake::start(Script {
        close_after_data: true,
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "451 4.4.2"), "{report:?}");

    let (addr, _task) = raw_server(b"554 5.7.1 Go away\r\n").await;
    let report = routed(addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(permanent(&report.outcomes[0], "554 5.7.1 Go away"));
}

#[test]
fn settings_are_checked() {
    let bad = RouteConfig {
        domain: "b.test".into(),
        next_hop: "mx:notaport".into(),
        require_tls: false,
    };
    assert!(matches!(
        SmtpTransport::new(OutboundSettings::new("mx.a.test", vec![bad], no_dns())),
        Err(OutboundError::Route { .. })
    ));
    assert!(matches!(
        SmtpTransport::new(OutboundSettings::new("bad name", vec![], no_dns())),
        Err(OutboundError::Hostname(_))
    ));
}

#[tokio::test]
async fn oversized_and_unsafe_envelopes_never_reach_the_wire() {
    let fake = Fake::start(Script::default()).await;
    let mut s = quick(OutboundSettings::new(
        "mx.a.test",
        vec![RouteConfig {
            domain: "b.test".into(),
            next_hop: fake.addr.to_string(),
            require_tls: false,
        }],
        no_dns(),
    ));
    s.max_message_size = 10;
    let t = SmtpTransport::new(s).unwrap();
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(permanent(&report.outcomes[0], "552 5.3.4"));
    assert_eq!(fake.log().connections, 0);

    let t = routed(fake.addr, false);
    let report = t
        .deliver(&env(&["x@b.test>\r\nRSET", "y@b.test"]), MESSAGE)
        .await;
    assert!(permanent(&report.outcomes[0], "553 5.1.3"));
    assert!(delivered(&report.outcomes[1]));
    assert!(!fake.log().commands.iter().any(|c| c == "RSET"));
}

#[tokio::test]
async fn bytes_injected_after_starttls_are_refused() {
    let script = Script {
        tls_inject: true,
        ..Script::default()
    };
    let fake = Fake::start(script.clone()).await;
    let report = routed(fake.addr, true)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(temporary(&report.outcomes[0], "451 4.7.5"), "{report:?}");
    assert!(report.outcomes[0]
        .reply()
        .contains("ahead of the TLS handshake"));
    assert!(!fake.log().commands.iter().any(|c| c.starts_with("MAIL")));

    // Opportunistic: the same host again, in clear, on a fresh connection.
    let fake = Fake::start(script).await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["x@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(fake.log().connections, 2);
}

#[tokio::test]
async fn internationalised_addresses_need_smtputf8() {
    let fake = Fake::start(Script::default()).await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["j\u{f6}rg@b.test"]), MESSAGE)
        .await;
    assert!(permanent(&report.outcomes[0], "553 5.6.7"), "{report:?}");
    assert!(!fake.log().commands.iter().any(|c| c.starts_with("MAIL")));

    let fake = Fake::start(Script {
        ehlo: vec!["SMTPUTF8".into()],
        ..Script::default()
    })
    .await;
    let report = routed(fake.addr, false)
        .deliver(&env(&["j\u{f6}rg@b.test"]), MESSAGE)
        .await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    let log = fake.log();
    assert!(log
        .commands
        .contains(&"MAIL FROM:<a@a.test> SMTPUTF8".to_string()));
    assert!(log
        .commands
        .contains(&"RCPT TO:<j\u{f6}rg@b.test>".to_string()));
}

#[tokio::test]
async fn a_session_carries_the_next_message_and_quits_when_idle() {
    let fake = Fake::start(Script {
        ehlo: vec!["PIPELINING".into()],
        ..Script::default()
    })
    .await;
    let t = reusing(fake.addr, Duration::from_millis(300));
    deliver_two(&t, "").await;
    let log = fake.log();
    assert_eq!(log.connections, 1);
    assert_eq!(
        log.commands,
        vec![
            "EHLO mx.a.test",
            "MAIL FROM:<a@a.test>",
            "RCPT TO:<x@b.test>",
            "DATA",
            "MAIL FROM:<a@a.test>",
            "RCPT TO:<y@b.test>",
            "DATA",
        ]
    );
    assert_eq!(t.pool.idle_count(), 1);
    // Nobody needs it within the linger: QUIT, and the pool is empty.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.log().commands.last().map(String::as_str), Some("QUIT"));
    assert_eq!(t.pool.idle_count(), 0);
}

#[tokio::test]
async fn a_session_the_server_closed_while_idle_is_replaced() {
    let fake = Fake::start(Script {
        close_after_reply: true,
        ..Script::default()
    })
    .await;
    let t = reusing(fake.addr, Duration::from_secs(5));
    deliver_two(&t, "").await;
    second_connection_carried_the_second_message(&fake, "");
}

#[tokio::test]
async fn a_failed_transaction_does_not_leave_its_session_for_reuse() {
    let fake = Fake::start(Script {
        mail: "451 4.3.0 Try later".into(),
        ..Script::default()
    })
    .await;
    let t = reusing(fake.addr, Duration::from_secs(5));
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(temporary(&report.outcomes[0], "451 4.3.0"), "{report:?}");
    assert_eq!(t.pool.idle_count(), 0);
    assert_eq!(fake.log().commands.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn a_session_closing_with_421_is_replaced_before_the_message_is_sent() {
    for pipelining in [false, true] {
        let fake = Fake::start(Script {
            ehlo: if pipelining {
                vec!["PIPELINING".into()]
            } else {
                vec![]
            },
            refuse_after: 1,
            ..Script::default()
        })
        .await;
        let t = reusing(fake.addr, Duration::from_secs(5));
        let case = format!("pipelining {pipelining}");
        deliver_two(&t, &case).await;
        second_connection_carried_the_second_message(&fake, &case);
    }
}

#[tokio::test]
async fn a_session_with_unread_replies_is_not_reused() {
    // 250 to the end of data and, in the same write, a 421 nobody asked for yet.
    let fake = Fake::start(Script {
        end: "250 2.0.0 Ok: queued\r\n421 4.3.2 fake.test shutting down".into(),
        ..Script::default()
    })
    .await;
    let t = reusing(fake.addr, Duration::from_secs(5));
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(t.pool.idle_count(), 0);
    let report = t.deliver(&env(&["y@b.test"]), MESSAGE).await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(t.pool.idle_count(), 0);
    second_connection_carried_the_second_message(&fake, "");
}

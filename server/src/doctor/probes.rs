//! The individual checks of `legate doctor`. Each returns one [`Check`]; none panics or
//! gives up the whole run on a bad answer from the network.

use super::Check;
use crate::config::Config;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

fn timeout(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.doctor.timeout_secs.max(1))
}

/// The configured listeners: bound by the running server (it answers a connection), or free
/// for it to bind when it is stopped.
pub async fn listeners(cfg: &Config, server_running: bool) -> Vec<Check> {
    let l = &cfg.listen;
    let mut out = Vec::new();
    for (name, addr) in [
        ("smtp", &l.smtp),
        ("submission", &l.submission),
        ("submissions", &l.submissions),
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("http", &l.http),
        ("https", &l.https),
    ] {
        let what = format!("listen.{name}");
        if addr.is_empty() {
            continue;
        }
        let Some(sa) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            out.push(Check::fail(
                &what,
                format!("{addr} is not an address"),
                "set ip:port",
            ));
            continue;
        };
        if sa.port() == 0 {
            out.push(Check::skip(&what, format!("{addr}: an ephemeral port")));
            continue;
        }
        out.push(if server_running {
            let target = match sa.ip() {
                ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], sa.port())),
                ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, sa.port())),
                _ => sa,
            };
            match tokio::time::timeout(timeout(cfg), tokio::net::TcpStream::connect(target)).await {
                Ok(Ok(_)) => Check::ok(&what, format!("{addr} is accepting connections")),
                _ => Check::fail(
                    &what,
                    format!("the server runs but nothing accepts on {addr}"),
                    "look for a bind error in the server's log",
                ),
            }
        } else {
            match std::net::TcpListener::bind(sa) {
                Ok(_) => Check::ok(&what, format!("{addr} is free")),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Check::fail(
                    &what,
                    format!("{addr}: binding needs privilege"),
                    "run with CAP_NET_BIND_SERVICE (the systemd unit grants it) or use a port above 1023",
                ),
                Err(e) => Check::fail(
                    &what,
                    format!("{addr} cannot be bound: {e}"),
                    format!("stop what holds {addr} (ss -ltnp 'sport = :{}') or change listen.{name}", sa.port()),
                ),
            }
        });
    }
    out
}

/// The certificate the TLS listeners serve: present, matching its key, in its validity
/// period and not about to expire.
pub fn certificate(cfg: &Config, now: i64) -> Check {
    let name = "certificate";
    let (pem_path, source) = if !cfg.tls.cert.is_empty() {
        (Path::new(&cfg.tls.cert).to_path_buf(), "tls.cert")
    } else if !cfg.acme.directory.is_empty() {
        match crate::tls::acme::Acme::mirrored_validity(cfg) {
            Ok(Some(Some(v))) => return validity_check(cfg, name, "ACME certificate", v, now),
            Ok(_) => {
                return Check::warn(
                    name,
                    "ACME is configured but no certificate has been issued yet",
                    "start the server and make sure the ACME challenge port is reachable from the internet",
                )
            }
            Err(e) => return Check::fail(name, format!("the ACME certificate does not load: {e}"), "remove it to have it reissued"),
        }
    } else {
        (cfg.storage.path.join("tls-cert.pem"), "self-signed")
    };
    if source == "tls.cert" {
        if let Err(e) = crate::tls::load_files(&pem_path, Path::new(&cfg.tls.key)) {
            return Check::fail(
                name,
                format!("{}: {e}", pem_path.display()),
                "point tls.cert and tls.key at a matching PEM chain and key",
            );
        }
    }
    let pem = match std::fs::read(&pem_path) {
        Ok(p) => p,
        Err(_) if source == "self-signed" => {
            return Check::warn(
                name,
                "no certificate yet: a self-signed one is made at the first start",
                "configure [acme] (or [tls] cert and key) so clients can verify this host",
            )
        }
        Err(e) => {
            return Check::fail(
                name,
                format!("{}: {e}", pem_path.display()),
                "check tls.cert",
            )
        }
    };
    let v = match crate::tls::validity::of_pem(&pem) {
        Ok(v) => v,
        Err(e) => {
            return Check::fail(
                name,
                format!("{}: {e}", pem_path.display()),
                "replace it with a PEM certificate chain",
            )
        }
    };
    let c = validity_check(cfg, name, source, v, now);
    if source == "self-signed" && c.status == super::Status::Ok {
        return Check::warn(
            name,
            format!(
                "{} (self-signed: clients and senders will not trust it)",
                c.detail
            ),
            "configure [acme] or [tls] cert and key",
        );
    }
    c
}

fn validity_check(
    cfg: &Config,
    name: &str,
    source: &str,
    v: crate::tls::validity::Validity,
    now: i64,
) -> Check {
    let days = (v.not_after - now) / 86_400;
    if now < v.not_before {
        Check::fail(
            name,
            format!(
                "{source}: not valid before {}",
                crate::util::rfc3339(v.not_before)
            ),
            "check the clock, or the certificate's dates",
        )
    } else if now >= v.not_after {
        Check::fail(
            name,
            format!("{source}: expired {}", crate::util::rfc3339(v.not_after)),
            "renew the certificate",
        )
    } else if days < cfg.doctor.cert_warn_days as i64 {
        Check::warn(
            name,
            format!("{source}: expires in {days} day(s)"),
            "renew the certificate (ACME renews by itself when it can reach its CA)",
        )
    } else {
        Check::ok(
            name,
            format!(
                "{source}: valid until {} ({days} days)",
                crate::util::rfc3339(v.not_after)
            ),
        )
    }
}

/// Free space on the data filesystem against `storage.min_free_mb` (fail: new mail is being
/// refused) and `doctor.disk_warn_mb`.
pub fn disk(cfg: &Config) -> Check {
    let name = "disk";
    let path = &cfg.storage.path;
    let free = match fs2::available_space(path) {
        Ok(f) => f,
        Err(e) => {
            return Check::fail(
                name,
                format!("{}: {e}", path.display()),
                "create the data directory (legate init) or fix storage.path",
            )
        }
    };
    let mb = free / (1024 * 1024);
    if mb < cfg.storage.min_free_mb {
        Check::fail(
            name,
            format!(
                "{mb} MiB free, below storage.min_free_mb ({}): new mail is refused",
                cfg.storage.min_free_mb
            ),
            "free space on the data filesystem or grow it",
        )
    } else if mb < cfg.storage.min_free_mb + cfg.doctor.disk_warn_mb {
        Check::warn(
            name,
            format!("{mb} MiB free"),
            "free space soon: below storage.min_free_mb new mail is refused",
        )
    } else {
        Check::ok(name, format!("{mb} MiB free on {}", path.display()))
    }
}

/// The clock against an NTP server (`doctor.ntp_server`), else the `Date` of an HTTP answer
/// (`doctor.time_url`).
pub async fn clock(cfg: &Config) -> Check {
    let name = "clock";
    let d = &cfg.doctor;
    let measured = if !d.ntp_server.is_empty() {
        sntp_offset(&d.ntp_server, timeout(cfg))
            .await
            .map(|o| (o, format!("NTP {}", d.ntp_server)))
    } else if !d.time_url.is_empty() {
        http_date_offset(&d.time_url, timeout(cfg))
            .await
            .map(|o| (o, "the Date of an HTTP answer".to_string()))
    } else {
        return Check::skip(
            name,
            "no time source (set doctor.ntp_server or doctor.time_url)",
        );
    };
    let (offset, against) = match measured {
        Ok(m) => m,
        Err(e) => {
            return Check::warn(
                name,
                format!("cannot measure the clock: {e}"),
                "check doctor.ntp_server / doctor.time_url",
            )
        }
    };
    let skew = offset.abs();
    let max = d.max_clock_skew_secs as f64;
    let detail = format!("{offset:+.3} s against {against}");
    let fix = "run an NTP client (systemd-timesyncd, chrony): DKIM, TOTP and token expiry depend on the clock";
    if skew > max * 10.0 {
        Check::fail(name, detail, fix)
    } else if skew > max {
        Check::warn(name, detail, fix)
    } else {
        Check::ok(name, detail)
    }
}

/// Seconds between 1900 (NTP's epoch) and 1970.
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// SNTP (RFC 4330): the server's transmit time minus the midpoint of our send and receive.
async fn sntp_offset(server: &str, wait: Duration) -> Result<f64, String> {
    let sock = tokio::net::UdpSocket::bind(if server.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .await
    .map_err(|e| e.to_string())?;
    sock.connect(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let mut req = [0u8; 48];
    req[0] = 0x23; // LI 0, version 4, mode 3 (client)
    let sent = unix_now();
    sock.send(&req).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 128];
    let n = tokio::time::timeout(wait, sock.recv(&mut buf))
        .await
        .map_err(|_| format!("{server} did not answer"))?
        .map_err(|e| e.to_string())?;
    let received = unix_now();
    if n < 48 || buf[0] & 0x07 != 4 {
        return Err(format!("{server}: not an NTP server answer"));
    }
    let secs = u32::from_be_bytes([buf[40], buf[41], buf[42], buf[43]]) as f64;
    let frac = u32::from_be_bytes([buf[44], buf[45], buf[46], buf[47]]) as f64 / 4_294_967_296.0;
    if secs == 0.0 {
        return Err(format!("{server}: unsynchronised (no transmit time)"));
    }
    Ok(secs + frac - NTP_UNIX_OFFSET - (sent + received) / 2.0)
}

async fn http_date_offset(url: &str, wait: Duration) -> Result<f64, String> {
    let client = reqwest::Client::builder()
        .timeout(wait)
        .build()
        .map_err(|e| e.to_string())?;
    let sent = unix_now();
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let received = unix_now();
    let date = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{url}: no Date header"))?;
    let t = parse_http_date(date).ok_or_else(|| format!("{url}: bad Date {date:?}"))?;
    // Dates have whole seconds: half a second of rounding either way.
    Ok(t as f64 + 0.5 - (sent + received) / 2.0)
}

/// RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, to unix seconds.
fn parse_http_date(s: &str) -> Option<i64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, hms, "GMT"] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as u8 + 1;
    let date = time::Date::from_calendar_date(
        year.parse().ok()?,
        time::Month::try_from(m).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let mut t = hms.split(':').map(|p| p.parse::<u8>().ok());
    let time = time::Time::from_hms(t.next()??, t.next()??, t.next()??).ok()?;
    Some(date.with_time(time).assume_utc().unix_timestamp())
}

/// Forward-confirmed reverse DNS of `doctor.public_ip`: its PTR names `server.hostname`,
/// which resolves back to it.
pub async fn reverse_dns(cfg: &Config) -> Check {
    let name = "reverse dns";
    let ip_s = &cfg.doctor.public_ip;
    if ip_s.is_empty() {
        return Check::skip(name, "doctor.public_ip is not set");
    }
    let Ok(ip) = ip_s.parse::<std::net::IpAddr>() else {
        return Check::fail(
            name,
            format!("doctor.public_ip {ip_s:?} is not an IP address"),
            "set it to this host's public address",
        );
    };
    let servers = crate::dns::configured_nameservers(cfg).unwrap_or_default();
    let host = cfg
        .server
        .hostname
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let fix = format!("ask whoever owns {ip} (your hosting provider) to set its PTR to {host}, and publish {host} A/AAAA {ip}");
    match crate::dns::resolve::reverse_confirmed(ip, &servers, crate::dns::timeout(cfg)).await {
        Err(e) => Check::warn(
            name,
            format!("cannot look up the PTR of {ip}: {e}"),
            "check [dns] nameservers",
        ),
        Ok(names) if names.is_empty() => Check::fail(name, format!("{ip} has no PTR record"), fix),
        Ok(names) => match names.iter().find(|(n, _)| n.eq_ignore_ascii_case(&host)) {
            Some((_, true)) => Check::ok(name, format!("{ip} -> {host} -> {ip}")),
            Some((_, false)) => Check::fail(
                name,
                format!("{ip} -> {host}, but {host} does not resolve to {ip}"),
                fix,
            ),
            None => Check::fail(
                name,
                format!(
                    "{ip} -> {}, not {host}",
                    names
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                fix,
            ),
        },
    }
}

/// A TCP connection to `doctor.outbound_test_host`: many providers block outbound port 25.
pub async fn outbound_25(cfg: &Config) -> Check {
    let name = "outbound port 25";
    let host = &cfg.doctor.outbound_test_host;
    if host.is_empty() {
        return Check::skip(name, "doctor.outbound_test_host is not set");
    }
    match tokio::time::timeout(timeout(cfg), tokio::net::TcpStream::connect(host.as_str())).await {
        Ok(Ok(_)) => Check::ok(name, format!("connected to {host}")),
        Ok(Err(e)) => Check::fail(name, format!("{host}: {e}"), "your network blocks outbound SMTP: ask the provider to open port 25, or relay through a smarthost ([[outbound.route]])"),
        Err(_) => Check::fail(name, format!("{host}: no answer within {} s", timeout(cfg).as_secs()), "outbound port 25 is probably filtered: ask the provider to open it, or relay through a smarthost ([[outbound.route]])"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_and_junk_does_not() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "a b c d e GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn certificate_validity_has_three_outcomes() {
        let cfg = Config::default();
        let v = crate::tls::validity::Validity {
            not_before: 1000,
            not_after: 1000 + 90 * 86_400,
        };
        assert_eq!(
            validity_check(&cfg, "c", "x", v, 2000).status,
            super::super::Status::Ok
        );
        assert_eq!(
            validity_check(&cfg, "c", "x", v, v.not_after - 86_400).status,
            super::super::Status::Warn
        );
        assert_eq!(
            validity_check(&cfg, "c", "x", v, v.not_after).status,
            super::super::Status::Fail
        );
        assert_eq!(
            validity_check(&cfg, "c", "x", v, 10).status,
            super::super::Status::Fail
        );
    }
}

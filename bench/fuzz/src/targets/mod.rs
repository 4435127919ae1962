//! The fuzz targets, one file per surface.

pub mod http;
pub mod mailauth;
pub mod mime;
pub mod selftest;
pub(crate) mod server;
pub mod session;
pub mod smtp_proto;

/// SMTP verbs and pieces of commands, for the SMTP targets' dictionaries.
pub const SMTP_DICT: &[&[u8]] = &[
    b"EHLO ",
    b"HELO ",
    b"MAIL FROM:<",
    b"RCPT TO:<",
    b"DATA\r\n",
    b"BDAT ",
    b" LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"VRFY ",
    b"AUTH PLAIN ",
    b"AUTH LOGIN\r\n",
    b"STARTTLS\r\n",
    b"> SIZE=",
    b" BODY=8BITMIME",
    b" SMTPUTF8",
    b" NOTIFY=SUCCESS,FAILURE",
    b" ORCPT=rfc822;",
    b"@agents.test>",
    b"fuzz@agents.test",
    b"<>",
    b"\r\n.\r\n",
    b"\r\n..",
    b"\x00",
];

/// MIME pieces, for the message targets' dictionaries.
pub const MIME_DICT: &[&[u8]] = &[
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n",
    b"Content-Type: multipart/alternative; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/html; charset=\"iso-2022-jp\"\r\n",
    b"Content-Type: text/plain; charset=utf-7\r\n",
    b"Content-Type: text/plain; format=flowed; delsp=yes\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.txt\r\n",
    b"\r\n--b\r\n",
    b"\r\n--b--\r\n",
    b"--",
    b"From: a@b.test\r\n",
    b"From: \"=?utf-8?q?B=C3=A4nk?=\" <x@bank.test>\r\n",
    b"Subject: =?utf-8?b?w6k=?=\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=bank.test; s=sel; h=from; bh=; b=\r\n",
    b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=bank.test; s=sel; b=\r\n",
    b"ARC-Message-Signature: i=1; a=rsa-sha256; d=bank.test; s=sel; h=from; bh=; b=\r\n",
    b"ARC-Authentication-Results: i=1; x; dkim=pass\r\n",
    b"=\r\n",
    b"=3D",
    b"=FF",
    b"<html><body><a href=\"https://x.test/verify?c=1\">",
    b"</a></body></html>",
    b"<blockquote>",
    b"Your code is 123456",
    b"On Mon, 1 Jan 2024, a wrote:\r\n> ",
    b"\r\n-- \r\n",
    b"\r\n\t",
];

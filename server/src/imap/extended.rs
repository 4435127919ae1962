//! The command forms imap-codec does not parse yet: the `RETURN (...)` options of SEARCH
//! (RFC 4731 ESEARCH, RFC 9051 §6.4.4) and the selection and return options of LIST
//! (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS).
//!
//! They are lifted out of the command line — only these options, only atoms and one
//! nested STATUS list — and the rest is handed to the codec as a plain SEARCH or LIST, so
//! the grammar of everything else stays the codec's. Anything unexpected is left as it
//! is and the codec answers BAD, as for any other malformed command.

/// Options lifted from a command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extended {
    /// SEARCH RETURN options (upper-case); `Some(empty)` means `RETURN ()`, i.e. ALL.
    pub search_return: Option<Vec<String>>,
    /// LIST selection options (upper-case).
    pub list_select: Vec<String>,
    /// LIST RETURN options (upper-case), without STATUS.
    pub list_return: Vec<String>,
    /// LIST RETURN (STATUS (...)) items (upper-case).
    pub list_status: Option<Vec<String>>,
}

/// Finds `(...)` starting at `open` (which must be `(`), allowing one level of nesting;
/// returns the index just past the matching `)`.
fn group_end(line: &[u8], open: usize) -> Option<usize> {
    if line.get(open) != Some(&b'(') {
        return None;
    }
    let mut depth = 0u32;
    for (i, b) in line.iter().enumerate().skip(open) {
        match b {
            b'(' => {
                depth += 1;
                if depth > 2 {
                    return None;
                }
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' | b'{' | b'\\' => return None,
            _ => {}
        }
    }
    None
}

/// Upper-case atoms of a `(a b (c d))` group: the top-level ones, and the nested list that
/// follows `STATUS`.
fn atoms(group: &[u8]) -> Option<(Vec<String>, Option<Vec<String>>)> {
    let inner = std::str::from_utf8(group.get(1..group.len().checked_sub(1)?)?).ok()?;
    let mut top = Vec::new();
    let mut nested = None;
    let mut rest = inner.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('(') {
            let end = r.find(')')?;
            let items: Vec<String> = r[..end]
                .split_ascii_whitespace()
                .map(str::to_ascii_uppercase)
                .collect();
            nested = Some(items);
            rest = r[end + 1..].trim_start();
            continue;
        }
        let end = rest.find([' ', '(']).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        top.push(word.to_ascii_uppercase());
        rest = rest[end..].trim_start();
    }
    Some((top, nested))
}

/// The words of the first line up to `n` (tag, then command words).
fn words(line: &[u8], n: usize) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in line.iter().enumerate() {
        if *b == b' ' || *b == b'\r' || *b == b'\n' {
            if i > start {
                out.push((start, &line[start..i]));
                if out.len() == n {
                    break;
                }
            }
            start = i + 1;
        }
    }
    out
}

/// The command with the extended options removed, and the options; None when the command
/// has none (decode it as it is).
pub fn rewrite(msg: &[u8]) -> Option<(Vec<u8>, Extended)> {
    let first_end = msg.iter().position(|b| *b == b'\n').unwrap_or(msg.len());
    let first = &msg[..first_end];
    let w = words(first, 4);
    let mut ext = Extended::default();
    let is = |i: usize, s: &str| {
        w.get(i)
            .is_some_and(|(_, x)| x.eq_ignore_ascii_case(s.as_bytes()))
    };
    // [tag] [UID] SEARCH RETURN (...)
    let search_at = if is(1, "SEARCH") {
        Some(2)
    } else if is(1, "UID") && is(2, "SEARCH") {
        Some(3)
    } else {
        None
    };
    if let Some(i) = search_at {
        if !is(i, "RETURN") {
            return None;
        }
        let (start, word) = w[i];
        let open = start + word.len() + 1;
        let end = group_end(first, open)?;
        let (opts, nested) = atoms(&first[open..end])?;
        if nested.is_some() {
            return None;
        }
        ext.search_return = Some(opts);
        let mut out = msg[..start].to_vec();
        let skip = if first.get(end) == Some(&b' ') {
            end + 1
        } else {
            end
        };
        out.extend_from_slice(&msg[skip..]);
        return Some((out, ext));
    }
    if !is(1, "LIST") {
        return None;
    }
    let (lstart, lword) = w[1];
    let mut out = msg.to_vec();
    let mut changed = false;
    // Trailing `RETURN (...)` on the last line.
    let last_start = out[..out.len().saturating_sub(1)]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let lower = out[last_start..].to_ascii_uppercase();
    if let Some(p) = lower.windows(9).rposition(|x| x == b" RETURN (") {
        let open = last_start + p + 8;
        let end = group_end(&out, open)?;
        if out[end..].iter().any(|b| !b.is_ascii_whitespace()) {
            return None;
        }
        let (opts, nested) = atoms(&out[open..end])?;
        ext.list_return = opts.into_iter().filter(|o| o != "STATUS").collect();
        ext.list_status = nested;
        out.drain(last_start + p..end);
        changed = true;
    }
    // Leading selection options: `LIST (opts) ref pattern`.
    let open = lstart + lword.len() + 1;
    if out.get(open) == Some(&b'(') {
        let end = group_end(&out, open)?;
        let (opts, nested) = atoms(&out[open..end])?;
        if nested.is_some() {
            return None;
        }
        ext.list_select = opts;
        let skip = if out.get(end) == Some(&b' ') {
            end + 1
        } else {
            end
        };
        out.drain(open..skip);
        changed = true;
    }
    changed.then_some((out, ext))
}

/// A BAD answer's reason for a command the codec refused.
pub fn diagnose(msg: &[u8]) -> String {
    let first = msg.split(|b| *b == b'\n').next().unwrap_or_default();
    let w = words(first, 3);
    match w.get(1) {
        None => "Missing command".to_string(),
        Some((_, name)) => {
            let name: String = String::from_utf8_lossy(name)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .take(32)
                .collect::<String>()
                .to_ascii_uppercase();
            const KNOWN: [&str; 40] = [
                "CAPABILITY",
                "NOOP",
                "LOGOUT",
                "STARTTLS",
                "AUTHENTICATE",
                "LOGIN",
                "ENABLE",
                "ID",
                "NAMESPACE",
                "SELECT",
                "EXAMINE",
                "CREATE",
                "DELETE",
                "RENAME",
                "SUBSCRIBE",
                "UNSUBSCRIBE",
                "LIST",
                "LSUB",
                "STATUS",
                "APPEND",
                "IDLE",
                "CHECK",
                "CLOSE",
                "UNSELECT",
                "EXPUNGE",
                "SEARCH",
                "FETCH",
                "STORE",
                "COPY",
                "MOVE",
                "UID",
                "GETQUOTA",
                "GETQUOTAROOT",
                "SETQUOTA",
                "DONE",
                "ESEARCH",
                "SORT",
                "THREAD",
                "COMPRESS",
                "GETMETADATA",
            ];
            if KNOWN.contains(&name.as_str()) {
                format!("Syntax error in {name} arguments")
            } else {
                format!("Unknown command {name}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> Option<(String, Extended)> {
        rewrite(s.as_bytes()).map(|(b, e)| (String::from_utf8(b).unwrap(), e))
    }

    #[test]
    fn search_return_options_are_lifted() {
        let (cmd, e) = rw("a UID SEARCH RETURN (MIN max COUNT) UNSEEN\r\n").unwrap();
        assert_eq!(cmd, "a UID SEARCH UNSEEN\r\n");
        assert_eq!(e.search_return.unwrap(), vec!["MIN", "MAX", "COUNT"]);
        let (cmd, e) = rw("b SEARCH RETURN () ALL\r\n").unwrap();
        assert_eq!(cmd, "b SEARCH ALL\r\n");
        assert_eq!(e.search_return.unwrap(), Vec::<String>::new());
        let (cmd, _) = rw("c SEARCH RETURN (ALL) CHARSET UTF-8 TEXT {2}\r\nhé\r\n").unwrap();
        assert_eq!(cmd, "c SEARCH CHARSET UTF-8 TEXT {2}\r\nhé\r\n");
        assert!(rw("d SEARCH UNSEEN\r\n").is_none());
        assert!(rw("e SEARCH RETURN (MIN \"x\") ALL\r\n").is_none());
    }

    #[test]
    fn list_options_are_lifted() {
        let (cmd, e) =
            rw("a LIST (SPECIAL-USE) \"\" \"*\" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n")
                .unwrap();
        assert_eq!(cmd, "a LIST \"\" \"*\"\r\n");
        assert_eq!(e.list_select, vec!["SPECIAL-USE"]);
        assert_eq!(e.list_return, vec!["CHILDREN"]);
        assert_eq!(e.list_status.unwrap(), vec!["MESSAGES", "UNSEEN"]);
        let (cmd, e) = rw("b list \"\" % return (special-use)\r\n").unwrap();
        assert_eq!(cmd, "b list \"\" %\r\n");
        assert_eq!(e.list_return, vec!["SPECIAL-USE"]);
        assert!(rw("c LIST \"\" *\r\n").is_none());
        assert!(rw("d LIST ((((x)))) \"\" *\r\n").is_none());
    }

    #[test]
    fn bad_commands_are_named() {
        assert_eq!(diagnose(b"a FROB x\r\n"), "Unknown command FROB");
        assert_eq!(
            diagnose(b"a FETCH (\r\n"),
            "Syntax error in FETCH arguments"
        );
        assert_eq!(diagnose(b"a\r\n"), "Missing command");
    }
}

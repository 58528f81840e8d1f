//! The forged-Received evals of SpamAssassin's HeaderEval plugin: a From address at a big freemail
//! provider whose Received lines do not show that provider's servers. The patterns are the providers'
//! own header formats as SpamAssassin 4.0 knows them; `get("Received")` is every Received field with
//! all whitespace runs turned into one blank.

use super::eval::re;
use crate::spam::view::View;

/// `$IP_ADDRESS`: an IPv4 or (loosely) IPv6 address.
const IP: &str = r"(?:\b(?:\d{1,3}\.){3}\d{1,3}\b|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*:[0-9A-Fa-f.]+)";

fn get(v: &View, spec: &str) -> Option<String> {
    v.header_for_rule(spec)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn received(v: &View, name: &str) -> Option<String> {
    get(v, name).map(|r| r.split_whitespace().collect::<Vec<_>>().join(" ") + " ")
}

/// Lists (ezmlm, MSN groups) that strip the original Received lines, and mail with none at all.
pub fn gated_through_received_hdr_remover(v: &View) -> bool {
    if let Some(ml) = get(v, "Mailing-List") {
        if re!(r"(?m)^contact \S+@\S+; run by ezmlm$").is_match(&ml) {
            let dlto = get(v, "Delivered-To").unwrap_or_default();
            let rcvd = get(v, "Received").unwrap_or_default();
            if re!(r"(?m)^mailing list \S+@\S+").is_match(&dlto)
                && re!(r"qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+")
                    .is_match(&rcvd)
            {
                return true;
            }
        }
    }
    match get(v, "Received") {
        None => true,
        Some(r) => re!(r"from groups\.msn\.com \(\S+\.msn\.com ").is_match(&r),
    }
}

fn msn_groups(v: &View) -> bool {
    let to = get(v, "To").unwrap_or_default();
    let Some(list) = re!(r"(?i)<(\S+)@groups\.msn\.com>")
        .captures(&to)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
    else {
        return false;
    };
    let rcvd = get(v, "Received").unwrap_or_default();
    let Some(server) = re!(r"from mail pickup service by ((?:p\d\d\.)groups\.msn\.com)\b")
        .captures(&rcvd)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
    else {
        return false;
    };
    let mid = get(v, "Message-Id").unwrap_or_default();
    let mid = mid.trim_start();
    if list == "notifications" {
        return mid.starts_with('<') && mid.contains(&format!("@{server}>"));
    }
    mid.starts_with(&format!("<{list}-"))
        && mid.contains("@groups.msn.com>")
        && get(v, "EnvelopeFrom:addr")
            .unwrap_or_default()
            .contains(&format!("{list}-bounce@groups.msn.com"))
}

/// Some(true): Received claims hotmail.com but is not Hotmail's (FORGED_HOTMAIL_RCVD);
/// Some(false): From is @hotmail.com but no Received shows Hotmail (FORGED_HOTMAIL_RCVD2);
/// None: neither.
pub fn hotmail(v: &View) -> Option<bool> {
    let rcvd = received(v, "Received").unwrap_or_default();
    // Some(true) needs "hotmail.com" in Received, Some(false) in From: the regexes below are for the
    // few messages that have either.
    let from = get(v, "From:addr").unwrap_or_default();
    if !rcvd.contains("hotmail.com") && !from.to_ascii_lowercase().contains("hotmail.com") {
        return None;
    }
    if rcvd.contains("from mail pickup service by hotmail.com with Microsoft SMTPSVC;") {
        return None;
    }
    if msn_groups(v) {
        return None;
    }
    let ip = get(v, "X-Originating-Ip").is_some_and(|x| re!(IP).is_match(&x));
    let orig = get(v, "X-OriginatorOrg")
        .is_some_and(|x| re!(r"hotmail\.com|msonline\-outlook").is_match(&x));
    if gated_through_received_hdr_remover(v) {
        return None;
    }
    let genuine = (ip
        && re!(r"from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ \)]").is_match(&rcvd))
        || (orig
            && re!(r"from \S*\.outbound\.protection\.outlook\.com \(\S+\.outbound\.protection\.outlook\.com[ \)]")
                .is_match(&rcvd))
        || (orig
            && regex_with_ip(r"from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \(", r"\)")
                .is_match(&rcvd))
        || (ip && regex_with_ip(r"from \S*\.hotmail.com \(\[", r"\][ \):]").is_match(&rcvd))
        || (ip && re!(r"from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;").is_match(&rcvd))
        || (ip && re!(r"from \[66\.218.\S+\] by \S+\.yahoo\.com").is_match(&rcvd));
    if genuine {
        return None;
    }
    if re!(r"(?:from |HELO |helo=)\S*hotmail\.com\b").is_match(&rcvd) {
        return Some(true);
    }
    re!(r"(?i)\bhotmail\.com\n?\z")
        .is_match(&from)
        .then_some(false)
}

/// `PREFIX $IP_ADDRESS SUFFIX`, compiled once per pattern pair.
fn regex_with_ip(prefix: &'static str, suffix: &'static str) -> &'static regex::Regex {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<(&'static str, &'static str), &'static regex::Regex>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut g = match cache.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.entry((prefix, suffix)).or_insert_with(|| {
        Box::leak(Box::new(
            regex::Regex::new(&format!("{prefix}{IP}{suffix}")).expect("static regex"),
        ))
    })
}

/// FORGED_YAHOO_RCVD: From @yahoo.com, but neither the relays nor the Received lines show Yahoo's
/// web mail, SMTP or groups servers.
pub fn yahoo(v: &View) -> bool {
    let from = get(v, "From:addr").unwrap_or_default();
    if !re!(r"(?i)\byahoo\.com\n?\z").is_match(&from) {
        return false;
    }
    let mut rcvd = received(v, "Received").unwrap_or_default();
    let nonempty = |n: &str| get(v, n).is_some_and(|x| !x.trim().is_empty());
    if nonempty("Resent-From") && nonempty("Resent-To") {
        if let Some(x) = received(v, "X-Received").filter(|x| !x.trim().is_empty()) {
            rcvd = x;
        }
    }
    if gated_through_received_hdr_remover(v) {
        return false;
    }
    let trusted = format!(" {} ", v.relays.trusted_str());
    let untrusted = v.relays.untrusted_str();
    if re!(r" rdns=\S+\.yahoo\.com ").is_match(&trusted)
        || re!(r"^[^\]]+ rdns=\S+\.yahoo\.com ").is_match(&untrusted)
    {
        return false;
    }
    if re!(r"by web\S+\.mail\S*\.yahoo\.com via HTTP").is_match(&rcvd)
        || re!(r"by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP").is_match(&rcvd)
        || re!(r"by smtp\S+\.yahoo\.com with SMTP").is_match(&rcvd)
        || regex_with_ip(
            r"from \[",
            r"\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP",
        )
        .is_match(&rcvd)
    {
        return false;
    }
    if re!(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b").is_match(&rcvd)
        && re!(r"(?i)@reply\.yahoo\.com\n?\z").is_match(&from)
    {
        return false;
    }
    !re!(r"by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+")
        .is_match(&rcvd)
}

/// From @eudoramail.com without WhoWhere's Received line and X-Sender-Ip.
pub fn eudoramail(v: &View) -> bool {
    let from = get(v, "From:addr").unwrap_or_default();
    if !re!(r"(?i)\beudoramail\.com\n?\z").is_match(&from) {
        return false;
    }
    let rcvd = received(v, "Received").unwrap_or_default();
    let ip = get(v, "X-Sender-Ip").is_some_and(|x| re!(IP).is_match(&x));
    if gated_through_received_hdr_remover(v) {
        return false;
    }
    !(ip && re!(r"by \S*whowhere.com;").is_match(&rcvd))
}

/// HeaderEval's check_for_forged_juno_received_headers: From @juno.com without the Received lines
/// and X-Mailer that Juno's servers (old style, with X-Originating-IP) or mail.com and untd.com's
/// web mail (new style) write.
pub fn juno(v: &View) -> bool {
    let from = super::eval::first_value(v, "From:addr");
    if !re!(r"(?i)\bjuno\.com\z").is_match(&from) || gated_through_received_hdr_remover(v) {
        return false;
    }
    if get(v, "X-Originating-IP").is_some_and(|x| !x.is_empty()) {
        let rcvd = get(v, "Received").unwrap_or_default();
        let xmailer = get(v, "X-Mailer").unwrap_or_default();
        let via_juno = regex_with_ip(r"from.*\b(?:juno|untd)\.com.*[\[\(]", r"[\]\)].*by");
        if !via_juno.is_match(&rcvd) && !re!(r" cookie\.(?:juno|untd)\.com ").is_match(&rcvd) {
            return true;
        }
        return !xmailer.contains("Juno ");
    }
    // New style (no X-Originating-IP): SpamAssassin checks the mail.com and untd.com web mail
    // Received lines and X-Mailer, but the branch ends in `$xorig !~ /$IP_ADDRESS/`, which the empty
    // X-Originating-IP always passes, so it answers yes whatever those say.
    true
}

/// HeaderEval's check_for_fake_aol_relay_in_rcvd: a Received line naming an AOL-style relay host
/// (` rly-xx00.`) that does not carry AOL's own relay software or queue-id formats.
pub fn fake_aol_relay(v: &View) -> bool {
    let rcvd = received(v, "Received").unwrap_or_default();
    re!(r"(?i) rly-[a-z][a-z]\d\d\.").is_match(&rcvd)
        && !re!(r"/AOL-\d+\.\d+\.\d+\)").is_match(&rcvd)
        && !re!(r"ESMTP id (?:RELAY|MAILRELAY|MAILIN)").is_match(&rcvd)
}

/// RelayEval's hostname_to_domain: the last two labels when the top one is 3 characters or more (or
/// holds `ie`, `fr` or `de`), else the last three; a name without letters (an address) as it is.
fn hostname_to_domain(host: &str) -> String {
    if !host.bytes().any(|b| b.is_ascii_alphabetic()) {
        return host.to_string();
    }
    // Perl's split drops trailing empty fields.
    let mut parts: Vec<&str> = host.split('.').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    let n = parts.len();
    let top_long = parts
        .last()
        .is_some_and(|t| re!(r"(?:\S{3,}|ie|fr|de)").is_match(t));
    if n > 1 && top_long {
        parts[n - 2..].join(".")
    } else if n > 2 {
        parts[n - 3..].join(".")
    } else {
        host.to_string()
    }
}

/// RelayEval's _check_for_forged_received, the count check_for_forged_received_trail reads: untrusted
/// hops whose `by` host (as a domain) is not the domain the next hop out called itself by reverse DNS,
/// i.e. a Received trail whose links do not join up.
pub fn forged_received_trail(v: &View) -> usize {
    let hops = &v.relays.untrusted;
    let domain = |s: &str| hostname_to_domain(&s.to_ascii_lowercase());
    let by: Vec<String> = hops.iter().map(|r| domain(&r.by)).collect();
    let mut from: Vec<Option<String>> = hops.iter().map(|r| Some(domain(&r.rdns))).collect();
    let host_like = re!(r"^\w+(?:[\w.-]+\.)+\w+\z");
    let localhost = re!(r"^localhost(?:\.localdomain)?\z");
    let mut mismatches = 0;
    for i in 0..hops.len() {
        if !host_like.is_match(&by[i]) {
            continue;
        }
        // Bouncing around inside one machine over the loopback interface is no forgery.
        if from[i].as_deref().is_some_and(|f| localhost.is_match(f)) && hops[i].ip == "127.0.0.1" {
            from[i] = None;
        }
        if i == 0 {
            continue;
        }
        if let Some(prev) = from[i - 1].as_deref() {
            let welcomed = by[i] == "msn.com" && prev == "hotmail.com";
            if host_like.is_match(prev) && by[i] != prev && !welcomed {
                mismatches += 1;
            }
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_of_hostnames() {
        assert_eq!(hostname_to_domain("mail.example.com"), "example.com");
        assert_eq!(hostname_to_domain("a.mail.example.co.uk"), "example.co.uk");
        assert_eq!(hostname_to_domain("mx.example.de"), "example.de");
        assert_eq!(hostname_to_domain("192.0.2.1"), "192.0.2.1");
        assert_eq!(hostname_to_domain("localhost"), "localhost");
    }

    /// Two untrusted hops: the inner one says it was handed the mail by `mx.sender.example`, but the
    /// outer one's host is in another domain.
    #[test]
    fn a_trail_that_does_not_join_up() {
        let hop = |from: &str, ip: &str, by: &str| {
            format!(
                "Received: from {from} ({from} [{ip}])\n\tby {by} with ESMTP id 1; \
                 Tue, 1 Oct 2002 10:00:00 +0000\n"
            )
        };
        let joined = format!(
            "{}{}",
            hop("mx.sender.example", "192.0.2.7", "in.rcpt.example"),
            hop("pc.sender.example", "192.0.2.9", "mx.sender.example")
        );
        let broken = format!(
            "{}{}",
            hop("mx.sender.example", "192.0.2.7", "in.rcpt.example"),
            hop("pc.other.example", "192.0.2.9", "relay.elsewhere.example")
        );
        assert_eq!(forged_received_trail(&view(&joined)), 0);
        assert_eq!(forged_received_trail(&view(&broken)), 1);
    }

    #[test]
    fn juno_claims() {
        let forged = |extra: &str| {
            juno(&view(&format!(
                "{extra}From: someone@juno.com\nTo: a@example.org\n"
            )))
        };
        // Old style: X-Originating-IP, a Juno Received line and a Juno X-Mailer.
        let rcvd = "Received: from m1.juno.com (m1.juno.com [64.136.24.1]) by mx.example.org with SMTP id 1\n";
        assert!(!forged(&format!(
            "{rcvd}X-Originating-IP: [192.0.2.1]\nX-Mailer: Juno 5.0.33\n"
        )));
        assert!(forged(&format!(
            "{rcvd}X-Originating-IP: [192.0.2.1]\nX-Mailer: Outlook\n"
        )));
        let other = "Received: from pc.example.net (pc.example.net [192.0.2.9]) by mx.example.org with SMTP id 2\n";
        assert!(forged(&format!(
            "{other}X-Originating-IP: [192.0.2.1]\nX-Mailer: Juno 5.0.33\n"
        )));
        // New style always ends up yes in SpamAssassin's code; mail with no Received line at all is
        // left alone (gated_through_received_hdr_remover).
        assert!(forged(&format!("{other}X-Mailer: Webmail Version 1\n")));
        assert!(!forged("X-Mailer: Webmail Version 1\n"));
        assert!(!juno(&view(
            "From: someone@example.com\nTo: a@example.org\n"
        )));
    }

    #[test]
    fn aol_relay_names() {
        let fake = "Received: from unknown (HELO mta05.example.com) (80.71.176.130) by\n\trly-xw01.mx.aol.com with QMQP; Sat, 15 Jun 2002 23:37:16 -0000\n";
        let real = "Received: from logs-tr.proxy.aol.com (logs-tr.proxy.aol.com [152.163.201.132])\n\tby rly-ip01.mx.aol.com (8.8.8/8.8.8/AOL-5.0.0)\n\twith ESMTP id NAA08955; Thu, 4 Apr 2002 13:11:20 -0500\n";
        assert!(fake_aol_relay(&view(fake)));
        assert!(!fake_aol_relay(&view(real)));
        assert!(!fake_aol_relay(&view("")));
    }

    fn view(headers: &str) -> View {
        View::new(format!("{headers}Subject: hi\nMessage-Id: <1@x>\n\nbody\n").as_bytes())
    }

    /// Both answers, the case-blind From test, and the fast "no hotmail.com anywhere" way out.
    #[test]
    fn hotmail_claims_and_forgeries() {
        let rcvd = "Received: from mx.example.net (mx.example.net [192.0.2.7])\n\tby in.example.org with ESMTP id 1; Tue, 1 Oct 2002 10:00:00 +0000\n";
        let v = view(&format!(
            "{rcvd}From: Someone <someone@HotMail.com>\nTo: a@example.org\n"
        ));
        assert_eq!(hotmail(&v), Some(false));
        let fake = "Received: from helo.hotmail.com (mx.example.net [192.0.2.7])\n\tby in.example.org with ESMTP id 1; Tue, 1 Oct 2002 10:00:00 +0000\n";
        let v = view(&format!(
            "{fake}From: someone@example.net\nTo: a@example.org\n"
        ));
        assert_eq!(hotmail(&v), Some(true));
        let v = view(&format!(
            "{rcvd}From: someone@example.net\nTo: a@example.org\n"
        ));
        assert_eq!(hotmail(&v), None);
    }
}

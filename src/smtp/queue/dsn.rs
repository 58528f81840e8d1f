//! Delivery status notifications (RFC 3464, carried in multipart/report per RFC 6522). Built only for a
//! non-null sender (RFC 5321 §4.5.5: never bounce a bounce), and sent with the null sender.

/// One failed recipient.
pub struct Failed<'a> {
    pub rcpt: &'a str,
    /// "5.1.1 ..." or "smtp; 550 5.1.1 ..." text; the status is taken from its first x.y.z.
    pub diagnostic: &'a str,
}

fn status_of(diag: &str) -> String {
    diag.split_whitespace()
        .find(|w| {
            let p: Vec<&str> = w.split('.').collect();
            p.len() == 3
                && matches!(p[0], "4" | "5")
                && p.iter()
                    .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        })
        // A temporary code that made us give up is reported as the permanent failure it became.
        .map(|s| match s.strip_prefix('4') {
            Some(rest) => format!("5{rest}"),
            None => s.to_string(),
        })
        .unwrap_or_else(|| "5.0.0".into())
}

/// Builds the bounce message. `original` is the queued message; only its header goes back (RET=HDRS is
/// the safe default: no copy of possibly large or sensitive bodies).
pub fn build(
    host: &str,
    sender: &str,
    queue_id: &str,
    arrival_ms: i64,
    failed: &[Failed<'_>],
    original: &[u8],
) -> Vec<u8> {
    let boundary = format!("{}/{host}", crate::message::spool::unique_id());
    let now = chrono::Local::now().to_rfc2822();
    let arrival = chrono::DateTime::from_timestamp_millis(arrival_ms)
        .map(|d| d.to_rfc2822())
        .unwrap_or_else(|| now.clone());
    let headers_end = memchr::memmem::find(original, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(original, b"\n\n"))
        .unwrap_or(original.len());
    let headers = String::from_utf8_lossy(&original[..headers_end]).replace("\r\n", "\n");
    // RFC 6533: a report naming a UTF-8 address, or quoting UTF-8 headers, is a global one, with
    // `utf-8` address types; it goes out with SMTPUTF8 (the runner sees the UTF-8 in it).
    let global = !headers.is_ascii() || failed.iter().any(|f| !f.rcpt.is_ascii());
    let (charset, status_type, headers_type, addr_type) = if global {
        (
            "utf-8",
            "message/global-delivery-status",
            "message/global-headers",
            "utf-8",
        )
    } else {
        (
            "us-ascii",
            "message/delivery-status",
            "text/rfc822-headers",
            "rfc822",
        )
    };
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\n"
    ));
    m.push_str(&format!("To: <{sender}>\n"));
    m.push_str("Subject: Undelivered Mail Returned to Sender\n");
    m.push_str(&format!("Date: {now}\n"));
    m.push_str(&format!(
        "Message-ID: <{}.dsn@{host}>\n",
        crate::message::spool::unique_id()
    ));
    m.push_str("Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
    m.push_str(&format!("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\n"));
    m.push_str("This is a MIME-encapsulated message.\n\n");
    m.push_str(&format!("--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset={charset}\n\n"));
    m.push_str(&format!("This is the mail system at host {host}.\n\nYour message could not be delivered to one or more recipients.\n\n"));
    for f in failed {
        m.push_str(&format!("<{}>: {}\n", f.rcpt, f.diagnostic));
    }
    m.push_str(&format!(
        "\n--{boundary}\nContent-Description: Delivery report\nContent-Type: {status_type}\n\n"
    ));
    m.push_str(&format!(
        "Reporting-MTA: dns; {host}\nX-Correo-Queue-ID: {queue_id}\nArrival-Date: {arrival}\n"
    ));
    for f in failed {
        let diag: String = f.diagnostic.chars().filter(|c| !c.is_control()).collect();
        m.push_str(&format!("\nFinal-Recipient: {addr_type}; {}\nAction: failed\nStatus: {}\nDiagnostic-Code: smtp; {}\n", f.rcpt, status_of(&diag), diag));
    }
    m.push_str(&format!("\n--{boundary}\nContent-Description: Undelivered Message Headers\nContent-Type: {headers_type}\n\n"));
    m.push_str(&headers);
    m.push_str(&format!("\n\n--{boundary}--\n"));
    m.replace('\n', "\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_has_the_rfc3464_fields() {
        let b = super::build(
            "mx.example.org",
            "a@b.org",
            "Q1",
            0,
            &[super::Failed {
                rcpt: "x@y.org",
                diagnostic: "550 5.1.1 no such user",
            }],
            b"Subject: hi\r\n\r\nbody",
        );
        let s = String::from_utf8(b).unwrap();
        for want in [
            "report-type=delivery-status",
            "Final-Recipient: rfc822; x@y.org",
            "Action: failed",
            "Status: 5.1.1",
            "Subject: hi",
            "To: <a@b.org>",
        ] {
            assert!(s.contains(want), "{want} missing in {s}");
        }
        assert!(!s.contains("body"));
        assert_eq!(super::status_of("451 4.4.1 timeout"), "5.4.1");
    }

    #[test]
    fn utf8_recipients_make_a_global_report() {
        let b = super::build(
            "mx.example.org",
            "a@b.org",
            "Q1",
            0,
            &[super::Failed {
                rcpt: "dörte@y.org",
                diagnostic: "553 5.6.7 no SMTPUTF8",
            }],
            b"Subject: hi\r\n\r\nbody",
        );
        let s = String::from_utf8(b).unwrap();
        for want in [
            "Content-Type: message/global-delivery-status",
            "Final-Recipient: utf-8; dörte@y.org",
            "Status: 5.6.7",
            "Content-Type: message/global-headers",
        ] {
            assert!(s.contains(want), "{want} missing in {s}");
        }
    }
}

//! What a failure does: retry later with backoff and jitter, or, when permanent or expired, a bounce
//! (RFC 3464) queued to the sender before the row is let go.

use super::*;

impl Runner {
    pub(super) fn backoff(&self, attempts: i64) -> i64 {
        let base =
            (self.s.retry_ms * 2f64.powi(attempts.clamp(0, 30) as i32)).min(self.s.retry_max_ms);
        let mut b = [0u8; 2];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        let jitter = 0.8 + 0.4 * (u16::from_be_bytes(b) as f64 / 65535.0);
        (base * jitter) as i64
    }

    pub(super) fn temp_fail_job(
        &self,
        j: &Job,
        why: &str,
        at: Option<i64>,
        results: &mut Vec<RowResult>,
    ) {
        let mut bounced = Vec::new();
        for r in &j.rows {
            self.temp_fail_row(j, r, why, at, results, &mut bounced);
        }
        if !bounced.is_empty() {
            self.bounce_rows(j, &bounced, results);
        }
    }

    /// A temporary failure: retry later, unless the message has been queued too long (then bounce).
    pub(super) fn temp_fail_row<'a>(
        &self,
        j: &Job,
        r: &'a DueRow,
        why: &str,
        at: Option<i64>,
        results: &mut Vec<RowResult>,
        bounced: &mut Vec<(&'a DueRow, String)>,
    ) {
        let now = now_ms();
        if now - j.created > self.s.expire_ms {
            bounced.push((
                r,
                format!(
                    "{why} (gave up after {:.1} hours)",
                    (now - j.created) as f64 / 3_600_000.0
                ),
            ));
            return;
        }
        let next = at.unwrap_or_else(|| now + self.backoff(r.attempts));
        results.push(RowResult::Defer {
            msg: r.msg.clone(),
            row: r.row,
            next_at: next,
            error: why.to_string(),
        });
    }

    /// Queues one DSN for these rows (never for a null sender), then marks them done. If the DSN cannot be
    /// queued (disk full), the rows are deferred instead: a bounce must not be lost either.
    pub(super) fn bounce_rows(
        &self,
        j: &Job,
        rows: &[(&DueRow, String)],
        results: &mut Vec<RowResult>,
    ) {
        let sender = j.sender.as_str();
        let mailer_daemon =
            sender.is_empty() || sender.to_ascii_lowercase().starts_with("mailer-daemon@");
        if !mailer_daemon {
            let original = self.body(&j.msg).ok().flatten().unwrap_or_default();
            let failed: Vec<dsn::Failed<'_>> = rows
                .iter()
                .map(|(r, why)| dsn::Failed {
                    rcpt: &r.orig,
                    diagnostic: why,
                })
                .collect();
            let body = dsn::build(
                &self.s.hostname,
                sender,
                &j.msg,
                j.created,
                &failed,
                &original,
            );
            // A UTF-8 sender (RFC 6531) is routed like a UTF-8 recipient; an ASCII one as always.
            let routed = match crate::message::address::Address::parse(sender) {
                Ok(addr) => Ok(self.router.get().resolve(&addr, true)),
                Err(_) if !sender.is_ascii() => crate::smtp::path::parse_utf8(sender)
                    .map(|m| self.router.get().resolve_utf8(&m, true)),
                Err(e) => Err(e),
            };
            match routed {
                Ok(routed) => match routed {
                    Ok(rcpts) => {
                        let utf8 = !body.is_ascii() || !sender.is_ascii();
                        let m = NewMessage {
                            sender: String::new(),
                            rcpts,
                            data: &body,
                            client: "bounce".into(),
                            smtputf8: utf8,
                            body8bit: !body.is_ascii(),
                        };
                        if let Err(e) = self.queue.enqueue(m) {
                            for (r, _) in rows {
                                results.push(RowResult::Defer {
                                    msg: r.msg.clone(),
                                    row: r.row,
                                    next_at: now_ms() + 60_000,
                                    error: format!("cannot queue the bounce: {}", e.msg),
                                });
                            }
                            return;
                        }
                    }
                    Err(reply) => log::event(
                        "queue",
                        &j.msg,
                        &[
                            ("from", &format!("<{sender}>")),
                            ("status", "bounce dropped"),
                            ("error", &reply.to_string()),
                        ],
                    ),
                },
                Err(e) => log::event(
                    "queue",
                    &j.msg,
                    &[
                        ("from", &format!("<{sender}>")),
                        ("status", "bounce dropped"),
                        ("error", &e),
                    ],
                ),
            }
        }
        results.extend(rows.iter().map(|(r, _)| RowResult::Done {
            msg: r.msg.clone(),
            row: r.row,
        }));
    }
}

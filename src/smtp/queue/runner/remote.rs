//! Remote delivery for the runner: the route (smarthost, static route or MX), one connection per
//! worker, batches of pipelined transactions, and the failure cache when a destination cannot be reached.

use super::*;
use smtp_proto::EXT_SMTP_UTF8;

impl Runner {
    /// (name for the log, address to connect to), best first.
    pub(super) fn hosts(
        &self,
        key: &str,
        domain: &str,
    ) -> Result<Vec<(String, String)>, RouteError> {
        if let Some(h) = &self.s.smarthost {
            return Ok(vec![(h.clone(), h.clone())]);
        }
        if let Some(h) = self.s.routes.get(key) {
            return Ok(vec![(h.clone(), h.clone())]);
        }
        let Some(res) = &self.resolver else {
            return Err(RouteError::Temporary("4.4.3 no resolver".into()));
        };
        self.rt.block_on(mx::mx_hosts(res, domain, self.s.port))
    }

    pub(super) fn smtp_session(self: &Arc<Self>, key: &str, mut batch: Vec<Job>) {
        let domain = key.to_string();
        let hosts = match self.hosts(key, &domain) {
            Ok(h) => h,
            Err(RouteError::Permanent(why)) => {
                let mut results = Vec::new();
                let mut all = batch;
                all.extend(self.drain(key));
                for j in &all {
                    self.bounce_rows(
                        j,
                        &j.rows.iter().map(|r| (r, why.clone())).collect::<Vec<_>>(),
                        &mut results,
                    );
                }
                self.finish(&all, results);
                return;
            }
            Err(RouteError::Temporary(why)) => return self.mark_down(key, &why, batch),
        };
        let mut client = None;
        let mut relay = String::new();
        let mut last_err = String::new();
        for (name, addr) in &hosts {
            let label = if name == addr {
                addr.clone()
            } else {
                format!("{name}[{addr}]")
            };
            let opts = if self.s.smarthost.is_some() {
                self.s.smarthost_opts.clone()
            } else {
                crate::smtp::client::Options {
                    tls: self.s.mx_tls,
                    server_name: (name != addr).then(|| name.clone()),
                    auth: None,
                }
            };
            match Client::connect_with(addr, &self.s.helo, &opts) {
                Ok(c) => {
                    client = Some(c);
                    relay = label;
                    break;
                }
                Err(e) if !e.temporary => {
                    last_err = format!("5.0.0 {label}: {}", e.msg);
                }
                Err(e) => last_err = format!("4.4.1 {label}: {}", e.msg),
            }
        }
        let Some(mut client) = client else {
            return self.mark_down(key, &last_err, batch);
        };
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let mut sent = 0usize;
        loop {
            let datas: Vec<Result<Option<Vec<u8>>, String>> =
                batch.iter().map(|j| self.body(&j.msg)).collect();
            let mut txs = Vec::new();
            let mut tx_jobs: Vec<Job> = Vec::new();
            let mut results = Vec::new();
            let utf8_offered = client.capabilities & EXT_SMTP_UTF8 != 0;
            for (j, d) in batch.iter().zip(&datas) {
                match d {
                    Ok(Some(d)) => {
                        let (smtputf8, send, refused) = utf8_split(j, d, utf8_offered);
                        if !refused.is_empty() {
                            // RFC 6531 §3.2: never downgraded, so bounced (5.6.7) when the next hop
                            // cannot take what this recipient needs.
                            let why = format!(
                                "553 5.6.7 {relay} does not support SMTPUTF8, which this message needs"
                            );
                            let delay = format!("{:.2}", (now_ms() - j.created) as f64 / 1000.0);
                            for r in &refused {
                                log_delivery(&j.msg, r, &relay, &delay, "bounced", &why);
                            }
                            let rows: Vec<(&DueRow, String)> =
                                refused.iter().map(|r| (r, why.clone())).collect();
                            self.bounce_rows(j, &rows, &mut results);
                        }
                        if send.is_empty() {
                            continue;
                        }
                        txs.push(Transaction {
                            from: j.sender.clone(),
                            rcpts: send.iter().map(|r| r.target.clone()).collect(),
                            data: d,
                            smtputf8,
                            body8bit: j.flags & store::FLAG_8BITMIME != 0,
                        });
                        tx_jobs.push(Job {
                            rows: send,
                            ..j.clone()
                        });
                    }
                    Ok(None) => {
                        // Removed by `queue rm` while we were busy: nothing left to send.
                        results.extend(j.rows.iter().map(|r| RowResult::Done {
                            msg: r.msg.clone(),
                            row: r.row,
                        }));
                    }
                    Err(e) => self.temp_fail_job(j, e, None, &mut results),
                }
            }
            // The moment a transaction's reply is read, its accepted rows go to the delivered journal
            // (one write(), see queue/journal.rs) and to the writer, before logging or anything else.
            // The rows are released only once every commit is done (or the scheduler could hand them
            // out again).
            let mut broken = false;
            let mut commits = Vec::new();
            client.send_all_with(&txs, |i, outs| {
                let j = &tx_jobs[i];
                let accepted: Vec<i64> = j
                    .rows
                    .iter()
                    .zip(outs)
                    .filter(|(_, o)| o.is_accepted())
                    .map(|(r, _)| r.row)
                    .collect();
                if !accepted.is_empty() {
                    commits.push(self.queue.record_accepted(&j.msg, &accepted));
                }
                let mut jr = Vec::new();
                let mut bounced = Vec::new();
                for (r, o) in j.rows.iter().zip(outs) {
                    let delay = format!("{:.2}", (now_ms() - j.created) as f64 / 1000.0);
                    match o {
                        Outcome::Accepted(text) => {
                            log_delivery(&j.msg, r, &relay, &delay, "sent", text);
                        }
                        Outcome::Temporary(text) => {
                            broken |= !text.starts_with('4');
                            log_delivery(&j.msg, r, &relay, &delay, "deferred", text);
                            self.temp_fail_row(j, r, text, None, &mut jr, &mut bounced);
                        }
                        Outcome::Permanent(text) => {
                            log_delivery(&j.msg, r, &relay, &delay, "bounced", text);
                            bounced.push((r, text.clone()));
                        }
                    }
                }
                if !bounced.is_empty() {
                    self.bounce_rows(j, &bounced, &mut jr);
                }
                if !jr.is_empty() {
                    commits.push(self.queue.record_start(jr));
                }
            });
            commits.push(self.queue.record_start(results));
            self.settle(&batch, commits);
            sent += batch.len();
            if broken || sent >= self.s.per_connection {
                break;
            }
            batch = self.take_more(key);
            if batch.is_empty() {
                break;
            }
        }
        client.quit();
    }

    /// A destination we cannot reach: defer this batch and its whole backlog, and remember it is down.
    pub(super) fn mark_down(&self, key: &str, why: &str, batch: Vec<Job>) {
        let until = now_ms() + self.s.down_ms;
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), (until, why.to_string()));
        let mut all = batch;
        all.extend(self.drain(key));
        let mut results = Vec::new();
        for j in &all {
            for r in &j.rows {
                log_delivery(
                    &j.msg,
                    r,
                    self.s
                        .smarthost
                        .as_deref()
                        .filter(|_| key == "[smarthost]")
                        .unwrap_or(key.trim_start_matches('\0')),
                    &format!("{:.2}", (now_ms() - j.created) as f64 / 1000.0),
                    "deferred",
                    why,
                );
            }
            self.temp_fail_job(j, why, None, &mut results);
        }
        self.finish(&all, results);
    }
}

/// Splits a job's rows by what the next hop can take (RFC 6531 §3.2): whether the transaction needs
/// SMTPUTF8, the rows to send, and the rows that need SMTPUTF8 the next hop does not offer. A message
/// needs it only if its client asked (MAIL FROM ... SMTPUTF8) and its sender, header section or this
/// recipient really is UTF-8 (Postfix decides the same way); a message that merely asked goes anywhere.
/// A UTF-8 recipient can also come from an alias (`staff: dörte@bücher.example`) in a message that did
/// not ask for SMTPUTF8: that recipient needs it all the same.
fn utf8_split(j: &Job, data: &[u8], offered: bool) -> (bool, Vec<DueRow>, Vec<DueRow>) {
    let asked = j.flags & store::FLAG_SMTPUTF8 != 0;
    if !asked && j.rows.iter().all(|r| r.target.is_ascii()) {
        return (false, j.rows.clone(), Vec::new());
    }
    let head_end = memchr::memmem::find(data, b"\r\n\r\n").unwrap_or(data.len());
    let whole = asked && (!j.sender.is_ascii() || !data[..head_end].is_ascii());
    let (utf8, ascii): (Vec<DueRow>, Vec<DueRow>) = j
        .rows
        .iter()
        .cloned()
        .partition(|r| whole || !r.target.is_ascii());
    if offered {
        let needs = !utf8.is_empty();
        let mut all = utf8;
        all.extend(ascii);
        // Keep the queue's order for the transaction.
        all.sort_by_key(|r| r.row);
        (needs, all, Vec::new())
    } else {
        (false, ascii, utf8)
    }
}

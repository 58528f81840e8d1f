//! Local delivery jobs for the runner: alias pipes, /file targets and local users' mailboxes.

use super::*;

impl Runner {
    pub(super) fn deliver_local(&self, j: &Job) {
        let data = match self.body(&j.msg) {
            Ok(Some(d)) => d,
            Err(e) => {
                let mut results = Vec::new();
                self.temp_fail_job(j, &e, None, &mut results);
                return self.finish(std::slice::from_ref(j), results);
            }
            Ok(None) => {
                return self.finish(
                    std::slice::from_ref(j),
                    j.rows
                        .iter()
                        .map(|r| RowResult::Done {
                            msg: r.msg.clone(),
                            row: r.row,
                        })
                        .collect(),
                )
            }
        };
        let sender = local::safe_sender(&j.sender);
        let mut results = Vec::new();
        let mut commits = Vec::new();
        let mut bounced = Vec::new();
        for r in &j.rows {
            let d = match r.kind {
                Kind::Pipe => local::pipe(
                    &r.target,
                    &with_return_path(&data, &sender),
                    &sender,
                    &r.orig,
                    &self.s.pipe_user,
                    &self.s.home,
                ),
                Kind::File => {
                    let owner = local::lookup_user(&self.s.pipe_user);
                    local::append_mbox(
                        std::path::Path::new(&r.target),
                        &with_return_path(&data, &sender),
                        &sender,
                        owner.as_ref(),
                    )
                }
                Kind::Mailbox => self.deliver_mailbox(&r.target, &data, &sender),
                Kind::Smtp => Delivered::Temporary("4.3.0 misrouted".into()),
            };
            let relay = match r.kind {
                Kind::Pipe => "pipe",
                Kind::File => "file",
                _ => "local",
            };
            let delay = format!("{:.2}", (now_ms() - j.created) as f64 / 1000.0);
            match d {
                Delivered::Ok => {
                    // Journaled first, as for remote hosts: a pipe (a list post) must not run twice
                    // because the process was killed before the commit.
                    commits.push(self.queue.record_accepted(&j.msg, &[r.row]));
                    log_delivery(&j.msg, r, relay, &delay, "sent", "2.0.0 delivered");
                }
                Delivered::Temporary(why) => {
                    log_delivery(&j.msg, r, relay, &delay, "deferred", &why);
                    self.temp_fail_row(j, r, &why, None, &mut results, &mut bounced);
                }
                Delivered::Permanent(why) => {
                    log_delivery(&j.msg, r, relay, &delay, "bounced", &why);
                    bounced.push((r, why));
                }
            }
        }
        if !bounced.is_empty() {
            self.bounce_rows(j, &bounced, &mut results);
        }
        commits.push(self.queue.record_start(results));
        self.settle(std::slice::from_ref(j), commits);
    }

    pub(super) fn deliver_mailbox(&self, user: &str, data: &[u8], sender: &str) -> Delivered {
        let Some(u) = local::lookup_user(user) else {
            return Delivered::Permanent(format!("5.1.1 no such user {user}"));
        };
        let msg = with_return_path(data, sender);
        match self.s.local_delivery.as_str() {
            "maildir" => local::maildir(&u.home.join("Maildir"), &msg, &u),
            "deliver" => local::deliver_command(&self.s.deliver_command, &msg, sender, &u),
            _ => local::append_mbox(&self.s.mailbox_dir.join(&u.name), &msg, sender, Some(&u)),
        }
    }
}

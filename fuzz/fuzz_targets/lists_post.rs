//! The whole decoration step of a post (prefix, List-* headers, Reply-To, footer in every MIME shape)
//! on arbitrary messages: errors are fine, panics are not.
#![no_main]
use correo::config::{Config, Home};
use correo::lists::model::{List, ReplyTo, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let home = Home { dir: std::env::temp_dir(), config: Config::default(), explicit: false };
    let settings = Settings { footer: "footer ü".into(), reply_to: ReplyTo::List, ..Default::default() };
    let list = List { id: 1, name: "dev".into(), domain: "x.org".into(), settings };
    let _ = correo::lists::post::facts(data, Some("a@b.org"));
    let _ = correo::lists::post::decorate(&home, &list, data);
});

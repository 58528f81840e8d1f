//! Robustness smoke test: mutated and random inputs through the .cf parser, the spamd protocol parser and
//! the message view must never panic. The real fuzzing lives in fuzz/ (cargo fuzz); this is the cheap,
//! always-on version that runs with `cargo test`.

/// xorshift64*: deterministic, so a failure is reproducible from its iteration number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, inserts, deletes and splices bytes, biased towards the syntax characters of each format.
fn mutate(rng: &mut Rng, seed: &[u8], alphabet: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let pos = rng.below(v.len() + 1);
        match rng.below(4) {
            0 if !v.is_empty() => {
                let p = pos.min(v.len() - 1);
                v[p] = alphabet[rng.below(alphabet.len())];
            }
            1 => v.insert(pos, alphabet[rng.below(alphabet.len())]),
            2 if !v.is_empty() => {
                let p = pos.min(v.len() - 1);
                v.remove(p);
            }
            _ => {
                let a = rng.below(v.len() + 1);
                let b = (a + rng.below(16)).min(v.len());
                let chunk = v[a..b].to_vec();
                for (k, c) in chunk.into_iter().enumerate() {
                    v.insert((pos + k).min(v.len()), c);
                }
            }
        }
    }
    v
}

const CF: &str = "body A /fr[e3]e\\s+(?:money|cash)/i\nheader B Subject =~ /^\\s*$/ [if-unset: x]\n\
meta C (A + B) > 1 && !D\nscore A 1 2 3 4\ndescribe A x\ntflags A multiple maxhits=3\n\
ifplugin Mail::SpamAssassin::Plugin::HeaderEval\nheader D eval:check_illegal_chars('Subject','0.2','2')\nendif\n\
if (version >= 3.004000)\nrawbody E m{<a\\s+href=(?!\"https)}i\nelse\nfull F /x/\nendif\n\
replace_tag N (?:\\d+)\nreplace_rules G\nbody G /<N> dollars/\nadd_header all Status _YESNO_ _SCORE(0)_ _TESTS_\n";

#[test]
fn cf_parser_and_compiler_never_panic() {
    let mut rng = Rng(0x5eed_cf00);
    let alphabet = b"/\\()[]{}<>?*+|^$#!&=~:'\" \n\tabcACB0123._-";
    for _ in 0..400 {
        let input = mutate(&mut rng, CF.as_bytes(), alphabet);
        let text = String::from_utf8_lossy(&input);
        let rs = correo::spam::rules::compile(correo::spam::load::load_text(&text));
        let _ = rs.check(b"Subject: free money\n\nfree  cash 1000 dollars <a href=x>\n");
    }
}

#[test]
fn protocol_parser_never_panics() {
    let mut rng = Rng(0x5eed_5a3d);
    let seed = b"PROCESS SPAMC/1.5\r\nContent-length: 12\r\nUser: bob\r\nCompress: zlib\r\nMessage-class: spam\r\nSet: local,remote\r\n\r\nSubject: x\n\n";
    let alphabet = b"\r\n: /.,0123456789SPAMCDprocesCHEKYBOLTigz";
    for _ in 0..20000 {
        let input = mutate(&mut rng, seed, alphabet);
        if let Some(n) = correo::spam::protocol::head_len(&input) {
            if let Ok(req) = correo::spam::protocol::parse_head(&input[..n]) {
                let _ = correo::spam::protocol::inflate(&input[n..], 4096);
                let _ = req.verb.has_body();
            }
        }
    }
}

#[test]
fn message_view_never_panics() {
    let mut rng = Rng(0x5eed_3e55);
    let seed = b"Received: from a (b [1.2.3.4]) by c id d; Mon, 1 Jan 2024 00:00:00 +0000\nFrom: \"=?utf-8?q?A=C3=A9?=\" <a@b.c>\nTo: x@y, (z) w@v\nSubject: =?iso-8859-1?b?aGk=?=\nContent-Type: multipart/alternative; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: quoted-printable\n\nhi=20there http://x.org/a\n--zz\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\nPGI+aGk8L2I+PGEgaHJlZj0iaHR0cDovL3kub3JnIj5sPC9hPg==\n--zz--\n";
    let alphabet = b"\n\r :;=?<>\"'-_/@[]()&#abzQB0123456789";
    let rs = correo::spam::rules::compile(correo::spam::load::load_text(CF));
    for _ in 0..600 {
        let input = mutate(&mut rng, seed, alphabet);
        let (view, v) = rs.check(&input);
        let m = correo::spam::markup::Marker {
            rules: &rs,
            view: &view,
            v: &v,
            host: "h".into(),
        };
        let _ = m.rewrite();
        let _ = m.report();
    }
}

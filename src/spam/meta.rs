//! `meta` expressions: Perl-style boolean and arithmetic over other rules' hit counts. Parsed once into a
//! tree whose leaves are rule indexes; evaluated per message.

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    /// A rule name, resolved to its index at compile time (None = unknown rule, reads as 0).
    Rule(String, Option<usize>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let st = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(
                s[st..i]
                    .parse()
                    .map_err(|_| format!("bad number {}", &s[st..i]))?,
            ));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let w = &s[st..i];
            match w {
                "and" => out.push(Tok::Op("&&")),
                "or" => out.push(Tok::Op("||")),
                "not" => out.push(Tok::Op("!")),
                _ => out.push(Tok::Ident(w.to_string())),
            }
            continue;
        }
        let two = s.get(i..i + 2).unwrap_or("");
        let op2 = ["&&", "||", "==", "!=", "<=", ">="]
            .iter()
            .find(|o| **o == two);
        if let Some(o) = op2 {
            out.push(Tok::Op(o));
            i += 2;
            continue;
        }
        let t = match c {
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'!' => Tok::Op("!"),
            b'<' => Tok::Op("<"),
            b'>' => Tok::Op(">"),
            b'+' => Tok::Op("+"),
            b'-' => Tok::Op("-"),
            b'*' => Tok::Op("*"),
            b'/' => Tok::Op("/"),
            _ => return Err(format!("unexpected character {:?} in meta", c as char)),
        };
        out.push(t);
        i += 1;
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl P {
    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(o)) => Some(o),
            _ => None,
        }
    }
    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: &[&[&str]] = &[
            &["||"],
            &["&&"],
            &["==", "!="],
            &["<", "<=", ">", ">="],
            &["+", "-"],
            &["*", "/"],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        while let Some(o) = self.peek_op().filter(|o| LEVELS[level].contains(o)) {
            self.pos += 1;
            let rhs = self.binary(level + 1)?;
            let op = match o {
                "||" => Op::Or,
                "&&" => Op::And,
                "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "+" => Op::Add,
                "-" => Op::Sub,
                "*" => Op::Mul,
                _ => Op::Div,
            };
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > 200 {
            return Err("meta expression nested too deeply".into());
        }
        let r = match self.toks.get(self.pos).cloned() {
            Some(Tok::Op("!")) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Op("-")) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                Ok(Expr::Rule(w, None))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.binary(0)?;
                if self.toks.get(self.pos) != Some(&Tok::RParen) {
                    return Err("missing ) in meta".into());
                }
                self.pos += 1;
                Ok(e)
            }
            other => Err(format!("unexpected {other:?} in meta")),
        };
        self.depth -= 1;
        r
    }
}

pub fn parse(s: &str) -> Result<Expr, String> {
    let toks = lex(s)?;
    let mut p = P {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.binary(0)?;
    if p.pos != p.toks.len() {
        return Err("trailing tokens in meta".into());
    }
    Ok(e)
}

impl Expr {
    /// Names this expression depends on.
    pub fn deps(&self, out: &mut Vec<String>) {
        match self {
            Expr::Rule(n, _) => out.push(n.clone()),
            Expr::Not(e) | Expr::Neg(e) => e.deps(out),
            Expr::Bin(_, a, b) => {
                a.deps(out);
                b.deps(out);
            }
            Expr::Num(_) => {}
        }
    }

    pub fn resolve(&mut self, lookup: &dyn Fn(&str) -> Option<usize>) {
        match self {
            Expr::Rule(n, idx) => *idx = lookup(n),
            Expr::Not(e) | Expr::Neg(e) => e.resolve(lookup),
            Expr::Bin(_, a, b) => {
                a.resolve(lookup);
                b.resolve(lookup);
            }
            Expr::Num(_) => {}
        }
    }

    pub fn eval(&self, val: &dyn Fn(usize) -> f64) -> f64 {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        match self {
            Expr::Num(n) => *n,
            Expr::Rule(_, Some(i)) => val(*i),
            Expr::Rule(_, None) => 0.0,
            Expr::Not(e) => b(e.eval(val) == 0.0),
            Expr::Neg(e) => -e.eval(val),
            Expr::Bin(op, l, r) => {
                let a = l.eval(val);
                match op {
                    // Perl's && and || return an operand, not a boolean.
                    Op::Or => {
                        if a != 0.0 {
                            a
                        } else {
                            r.eval(val)
                        }
                    }
                    Op::And => {
                        if a == 0.0 {
                            a
                        } else {
                            r.eval(val)
                        }
                    }
                    _ => binary(*op, a, r.eval(val)),
                }
            }
        }
    }
}

/// One step of a compiled meta: a stack machine, so evaluating the stock rules' ~850 metas walks one
/// contiguous array instead of chasing a boxed tree per node (the tree walk was ~6% of a message).
#[derive(Debug, Clone, Copy)]
enum Ins {
    Num(f64),
    Load(u32),
    Not,
    Neg,
    Bin(Op),
    /// Perl's `||`: a non-zero top is the result (jump to the end, keep it); else drop it and go on.
    Or(u32),
    /// Perl's `&&`: a zero top is the result; else drop it and go on.
    And(u32),
}

/// The metas of a rule set, in the order they run, compiled into one program.
#[derive(Debug, Clone, Default)]
pub struct Program {
    code: Vec<Ins>,
    /// (rule index, start, end) of each meta's code.
    metas: Vec<(usize, u32, u32)>,
}

impl Program {
    /// Compiles `exprs` (rule index and its resolved expression), in that order.
    pub fn new<'a>(exprs: impl Iterator<Item = (usize, &'a Expr)>) -> Program {
        let mut p = Program::default();
        for (i, e) in exprs {
            let start = p.code.len() as u32;
            p.emit(e);
            p.metas.push((i, start, p.code.len() as u32));
        }
        p
    }

    fn emit(&mut self, e: &Expr) {
        match e {
            Expr::Num(n) => self.code.push(Ins::Num(*n)),
            Expr::Rule(_, Some(i)) => self.code.push(Ins::Load(*i as u32)),
            Expr::Rule(_, None) => self.code.push(Ins::Num(0.0)),
            Expr::Not(x) => {
                self.emit(x);
                self.code.push(Ins::Not);
            }
            Expr::Neg(x) => {
                self.emit(x);
                self.code.push(Ins::Neg);
            }
            Expr::Bin(op @ (Op::Or | Op::And), l, r) => {
                self.emit(l);
                let at = self.code.len();
                self.code.push(Ins::Num(0.0)); // patched below
                self.emit(r);
                let end = self.code.len() as u32;
                self.code[at] = if *op == Op::Or {
                    Ins::Or(end)
                } else {
                    Ins::And(end)
                };
            }
            Expr::Bin(op, l, r) => {
                self.emit(l);
                self.emit(r);
                self.code.push(Ins::Bin(*op));
            }
        }
    }

    /// Runs every meta in order, writing each one's value into `val` (later metas read earlier ones).
    pub fn run(&self, val: &mut [f64]) {
        let mut stack: Vec<f64> = Vec::with_capacity(32);
        for &(i, start, end) in &self.metas {
            stack.clear();
            let mut pc = start as usize;
            while pc < end as usize {
                match self.code[pc] {
                    Ins::Num(n) => stack.push(n),
                    Ins::Load(j) => stack.push(val.get(j as usize).copied().unwrap_or(0.0)),
                    Ins::Not => {
                        let a = stack.pop().unwrap_or(0.0);
                        stack.push(if a == 0.0 { 1.0 } else { 0.0 });
                    }
                    Ins::Neg => {
                        let a = stack.pop().unwrap_or(0.0);
                        stack.push(-a);
                    }
                    Ins::Or(to) | Ins::And(to) => {
                        let top = stack.last().copied().unwrap_or(0.0);
                        let short = match self.code[pc] {
                            Ins::Or(_) => top != 0.0,
                            _ => top == 0.0,
                        };
                        if short {
                            pc = to as usize;
                            continue;
                        }
                        stack.pop();
                    }
                    Ins::Bin(op) => {
                        let c = stack.pop().unwrap_or(0.0);
                        let a = stack.pop().unwrap_or(0.0);
                        stack.push(binary(op, a, c));
                    }
                }
                pc += 1;
            }
            if let Some(v) = val.get_mut(i) {
                *v = stack.pop().unwrap_or(0.0);
            }
        }
    }
}

/// A non-short-circuit operator's value, as Perl computes it (a division by zero reads as 0).
fn binary(op: Op, a: f64, c: f64) -> f64 {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    match op {
        Op::Eq => b(a == c),
        Op::Ne => b(a != c),
        Op::Lt => b(a < c),
        Op::Le => b(a <= c),
        Op::Gt => b(a > c),
        Op::Ge => b(a >= c),
        Op::Add => a + c,
        Op::Sub => a - c,
        Op::Mul => a * c,
        Op::Div => {
            if c == 0.0 {
                0.0
            } else {
                a / c
            }
        }
        Op::Or | Op::And => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_arithmetic() {
        let mut e = parse("(A + B + C) > 1 && !D").unwrap();
        let names = ["A", "B", "C", "D"];
        e.resolve(&|n| names.iter().position(|x| *x == n));
        assert_eq!(e.eval(&|i| [1.0, 1.0, 0.0, 0.0][i]), 1.0);
        assert_eq!(e.eval(&|i| [1.0, 1.0, 0.0, 1.0][i]), 0.0);
        assert!(parse("A &&").is_err());
        // The compiled program agrees with the tree on every input, short-circuit values included.
        let srcs = [
            "(A + B + C) > 1 && !D",
            "A || B && C",
            "(A || B) * 3 - -C",
            "A && (B || 0) && !(C == D)",
            "(A + B) / (C - D) >= 0.5",
            "!A || UNKNOWN",
        ];
        for src in srcs {
            let mut e = parse(src).unwrap();
            e.resolve(&|n| names.iter().position(|x| *x == n));
            let p = Program::new(std::iter::once((4, &e)));
            for bits in 0..81u32 {
                let mut val: Vec<f64> = (0..4).map(|k| ((bits / 3u32.pow(k)) % 3) as f64).collect();
                val.push(f64::NAN);
                let want = e.eval(&|i| val[i]);
                p.run(&mut val);
                assert_eq!(val[4].to_bits(), want.to_bits(), "{src} {val:?}");
            }
        }
        assert!(parse("((((A").is_err());
    }
}

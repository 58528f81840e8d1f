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

/// One node of a compiled meta expression; children are indexes into `Metas::nodes`.
#[derive(Debug, Clone, Copy)]
enum Node {
    Num(f64),
    Rule(u32),
    Not(u32),
    Neg(u32),
    /// A chain of `&&` (`A && B && C`, however nested): 0 when an operand is 0, else the last one's
    /// value. `Metas::lists[k]` is the last operand, `lists[k + 1..=k + n]` every operand, cheapest
    /// first.
    And(u32, u32),
    /// A chain of `||`: the first operand (left to right) that is not 0, else 0. `Metas::lists[k..k + n]`
    /// holds the operands in order, `lists[k + n..k + 2n]` the same cheapest first (for when only the
    /// truth of the result is read, and then any true operand will do).
    Or(u32, u32),
    Bin(Op, u32, u32),
}

/// What the meta evaluator reads its leaves from: the message's rule values, run on demand.
pub trait Leaves {
    /// Rule `i`'s value when it is already settled (it ran, or its gate says 0 without running it).
    fn settled(&self, i: usize) -> Option<f64>;
    /// Runs non-meta rule `i`, settles it and gives its value.
    fn run(&mut self, i: usize) -> f64;
    /// Settles rule `i` (a meta, or one in progress) at `v`.
    fn settle(&mut self, i: usize, v: f64);
}

/// The metas of a rule set, compiled for evaluation on demand.
///
/// Why on demand: most rules are sub-rules (`__X`) whose only use is to feed metas, and most of the
/// engine's time went to running them: 78% of rule time on the sample, cold. A scored meta such as
/// `FILL_THIS_FORM_LONG  __FILL_THIS_FORM_LONG && !__VIA_ML && !__THREADED ...` is decided as soon as
/// one cheap operand of its `&&` is 0, and then its costly sub-rule (a 6,000-character regex) need not
/// run. So the checker runs the scored rules, then evaluates the scored metas, and a sub-rule runs only
/// when an evaluation reaches it.
///
/// Results are the same as evaluating everything, because the operand order is chosen only where
/// Perl's value does not depend on it:
/// - `A && B` is 0 when either side is 0 and B otherwise, so either side may go first.
/// - `A || B` is A when A is not 0, else B: A goes first, unless only the truth of the result is read
///   (`boolean`: under `!`, left of `&&`, in a meta whose value every reader and the hit test read only
///   for its truth), where either may.
///
/// A chain of one operator (`A && !B && !C ...`, the usual shape of a scored meta) is one node over all
/// its operands, and what holds for two operands holds for n: an `&&` chain is 0 when any operand is, and
/// else the last operand's value. The order chosen: first any operand already settled that decides (0
/// for `&&`; not 0 for a `||` read for its truth), then the others by their static cost estimates
/// (`Rule::cost`), cheapest first, sorted once when the rules compile. (As nested pairs, each `&&` looked
/// at its two sides again on every message: ~5% of a fresh daemon's time went to that walk.)
/// What stays unevaluated is only the sub-rules' own hits, which no score or header shows
/// (`_SUBTESTS_` does: `RuleSet::check` then runs them all).
#[derive(Debug, Clone, Default)]
pub struct Metas {
    nodes: Vec<Node>,
    /// The operands of the `And` and `Or` chains (see `Node`).
    lists: Vec<u32>,
    /// Per node: the estimated cost of evaluating it from nothing.
    cost: Vec<u32>,
    /// Per rule: its meta's root node (None for non-metas and unresolvable metas).
    root: Vec<Option<u32>>,
    /// Per rule: whether every reader of this meta reads only its truth.
    boolean: Vec<bool>,
}

impl Metas {
    /// Compiles the metas among `rules` (each rule's index, its expression when it is a meta, and the
    /// static cost of running it when it is not).
    pub fn new(rules: &[(Option<&Expr>, u32)]) -> Metas {
        let n = rules.len();
        let mut m = Metas {
            root: vec![None; n],
            boolean: vec![true; n],
            ..Metas::default()
        };
        for (i, (e, _)) in rules.iter().enumerate() {
            if let Some(e) = e {
                let r = m.emit(e);
                m.root[i] = Some(r);
            }
        }
        // Costs: a leaf's rule cost, a meta's the sum of its operands' (cycles read as free).
        let mut rule_cost: Vec<Option<u32>> = rules
            .iter()
            .map(|(e, c)| e.is_none().then_some(*c))
            .collect();
        m.cost = vec![0; m.nodes.len()];
        let mut busy = vec![false; n];
        for i in 0..n {
            m.meta_cost(i, &mut rule_cost, &mut busy);
        }
        m.order_chains();
        // Contexts: a meta is boolean until some reader reads its value; iterate to the fixpoint (only
        // true -> false moves, so it ends).
        loop {
            let mut changed = false;
            for i in 0..n {
                if let Some(r) = m.root[i] {
                    let b = m.boolean[i];
                    changed |= m.mark_values(r, b);
                }
            }
            if !changed {
                break;
            }
        }
        m
    }

    fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    fn emit(&mut self, e: &Expr) -> u32 {
        match e {
            Expr::Num(x) => self.push(Node::Num(*x)),
            Expr::Rule(_, Some(i)) => self.push(Node::Rule(*i as u32)),
            Expr::Rule(_, None) => self.push(Node::Num(0.0)),
            Expr::Not(x) => {
                let x = self.emit(x);
                self.push(Node::Not(x))
            }
            Expr::Neg(x) => {
                let x = self.emit(x);
                self.push(Node::Neg(x))
            }
            Expr::Bin(op @ (Op::And | Op::Or), _, _) => {
                // `A && (B && C)` is `(A && B) && C`, and so for `||`: one chain, flattened.
                let mut flat = Vec::new();
                chain(e, *op, &mut flat);
                let ops: Vec<u32> = flat.into_iter().map(|x| self.emit(x)).collect();
                let k = self.lists.len() as u32;
                let n = ops.len() as u32;
                if *op == Op::And {
                    self.lists.push(*ops.last().unwrap_or(&0));
                    self.lists.extend(&ops);
                    self.push(Node::And(k, n))
                } else {
                    self.lists.extend(&ops);
                    self.lists.extend(&ops);
                    self.push(Node::Or(k, n))
                }
            }
            Expr::Bin(op, l, r) => {
                let (l, r) = (self.emit(l), self.emit(r));
                self.push(Node::Bin(*op, l, r))
            }
        }
    }

    /// Puts each chain's operands that may go in any order cheapest first (costs are known by now).
    fn order_chains(&mut self) {
        for k in 0..self.nodes.len() {
            let (from, n) = match self.nodes[k] {
                Node::And(s, n) => (s + 1, n),
                Node::Or(s, n) => (s + n, n),
                _ => continue,
            };
            let (from, n) = (from as usize, n as usize);
            let cost = &self.cost;
            // Stable: on a tie the left operand first, as written.
            self.lists[from..from + n].sort_by_key(|&x| cost[x as usize]);
        }
    }

    /// The operands of an `And` chain (every one) or the `Or` chain in order.
    fn operands(&self, k: u32) -> &[u32] {
        match self.nodes[k as usize] {
            Node::And(s, n) => &self.lists[s as usize + 1..(s + 1 + n) as usize],
            Node::Or(s, n) => &self.lists[s as usize..(s + n) as usize],
            _ => &[],
        }
    }

    /// Rule `i`'s cost, filling `rule_cost` for metas on the way (a meta in progress reads as 0).
    fn meta_cost(&mut self, i: usize, rule_cost: &mut [Option<u32>], busy: &mut [bool]) -> u32 {
        if let Some(c) = rule_cost.get(i).copied().flatten() {
            return c;
        }
        let Some(root) = self.root.get(i).copied().flatten() else {
            return 0;
        };
        if busy[i] {
            return 0;
        }
        busy[i] = true;
        let c = self.node_cost(root, rule_cost, busy);
        busy[i] = false;
        rule_cost[i] = Some(c);
        c
    }

    fn node_cost(&mut self, k: u32, rule_cost: &mut [Option<u32>], busy: &mut [bool]) -> u32 {
        let c = match self.nodes[k as usize] {
            Node::Num(_) => 0,
            Node::Rule(j) => self.meta_cost(j as usize, rule_cost, busy),
            Node::Not(x) | Node::Neg(x) => self.node_cost(x, rule_cost, busy),
            Node::And(..) | Node::Or(..) => {
                let ops = self.operands(k).to_vec();
                ops.into_iter().fold(0u32, |c, x| {
                    c.saturating_add(self.node_cost(x, rule_cost, busy))
                })
            }
            Node::Bin(_, a, b) => self
                .node_cost(a, rule_cost, busy)
                .saturating_add(self.node_cost(b, rule_cost, busy)),
        };
        self.cost[k as usize] = c;
        c
    }

    /// Clears `boolean` for every meta node `k` reads for its value (`k` read for its truth only
    /// when `truth`); whether anything changed.
    fn mark_values(&mut self, k: u32, truth: bool) -> bool {
        match self.nodes[k as usize] {
            Node::Num(_) => false,
            Node::Rule(j) => {
                let j = j as usize;
                let was = self.boolean[j];
                if !truth && self.root[j].is_some() {
                    self.boolean[j] = false;
                }
                was != self.boolean[j]
            }
            Node::Not(x) => self.mark_values(x, true),
            Node::Neg(x) => self.mark_values(x, false),
            Node::And(s, _) => {
                let last = self.lists[s as usize];
                let ops = self.operands(k).to_vec();
                ops.into_iter().fold(false, |changed, x| {
                    self.mark_values(x, x != last || truth) | changed
                })
            }
            Node::Or(..) => {
                let ops = self.operands(k).to_vec();
                ops.into_iter()
                    .fold(false, |changed, x| self.mark_values(x, truth) | changed)
            }
            Node::Bin(_, a, b) => self.mark_values(a, false) | self.mark_values(b, false),
        }
    }

    /// Meta `i`'s value, evaluating it (and what it reads) when not settled.
    pub fn value(&self, i: usize, leaves: &mut impl Leaves) -> f64 {
        if let Some(v) = leaves.settled(i) {
            return v;
        }
        match self.root.get(i).copied().flatten() {
            Some(root) => {
                // A cycle back to this meta reads 0.
                leaves.settle(i, 0.0);
                let v = self.eval(root, self.boolean[i], leaves);
                leaves.settle(i, v);
                v
            }
            None => leaves.run(i),
        }
    }

    /// A node's value when it needs no rule to run.
    fn peek(&self, k: u32, leaves: &impl Leaves) -> Option<f64> {
        match self.nodes[k as usize] {
            Node::Num(x) => Some(x),
            Node::Rule(j) => leaves.settled(j as usize),
            Node::Not(x) => self
                .peek(x, leaves)
                .map(|v| if v == 0.0 { 1.0 } else { 0.0 }),
            Node::Neg(x) => self.peek(x, leaves).map(|v| -v),
            _ => None,
        }
    }

    fn eval(&self, k: u32, truth: bool, leaves: &mut impl Leaves) -> f64 {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        match self.nodes[k as usize] {
            Node::Num(x) => x,
            Node::Rule(j) => self.value(j as usize, leaves),
            Node::Not(x) => b(self.eval(x, true, leaves) == 0.0),
            Node::Neg(x) => -self.eval(x, false, leaves),
            Node::And(s, n) => {
                // 0 when any operand is; else the last one's value. A zero known for free decides;
                // else the cheapest go first, and the first 0 ends it.
                let last = self.lists[s as usize];
                let ops = &self.lists[s as usize + 1..(s + 1 + n) as usize];
                if ops.iter().any(|&x| self.peek(x, leaves) == Some(0.0)) {
                    return 0.0;
                }
                let mut value = 0.0;
                for &x in ops {
                    let v = self.eval(x, x != last || truth, leaves);
                    if v == 0.0 {
                        return 0.0;
                    }
                    if x == last {
                        value = v;
                    }
                }
                value
            }
            Node::Or(s, n) => {
                let (s, n) = (s as usize, n as usize);
                if !truth {
                    // The value of the first operand that is not 0: left to right.
                    for &x in &self.lists[s..s + n] {
                        let v = self.eval(x, false, leaves);
                        if v != 0.0 {
                            return v;
                        }
                    }
                    return 0.0;
                }
                // Only the truth is read: any true operand will do, one known for free first.
                let by_cost = &self.lists[s + n..s + 2 * n];
                for &x in by_cost {
                    if let Some(v) = self.peek(x, leaves).filter(|&v| v != 0.0) {
                        return v;
                    }
                }
                for &x in by_cost {
                    let v = self.eval(x, true, leaves);
                    if v != 0.0 {
                        return v;
                    }
                }
                0.0
            }
            Node::Bin(op, a, c) => {
                let x = self.eval(a, false, leaves);
                binary(op, x, self.eval(c, false, leaves))
            }
        }
    }
}

/// The operands of the chain of `op` (`&&` or `||`) that `e` heads, left to right.
fn chain<'e>(e: &'e Expr, op: Op, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::Bin(o, l, r) if *o == op => {
            chain(l, op, out);
            chain(r, op, out);
        }
        _ => out.push(e),
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
        assert!(parse("((((A").is_err());
    }

    /// Leaves from a table, counting which rules ran.
    struct Table {
        val: Vec<f64>,
        settled: Vec<bool>,
        ran: Vec<usize>,
    }

    impl Table {
        /// Leaf values, with those marked in `settled` known without running.
        fn new(val: Vec<f64>, settled: Vec<bool>) -> Table {
            Table {
                val,
                settled,
                ran: Vec::new(),
            }
        }
    }

    impl Leaves for Table {
        fn settled(&self, i: usize) -> Option<f64> {
            self.settled[i].then(|| self.val[i])
        }
        fn run(&mut self, i: usize) -> f64 {
            self.ran.push(i);
            self.settled[i] = true;
            self.val[i]
        }
        fn settle(&mut self, i: usize, v: f64) {
            self.settled[i] = true;
            self.val[i] = v;
        }
    }

    /// Rules A..D (costs 9, 1, 5, 3), meta E = `src`, and F = `!E` when `truth_only` (so every reader
    /// of E reads its truth), else F = `E + 0` (its value).
    fn program(src: &str, truth_only: bool) -> Metas {
        let names = ["A", "B", "C", "D", "E"];
        let lookup = |n: &str| names.iter().position(|x| *x == n);
        let mut e = parse(src).unwrap();
        e.resolve(&lookup);
        let mut f = parse(if truth_only { "!E" } else { "E + 0" }).unwrap();
        f.resolve(&lookup);
        let rules: Vec<(Option<&Expr>, u32)> = vec![
            (None, 9),
            (None, 1),
            (None, 5),
            (None, 3),
            (Some(&e), 0),
            (Some(&f), 0),
        ];
        Metas::new(&rules)
    }

    #[test]
    fn on_demand_evaluation_gives_the_eager_values() {
        let srcs = [
            "(A + B + C) > 1 && !D",
            "A || B && C",
            "(A || B) * 3 - -C",
            "A && (B || 0) && !(C == D)",
            "(A + B) / (C - D) >= 0.5",
            "!A || UNKNOWN",
            "A && B",
            "A || B || C",
            "(A || C) && (D || B)",
            // Chains, nested either way, and mixed.
            "A && !B && C && !D",
            "(A && B) && (C && D)",
            "A || (B || C) || D",
            "A && B || C && D",
            "!(A || B || C) + (D && C && A)",
        ];
        for src in srcs {
            let mut want_e = parse(src).unwrap();
            want_e.resolve(&|n| ["A", "B", "C", "D"].iter().position(|x| *x == n));
            for truth_only in [false, true] {
                let m = program(src, truth_only);
                assert_eq!(m.boolean[4], truth_only, "{src}");
                for bits in 0..81u32 {
                    let val: Vec<f64> = (0..4).map(|k| ((bits / 3u32.pow(k)) % 3) as f64).collect();
                    let want = want_e.eval(&|i| val[i]);
                    let mut t = Table::new(
                        val.iter().copied().chain([0.0, 0.0]).collect(),
                        vec![false; 6],
                    );
                    let got_f = m.value(5, &mut t);
                    let got_e = t.val[4];
                    if truth_only {
                        assert_eq!(got_e != 0.0, want != 0.0, "{src} {val:?}");
                        assert_eq!(got_f, if want == 0.0 { 1.0 } else { 0.0 }, "{src}");
                    } else {
                        assert_eq!(got_e, want, "{src} {val:?}");
                        assert_eq!(got_f, want, "{src} {val:?}");
                    }
                    // No rule runs twice.
                    let mut ran = t.ran.clone();
                    ran.sort_unstable();
                    ran.dedup();
                    assert_eq!(ran.len(), t.ran.len(), "{src}");
                }
            }
        }
    }

    #[test]
    fn the_cheap_side_of_and_goes_first_and_decides() {
        // B (cost 1) is 0: A (cost 9) never runs, whichever side it is on.
        for src in ["A && B", "B && A", "!(A && B)"] {
            let m = program(src, false);
            let mut t = Table::new(vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0], vec![false; 6]);
            m.value(5, &mut t);
            assert_eq!(t.ran, vec![1], "{src}");
        }
        // A settled 0 (its gate said so) decides without running B.
        let m = program("B && A", false);
        let mut t = Table::new(
            vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
            vec![true, false, false, false, false, false],
        );
        m.value(5, &mut t);
        assert!(t.ran.is_empty());
        // In a longer chain too: a 0 known for free anywhere in it, and nothing runs; else the
        // cheapest runs first and its 0 ends it (B cost 1, D 3, C 5, A 9).
        let m = program("A && C && B && D", false);
        let mut t = Table::new(
            vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            vec![false, false, false, true, false, false],
        );
        m.value(5, &mut t);
        assert!(t.ran.is_empty(), "{:?}", t.ran);
        let mut t = Table::new(vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0], vec![false; 6]);
        m.value(5, &mut t);
        assert_eq!(t.ran, vec![1, 3, 2]);
        // `||` read for its value runs its left side first; read for its truth, the cheaper one.
        for (truth_only, first) in [(false, 0), (true, 1)] {
            let m = program("A || B", truth_only);
            let mut t = Table::new(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0], vec![false; 6]);
            m.value(5, &mut t);
            assert_eq!(t.ran, vec![first]);
        }
    }
}

//! A small parser for the Python literals found in the survey files: strings with single or double
//! quotes and backslash escapes, numbers (including `nan` and `inf`, so that bad values reach
//! validation instead of failing as syntax), `True`/`False`/`None`, lists, tuples and dicts.
//!
//! It also reads numpy's printed arrays (`[0.23 0.38 0.39]`), whose elements are separated by
//! whitespace rather than commas.
//!
//! Lists, tuples and dicts nest at most [`MAX_DEPTH`] levels deep: the parser recurses once per
//! level, and a hostile cell of 20,000 `[` would otherwise overflow the stack.

use std::fmt;

/// Deepest nesting of lists, tuples and dicts accepted (the survey files nest 2 levels). Deeper
/// literals are a [`LiteralError`] ("nesting deeper than 128 levels"), never a stack overflow.
pub const MAX_DEPTH: usize = 128;

/// A parsed Python literal.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// A string.
    Str(String),
    /// An int or float.
    Num(f64),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A list or tuple.
    List(Vec<PyValue>),
    /// A dict, in source order.
    Dict(Vec<(PyValue, PyValue)>),
}

/// A syntax error: byte offset into the input and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed Python literal at character {}: {}", self.offset, self.message)
    }
}

/// Parses one complete literal; trailing non-space text is an error.
pub fn parse(text: &str) -> Result<PyValue, LiteralError> {
    let mut p = Parser { s: text.as_bytes(), text, pos: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("end of input"));
    }
    Ok(v)
}

/// Parses a list of strings (`['a', "b, c"]`).
pub fn parse_str_list(text: &str) -> Result<Vec<String>, LiteralError> {
    match parse(text)? {
        PyValue::List(items) => items
            .into_iter()
            .map(|v| match v {
                PyValue::Str(s) => Ok(s),
                other => {
                    Err(LiteralError { offset: 0, message: format!("a list of strings, found element {other:?}") })
                }
            })
            .collect(),
        _ => Err(LiteralError { offset: 0, message: "a list of strings".into() }),
    }
}

/// Parses a list of numbers (`[1.0, 2.0]`), or a numpy-printed array (`[0.2 0.8]`).
pub fn parse_num_list(text: &str) -> Result<Vec<f64>, LiteralError> {
    let v = if text.contains(',') { parse(text)? } else { parse_numpy(text)? };
    num_list(v)
}

/// Turns a parsed list into numbers.
pub fn num_list(v: PyValue) -> Result<Vec<f64>, LiteralError> {
    match v {
        PyValue::List(items) => items
            .into_iter()
            .map(|v| match v {
                PyValue::Num(x) => Ok(x),
                other => {
                    Err(LiteralError { offset: 0, message: format!("a list of numbers, found element {other:?}") })
                }
            })
            .collect(),
        _ => Err(LiteralError { offset: 0, message: "a list of numbers".into() }),
    }
}

/// numpy prints `[0.1 0.2\n 0.7]`: whitespace-separated numbers, no commas.
fn parse_numpy(text: &str) -> Result<PyValue, LiteralError> {
    let mut p = Parser { s: text.as_bytes(), text, pos: 0, depth: 0 };
    p.ws();
    p.expect(b'[')?;
    let mut items = Vec::new();
    loop {
        p.ws();
        if p.peek() == Some(b']') {
            p.pos += 1;
            break;
        }
        items.push(p.number()?);
    }
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("end of input"));
    }
    Ok(PyValue::List(items))
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    /// Lists, tuples and dicts open around `pos`.
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, expected: &str) -> LiteralError {
        let found = match self.text.get(self.pos..).and_then(|r| r.chars().next()) {
            Some(c) => format!("found {c:?}"),
            None => "found end of input".into(),
        };
        LiteralError { offset: self.pos, message: format!("expected {expected}, {found}") }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), LiteralError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("{:?}", c as char)))
        }
    }

    fn value(&mut self) -> Result<PyValue, LiteralError> {
        self.ws();
        match self.peek() {
            Some(b'[') => self.nested(|p| p.seq(b'[', b']').map(PyValue::List)),
            Some(b'(') => self.nested(|p| p.seq(b'(', b')').map(PyValue::List)),
            Some(b'{') => self.nested(Self::dict),
            Some(q @ (b'\'' | b'"')) => self.string(q).map(PyValue::Str),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(_) => self.number(),
            None => Err(self.err("a value")),
        }
    }

    /// Parses a list, tuple or dict one level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<PyValue, LiteralError>,
    ) -> Result<PyValue, LiteralError> {
        if self.depth >= MAX_DEPTH {
            return Err(LiteralError { offset: self.pos, message: format!("nesting deeper than {MAX_DEPTH} levels") });
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn seq(&mut self, open: u8, close: u8) -> Result<Vec<PyValue>, LiteralError> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err(&format!("',' or {:?}", close as char))),
            }
        }
    }

    fn dict(&mut self) -> Result<PyValue, LiteralError> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(PyValue::Dict(items));
            }
            let k = self.value()?;
            self.ws();
            self.expect(b':')?;
            let v = self.value()?;
            items.push((k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.err("',' or '}'")),
            }
        }
    }

    fn word(&mut self) -> Result<PyValue, LiteralError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        match &self.text[start..self.pos] {
            "True" => Ok(PyValue::Bool(true)),
            "False" => Ok(PyValue::Bool(false)),
            "None" => Ok(PyValue::None),
            "nan" | "NaN" => Ok(PyValue::Num(f64::NAN)),
            "inf" => Ok(PyValue::Num(f64::INFINITY)),
            _ => {
                self.pos = start;
                Err(self.err("a string, number, list, tuple, dict, True, False or None"))
            }
        }
    }

    fn number(&mut self) -> Result<PyValue, LiteralError> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            // Signed nan/inf.
            let neg = self.s[start] == b'-';
            return match self.word()? {
                PyValue::Num(x) => Ok(PyValue::Num(if neg { -x } else { x })),
                _ => {
                    self.pos = start;
                    Err(self.err("a number"))
                }
            };
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'_')) {
            // An exponent sign belongs to the number.
            let was_e = matches!(self.peek(), Some(b'e' | b'E'));
            self.pos += 1;
            if was_e && matches!(self.peek(), Some(b'-' | b'+')) {
                self.pos += 1;
            }
        }
        let token = self.text[start..self.pos].replace('_', "");
        match token.parse::<f64>() {
            Ok(x) if !token.is_empty() => Ok(PyValue::Num(x)),
            _ => {
                self.pos = start;
                Err(self.err("a number"))
            }
        }
    }

    fn string(&mut self, quote: u8) -> Result<String, LiteralError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                self.pos = open;
                return Err(self.err("a closing quote for this string"));
            };
            self.pos += c.len_utf8();
            match c {
                _ if c as u32 == quote as u32 => return Ok(out),
                '\\' => out.push(self.escape()?),
                _ => out.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, LiteralError> {
        let Some(c) = self.text[self.pos..].chars().next() else {
            return Err(self.err("an escape character"));
        };
        self.pos += c.len_utf8();
        let hex = |p: &mut Self, n: usize| -> Result<char, LiteralError> {
            // Only hex digits: `from_str_radix` alone would also take a sign (`\x+f`).
            let code = p
                .text
                .get(p.pos..p.pos + n)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            match code.and_then(char::from_u32) {
                Some(ch) => {
                    p.pos += n;
                    Ok(ch)
                }
                None => Err(p.err(&format!("{n} hex digits"))),
            }
        };
        Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            // `\\`, `\'`, `\"` and unknown escapes keep the character (Python keeps the backslash
            // for unknown escapes, but none occur in the survey files).
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_survey_literals() {
        assert_eq!(
            parse_str_list(r#"['Very safe', "Associate's degree", 'a, b', 'it\'s']"#).unwrap(),
            ["Very safe", "Associate's degree", "a, b", "it's"]
        );
        assert_eq!(parse_num_list("[1.0, 2, 1.5]").unwrap(), [1.0, 2.0, 1.5]);
        assert_eq!(parse_num_list("[0.23 0.38\n 0.39]").unwrap(), [0.23, 0.38, 0.39]);
        assert_eq!(parse_num_list("[1.e-01 9e-1]").unwrap(), [0.1, 0.9]);
        let d = parse("{1.0: 'Very safe', 99.0: 'Refused'}").unwrap();
        assert_eq!(
            d,
            PyValue::Dict(vec![
                (PyValue::Num(1.0), PyValue::Str("Very safe".into())),
                (PyValue::Num(99.0), PyValue::Str("Refused".into()))
            ])
        );
        assert!(parse_num_list("[nan, -inf]").unwrap()[0].is_nan());
        assert_eq!(
            parse("('\\u00e9', True, None)").unwrap(),
            PyValue::List(vec![PyValue::Str("é".into()), PyValue::Bool(true), PyValue::None])
        );
    }

    #[test]
    fn reports_position() {
        let e = parse("['a', 'b'").unwrap_err();
        assert_eq!(e.offset, 9);
        let e = parse("['a' 'b']").unwrap_err();
        assert!(e.message.contains("','"), "{e}");
        assert!(parse("['open]").is_err());
        assert!(parse("[1, 2] x").is_err());
        assert!(parse("[foo]").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for open in ["[", "(", "{", "[{(", "{'a': ["] {
            let text = open.repeat(20_000);
            let e = parse(&text).unwrap_err();
            assert!(e.message.contains("nesting deeper than 128 levels"), "{open}: {e}");
            assert!(e.to_string().contains(&format!("at character {}", e.offset)), "{e}");
        }
        let e = parse(&"[".repeat(20_000)).unwrap_err();
        assert_eq!(e.offset, MAX_DEPTH);
        assert_eq!(e.to_string(), "malformed Python literal at character 128: nesting deeper than 128 levels");
        // Exactly the limit is fine, one more is not.
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        assert!(parse(&nested(MAX_DEPTH + 1)).is_err());
        // Depth is counted, not accumulated: many siblings at depth 1 are fine.
        assert!(parse(&format!("[{}]", vec!["[1]"; 1000].join(","))).is_ok());
        assert!(parse_num_list(&"[".repeat(20_000)).is_err());
    }

    #[test]
    fn hex_escapes_take_only_hex_digits() {
        assert_eq!(parse(r"'\x41'").unwrap(), PyValue::Str("A".into()));
        assert!(parse(r"'\x+f'").is_err());
        assert!(parse(r"'\u-041'").is_err());
    }
}

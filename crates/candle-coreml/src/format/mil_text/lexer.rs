//! Tokens of MIL text, each with its 1-based line and column.

use std::fmt;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A name: identifiers, keywords, dtypes, `inf`, `nan`, `true`.
    Ident(String),
    /// A numeric literal as written (sign excluded), e.g. `1.0`, `0x1p-1`, `64`.
    Number(String),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// One punctuation character: `( ) [ ] { } < > , = ; ? * -`.
    Punct(char),
    /// `->`
    Arrow,
    /// `...` (an elided type, accepted leniently).
    Ellipsis,
    /// End of input.
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Number(s) => write!(f, "number `{s}`"),
            Tok::Str(s) => {
                let short: String = s.chars().take(40).collect();
                write!(f, "string {short:?}")
            }
            Tok::Punct(c) => write!(f, "`{c}`"),
            Tok::Arrow => f.write_str("`->`"),
            Tok::Ellipsis => f.write_str("`...`"),
            Tok::Eof => f.write_str("end of file"),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone)]
pub(super) struct Token {
    /// The token.
    pub tok: Tok,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
}

/// A lexing error: position and message.
pub(super) struct LexError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    fn error(&self, line: u32, column: u32, message: impl Into<String>) -> LexError {
        LexError {
            line,
            column,
            message: message.into(),
        }
    }

    /// Skips whitespace and `//` or `/* */` comments.
    fn skip_trivia(&mut self) -> Result<(), LexError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') => {
                    let (line, column) = (self.line, self.column);
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    match ahead.next() {
                        Some('/') => {
                            while let Some(c) = self.bump() {
                                if c == '\n' {
                                    break;
                                }
                            }
                        }
                        Some('*') => {
                            self.bump();
                            self.bump();
                            let mut prev = '\0';
                            loop {
                                match self.bump() {
                                    Some('/') if prev == '*' => break,
                                    Some(c) => prev = c,
                                    None => {
                                        return Err(self.error(
                                            line,
                                            column,
                                            "unterminated comment",
                                        ))
                                    }
                                }
                            }
                        }
                        _ => return Ok(()),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, LexError> {
        self.skip_trivia()?;
        let (line, column) = (self.line, self.column);
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                line,
                column,
            });
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            Tok::Ident(self.take_while(|c| c.is_ascii_alphanumeric() || c == '_'))
        } else if c.is_ascii_digit() {
            Tok::Number(self.number())
        } else if c == '"' {
            Tok::Str(self.string(line, column)?)
        } else if c == '.' {
            let dots = self.take_while(|c| c == '.');
            if dots != "..." {
                return Err(self.error(line, column, format!("unexpected `{dots}`")));
            }
            Tok::Ellipsis
        } else if c == '-' {
            self.bump();
            if self.peek() == Some('>') {
                self.bump();
                Tok::Arrow
            } else {
                Tok::Punct('-')
            }
        } else if "()[]{}<>,=;?*+".contains(c) {
            self.bump();
            Tok::Punct(c)
        } else {
            return Err(self.error(line, column, format!("unexpected character {c:?}")));
        };
        Ok(Token { tok, line, column })
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    /// A number: digits, letters, `_`, `.`, and a sign right after an
    /// exponent marker (`e` for decimal, `p` for hex).
    fn number(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            let hex = s.starts_with("0x") || s.starts_with("0X");
            let after_exp = match s.chars().last() {
                Some('p' | 'P') => true,
                Some('e' | 'E') => !hex,
                _ => false,
            };
            if c.is_ascii_alphanumeric()
                || c == '_'
                || c == '.'
                || (after_exp && (c == '+' || c == '-'))
            {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        s
    }

    fn string(&mut self, line: u32, column: u32) -> Result<String, LexError> {
        self.bump();
        let mut s = String::new();
        loop {
            let (el, ec) = (self.line, self.column);
            match self.bump() {
                None => return Err(self.error(line, column, "unterminated string")),
                Some('"') => return Ok(s),
                Some('\\') => s.push(self.escape(el, ec)?),
                Some(c) => s.push(c),
            }
        }
    }

    fn escape(&mut self, line: u32, column: u32) -> Result<char, LexError> {
        let c = match self.bump() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('0') => '\0',
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('v') => '\u{b}',
            Some(c @ ('\\' | '"' | '\'' | '?')) => c,
            Some('x') => return self.hex_escape(2, line, column),
            Some('u') => return self.hex_escape(4, line, column),
            Some('U') => return self.hex_escape(8, line, column),
            Some(c) => {
                return Err(self.error(line, column, format!("unknown escape `\\{c}` in string")))
            }
            None => return Err(self.error(line, column, "unterminated string")),
        };
        Ok(c)
    }

    fn hex_escape(&mut self, digits: usize, line: u32, column: u32) -> Result<char, LexError> {
        let mut v: u32 = 0;
        for _ in 0..digits {
            let d = self.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                self.error(line, column, format!("escape needs {digits} hex digits"))
            })?;
            self.bump();
            v = v * 16 + d;
        }
        char::from_u32(v)
            .ok_or_else(|| self.error(line, column, format!("escape {v:#x} is not a character")))
    }
}

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let mut lexer = Lexer {
        chars: text.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        let t = lexer.next_token()?;
        let end = t.tok == Tok::Eof;
        out.push(t);
        if end {
            return Ok(out);
        }
    }
}

/// A parsed numeric literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    /// An integer literal (no `.`, exponent or hex-float `p`).
    Int(i64),
    /// Any other number.
    Float(f64),
}

/// Parses an unsigned numeric literal as written: decimal integers, hex
/// integers (`0x1F`), decimal floats (`1.5e-3`) and C99 hex floats
/// (`0x1.8p+3`). `None` when it is none of these.
pub(super) fn parse_number(s: &str) -> Option<Num> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if !hex.contains(['p', 'P', '.']) {
            return i64::from_str_radix(hex, 16).ok().map(Num::Int);
        }
        return parse_hex_float(hex).map(Num::Float);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // Integers beyond i64 become floats rather than errors.
        return match s.parse::<i64>() {
            Ok(v) => Some(Num::Int(v)),
            Err(_) => s.parse::<f64>().ok().map(Num::Float),
        };
    }
    s.parse::<f64>().ok().map(Num::Float)
}

/// The body of a C99 hex float after `0x`: `H[.H][p[+-]D]`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut exp2: i64 = match exp {
        Some(e) => {
            let (neg, digits) = match e.as_bytes().first()? {
                b'+' => (false, &e[1..]),
                b'-' => (true, &e[1..]),
                _ => (false, e),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Clamp absurd exponents: the result saturates to 0 or inf anyway.
            let v = digits.parse::<i64>().unwrap_or(100_000).min(100_000);
            if neg {
                -v
            } else {
                v
            }
        }
        None => 0,
    };
    let mut m: u64 = 0;
    let mut sticky = false;
    for (i, c) in int_part.chars().chain(frac_part.chars()).enumerate() {
        let d = u64::from(c.to_digit(16)?);
        let in_frac = i >= int_part.len();
        if m >> 56 == 0 {
            m = (m << 4) | d;
            if in_frac {
                exp2 -= 4;
            }
        } else {
            // Out of precision: keep a sticky bit, scale for integer digits.
            sticky |= d != 0;
            if !in_frac {
                exp2 += 4;
            }
        }
    }
    if sticky {
        m |= 1;
    }
    Some(scale2(m as f64, exp2))
}

/// `x * 2^e` without overflowing intermediate powers.
fn scale2(mut x: f64, mut e: i64) -> f64 {
    while e > 0 && x != 0.0 && x.is_finite() {
        let step = e.min(512);
        x *= 2f64.powi(step as i32);
        e -= step;
    }
    while e < 0 && x != 0.0 {
        let step = (-e).min(512);
        x *= 2f64.powi(-(step as i32));
        e += step;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_floats() {
        assert_eq!(parse_number("0x1p-1"), Some(Num::Float(0.5)));
        assert_eq!(parse_number("0x1.8p+3"), Some(Num::Float(12.0)));
        assert_eq!(parse_number("0x1p+0"), Some(Num::Float(1.0)));
        assert_eq!(parse_number("0x0p+0"), Some(Num::Float(0.0)));
        assert_eq!(
            parse_number("0x1.fffffep+127"),
            Some(Num::Float(f32::MAX as f64))
        );
        assert_eq!(parse_number("0x1.ffcp+15"), Some(Num::Float(65504.0)));
        assert_eq!(parse_number("0x1p-24"), Some(Num::Float(2f64.powi(-24))));
        assert_eq!(
            parse_number("0x1p-1074"),
            Some(Num::Float(f64::from_bits(1)))
        );
        assert_eq!(parse_number("0x1.999999999999ap-4"), Some(Num::Float(0.1)));
        assert_eq!(
            parse_number("0x1p+99999999999"),
            Some(Num::Float(f64::INFINITY))
        );
        assert_eq!(parse_number("0x1p-99999999999"), Some(Num::Float(0.0)));
        assert_eq!(parse_number("0x10"), Some(Num::Int(16)));
        assert_eq!(parse_number("0xp1"), None);
        assert_eq!(parse_number("0x1p"), None);
        assert_eq!(parse_number("0x1.gp1"), None);
    }

    #[test]
    fn decimal_numbers() {
        assert_eq!(parse_number("64"), Some(Num::Int(64)));
        assert_eq!(parse_number("1.5e-3"), Some(Num::Float(1.5e-3)));
        assert_eq!(parse_number("1e10"), Some(Num::Float(1e10)));
        assert_eq!(parse_number("1.0"), Some(Num::Float(1.0)));
        assert_eq!(parse_number("99999999999999999999"), Some(Num::Float(1e20)));
        assert_eq!(parse_number("1x"), None);
    }

    #[test]
    fn tokens_and_positions() {
        let toks = tokenize("a -> (b)\n  \"x\\\"y\\n\" -0x1.8p+3 ...")
            .ok()
            .unwrap_or_default();
        let kinds: Vec<Tok> = toks.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Ident("a".into()),
                Tok::Arrow,
                Tok::Punct('('),
                Tok::Ident("b".into()),
                Tok::Punct(')'),
                Tok::Str("x\"y\n".into()),
                Tok::Punct('-'),
                Tok::Number("0x1.8p+3".into()),
                Tok::Ellipsis,
                Tok::Eof,
            ]
        );
        assert_eq!((toks[5].line, toks[5].column), (2, 3));
        assert_eq!((toks[7].line, toks[7].column), (2, 13));
    }

    #[test]
    fn lex_errors() {
        let e = tokenize("a\n  \"abc").err().map(|e| (e.line, e.column));
        assert_eq!(e, Some((2, 3)));
        let e = tokenize("a $").err().map(|e| (e.line, e.column));
        assert_eq!(e, Some((1, 3)));
    }
}

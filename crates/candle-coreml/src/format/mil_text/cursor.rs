//! The parser's state and its token cursor: peeking, consuming, expecting
//! tokens, nesting depth, and syntax errors at a location. The grammar
//! itself lives in the parent module and in `literal`.

use std::path::Path;

use super::lexer::{Tok, Token};
use crate::error::{Error, Result};
use crate::format::blob::BlobResolver;
use crate::mil::Location;

/// How deeply types, literals and blocks may nest before the parser gives up.
pub const MAX_DEPTH: u32 = 64;

/// Recursive-descent parser over the token list.
pub(super) struct Parser<'a> {
    pub(super) toks: Vec<Token>,
    pub(super) pos: usize,
    pub(super) path: &'a Path,
    pub(super) blobs: &'a mut BlobResolver,
    pub(super) depth: u32,
}

impl Parser<'_> {
    // ---- token helpers -------------------------------------------------

    pub(super) fn token(&self, ahead: usize) -> Option<&Token> {
        self.toks
            .get(self.pos.saturating_add(ahead))
            .or_else(|| self.toks.last())
    }

    pub(super) fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    pub(super) fn peek_at(&self, ahead: usize) -> &Tok {
        self.token(ahead).map(|t| &t.tok).unwrap_or(&Tok::Eof)
    }

    pub(super) fn here(&self) -> Location {
        self.token(0)
            .map(|t| Location {
                line: t.line,
                column: t.column,
            })
            .unwrap_or(Location { line: 1, column: 1 })
    }

    pub(super) fn advance(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        tok
    }

    pub(super) fn error_at(&self, at: Location, message: impl Into<String>) -> Error {
        Error::MilSyntax {
            path: self.path.to_path_buf(),
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }

    /// "expected WHAT, found TOKEN" at the current token.
    pub(super) fn expected(&self, what: &str) -> Error {
        self.error_at(
            self.here(),
            format!("expected {what}, found {}", self.peek()),
        )
    }

    pub(super) fn is_punct(&self, c: char) -> bool {
        *self.peek() == Tok::Punct(c)
    }

    pub(super) fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.is_punct(c);
        if hit {
            self.advance();
        }
        hit
    }

    pub(super) fn expect_punct(&mut self, c: char, context: &str) -> Result<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{c}` {context}")))
        }
    }

    pub(super) fn expect_ident(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Tok::Ident(s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    pub(super) fn expect_keyword(&mut self, kw: &str) -> Result<()> {
        match self.peek() {
            Tok::Ident(s) if s == kw => {
                self.advance();
                Ok(())
            }
            _ => Err(self.expected(&format!("`{kw}`"))),
        }
    }

    /// Enters one nesting level; errors past [`MAX_DEPTH`].
    pub(super) fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                self.here(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    pub(super) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

//! Parser of MIL text, the `model.mil` file of a compiled `.mlmodelc`.
//!
//! No public grammar exists; this one is inferred from files Apple's
//! compiler wrote (see FORMATS.md §4). It accepts both the `program(1.0)`
//! and `program(1.3)` dialects, several functions, state inputs, statements
//! with several outputs, tuple arguments, attributes after calls, nested
//! blocks (`cond`, `while_loop`) and every literal form, resolving
//! `BLOBFILE(...)` weights through a [`BlobResolver`].
//!
//! The lexer and the recursive-descent parser are written by hand rather
//! than generated: the grammar is small (a few dozen productions), a
//! generator crate would add a dependency and a build step for little, and a
//! hand-written parser gives precise `line:column` errors that say what was
//! expected and what was found. Recursion is bounded by [`MAX_DEPTH`], so
//! deeply nested input is an error, never a stack overflow.
//!
//! ```
//! use std::path::Path;
//! use candle_coreml::format::{blob::BlobResolver, mil_text};
//!
//! let text = "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n            \
//!             tensor<fp32, [2]> y = relu(x = x)[name = string(\"y\")];\n        } -> (y);\n}\n";
//! let mut blobs = BlobResolver::new(Path::new("."));
//! let program = mil_text::parse(text, Path::new("model.mil"), &mut blobs).unwrap();
//! assert_eq!(program.functions[0].block.operations[0].op_type, "relu");
//! ```

mod cursor;
mod lexer;
mod literal;

use std::collections::BTreeMap;
use std::path::Path;

use self::cursor::Parser;
use self::lexer::Tok;
use self::literal::PType;
use super::blob::BlobResolver;
use crate::error::{Error, Result};
use crate::mil::{
    Argument, Binding, Block, Function, NamedValueType, Operation, Program, Value, ValueType,
};

pub use self::cursor::MAX_DEPTH;

/// Parses MIL `text` read from `path` (used in error messages). Weights
/// (`BLOBFILE(path = ..., offset = ...)`) are resolved through `blobs`.
///
/// Errors are [`Error::MilSyntax`] with the line and column of the offending
/// token, or the resolver's error for a bad weight reference.
pub fn parse(text: &str, path: &Path, blobs: &mut BlobResolver) -> Result<Program> {
    let toks = lexer::tokenize(text).map_err(|e| Error::MilSyntax {
        path: path.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let mut parser = Parser {
        toks,
        pos: 0,
        path,
        blobs,
        depth: 0,
    };
    parser.program()
}

/// The dtype-free keywords that open a composite type.
const TYPE_KEYWORDS: [&str; 5] = ["tensor", "state", "list", "tuple", "dict"];

impl Parser<'_> {
    /// True when the current token opens a type used as a literal's prefix:
    /// `tensor<`, `list<`... or a bare dtype followed by `(`.
    fn at_typed_literal(&self) -> bool {
        match self.peek() {
            Tok::Ident(s) if TYPE_KEYWORDS.contains(&s.as_str()) => {
                *self.peek_at(1) == Tok::Punct('<')
            }
            Tok::Ident(s) => {
                crate::mil::DataType::from_mil_name(s).is_some()
                    && *self.peek_at(1) == Tok::Punct('(')
            }
            _ => false,
        }
    }

    // ---- program structure ---------------------------------------------

    fn program(&mut self) -> Result<Program> {
        self.expect_keyword("program")?;
        self.expect_punct('(', "after `program`")?;
        let version = match self.peek() {
            Tok::Number(s) | Tok::Ident(s) => s.clone(),
            _ => return Err(self.expected("a program version such as `1.0`")),
        };
        self.advance();
        self.expect_punct(')', "after the program version")?;
        let attributes = if self.is_punct('[') {
            self.attributes()?
        } else {
            BTreeMap::new()
        };
        self.expect_punct('{', "to open the program body")?;
        let mut functions: Vec<Function> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while !self.is_punct('}') {
            let at = self.here();
            let f = self.function()?;
            if !seen.insert(f.name.clone()) {
                return Err(self.error_at(at, format!("function `{}` defined twice", f.name)));
            }
            functions.push(f);
        }
        self.advance();
        if *self.peek() != Tok::Eof {
            return Err(self.expected("end of file after the program's closing `}`"));
        }
        Ok(Program {
            version,
            functions,
            attributes,
        })
    }

    fn function(&mut self) -> Result<Function> {
        self.expect_keyword("func")?;
        let name = self.expect_ident("a function name")?;
        self.expect_punct('<', "before the function's opset")?;
        let opset = self.expect_ident("an opset name such as `ios16`")?;
        self.expect_punct('>', "after the function's opset")?;
        let inputs = self.parameters()?;
        let attributes = if self.is_punct('[') {
            self.attributes()?
        } else {
            BTreeMap::new()
        };
        let block = self.block(inputs.clone())?;
        self.eat_punct(';');
        Ok(Function {
            name,
            inputs,
            opset,
            block,
            attributes,
        })
    }

    /// `( TYPE NAME, ... )`
    fn parameters(&mut self) -> Result<Vec<NamedValueType>> {
        self.expect_punct('(', "to open the parameter list")?;
        let mut params = Vec::new();
        if self.eat_punct(')') {
            return Ok(params);
        }
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let ty = self.value_type()?;
            let name = self.expect_ident("a parameter name")?;
            if !seen.insert(name.clone()) {
                return Err(
                    self.error_at(self.here(), format!("parameter `{name}` declared twice"))
                );
            }
            params.push(NamedValueType { name, ty });
            if !self.eat_punct(',') {
                break;
            }
        }
        self.expect_punct(')', "to close the parameter list")?;
        Ok(params)
    }

    /// `{ statements } [-> (names)]`. `inputs` become the block's inputs
    /// for nested blocks; a function's block keeps its inputs on the function.
    fn block(&mut self, inputs: Vec<NamedValueType>) -> Result<Block> {
        self.enter()?;
        self.expect_punct('{', "to open a block")?;
        let mut operations = Vec::new();
        while !self.is_punct('}') {
            if *self.peek() == Tok::Eof {
                return Err(self.expected("a statement or `}`"));
            }
            operations.push(self.statement()?);
        }
        self.advance();
        let mut outputs = Vec::new();
        if *self.peek() == Tok::Arrow {
            self.advance();
            self.expect_punct('(', "after `->`")?;
            if !self.is_punct(')') {
                loop {
                    outputs.push(self.expect_ident("an output name")?);
                    if !self.eat_punct(',') {
                        break;
                    }
                }
            }
            self.expect_punct(')', "to close the block's outputs")?;
        }
        self.leave();
        Ok(Block {
            inputs,
            outputs,
            operations,
            attributes: BTreeMap::new(),
        })
    }

    /// `TYPE NAME {, TYPE NAME} = OP(args)[attrs] {blocks};` or, for ops
    /// with no outputs (`write_state`), `OP(args)[attrs];`.
    fn statement(&mut self) -> Result<Operation> {
        let location = self.here();
        let mut outputs = Vec::new();
        let no_outputs =
            matches!(self.peek(), Tok::Ident(_)) && *self.peek_at(1) == Tok::Punct('(');
        if !no_outputs {
            loop {
                let ty = self.value_type()?;
                let name = self.expect_ident("an output name")?;
                outputs.push(NamedValueType { name, ty });
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct('=', "after the statement's outputs")?;
        }
        let op_type = self.expect_ident("an op name")?;
        let inputs = self.arguments()?;
        let attributes = if self.is_punct('[') {
            self.attributes()?
        } else {
            BTreeMap::new()
        };
        let mut blocks = Vec::new();
        while !self.is_punct(';') {
            blocks.push(self.nested_block()?);
        }
        self.advance();
        Ok(Operation {
            op_type,
            inputs,
            outputs,
            blocks,
            attributes,
            location: Some(location),
        })
    }

    /// A nested block after a call, leniently: `[label] [(TYPE NAME, ...)] { ... } [-> (...)]`.
    fn nested_block(&mut self) -> Result<Block> {
        let opens_block = match self.peek() {
            Tok::Punct('{') | Tok::Punct('(') => true,
            Tok::Ident(_) => matches!(self.peek_at(1), Tok::Punct('{') | Tok::Punct('(')),
            _ => false,
        };
        if !opens_block {
            return Err(self.expected("`;` to end the statement"));
        }
        if matches!(self.peek(), Tok::Ident(_)) {
            self.advance();
        }
        let inputs = if self.is_punct('(') {
            self.parameters()?
        } else {
            Vec::new()
        };
        self.block(inputs)
    }

    /// `( name = binding | name = (binding, ...), ... )`, names unique.
    fn arguments(&mut self) -> Result<BTreeMap<String, Argument>> {
        self.expect_punct('(', "to open the op's arguments")?;
        let mut args = BTreeMap::new();
        if self.eat_punct(')') {
            return Ok(args);
        }
        loop {
            let at = self.here();
            let name = self.expect_ident("an argument name")?;
            self.expect_punct('=', "after the argument name")?;
            let bindings = if self.eat_punct('(') {
                let mut bindings = Vec::new();
                if !self.is_punct(')') {
                    loop {
                        bindings.push(self.binding()?);
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                }
                self.expect_punct(')', "to close the tuple argument")?;
                bindings
            } else {
                vec![self.binding()?]
            };
            if args.insert(name.clone(), Argument { bindings }).is_some() {
                return Err(self.error_at(at, format!("argument `{name}` given twice")));
            }
            if !self.eat_punct(',') {
                break;
            }
        }
        self.expect_punct(')', "to close the op's arguments")?;
        Ok(args)
    }

    /// A variable name or an inline literal.
    fn binding(&mut self) -> Result<Binding> {
        if !self.at_typed_literal() {
            if let Tok::Ident(s) = self.peek() {
                if !matches!(s.as_str(), "true" | "false" | "inf" | "nan" | "BLOBFILE") {
                    let s = s.clone();
                    self.advance();
                    return Ok(Binding::Name(s));
                }
            }
        }
        self.value().map(Binding::Value)
    }

    /// `[ name = value, ... ]`, names unique.
    fn attributes(&mut self) -> Result<BTreeMap<String, Value>> {
        self.expect_punct('[', "to open attributes")?;
        let mut attrs = BTreeMap::new();
        if self.eat_punct(']') {
            return Ok(attrs);
        }
        loop {
            let at = self.here();
            let name = self.expect_ident("an attribute name")?;
            self.expect_punct('=', "after the attribute name")?;
            let value = self.value()?;
            if attrs.insert(name.clone(), value).is_some() {
                return Err(self.error_at(at, format!("attribute `{name}` given twice")));
            }
            if !self.eat_punct(',') {
                break;
            }
        }
        self.expect_punct(']', "to close attributes")?;
        Ok(attrs)
    }

    /// A constant: `TYPE(literal)`, or an untyped literal (typed from its form).
    fn value(&mut self) -> Result<Value> {
        let at = self.here();
        if self.at_typed_literal() {
            return self.typed_literal();
        }
        let lit = self.literal()?;
        self.convert(lit, &PType::Any, at)
    }

    /// `TYPE(literal)`; empty parentheses give an empty tuple, list or dict.
    fn typed_literal(&mut self) -> Result<Value> {
        let at = self.here();
        let ty = self.ptype()?;
        self.expect_punct('(', "to open the literal after its type")?;
        if self.eat_punct(')') {
            return match ty {
                PType::Tuple(_) => Ok(Value::Tuple(Vec::new())),
                PType::List { .. } => Ok(Value::List(Vec::new())),
                PType::Dict(..) => Ok(Value::Dict(Vec::new())),
                _ => Err(self.error_at(at, "expected a literal inside `()`, found nothing")),
            };
        }
        let lit = self.literal()?;
        self.expect_punct(')', "to close the literal")?;
        self.convert(lit, &ty, at)
    }

    // ---- types ---------------------------------------------------------

    /// A type that must be complete (no `...`).
    fn value_type(&mut self) -> Result<ValueType> {
        let at = self.here();
        let ty = self.ptype()?;
        ty.to_value_type()
            .ok_or_else(|| self.error_at(at, "expected a complete type, found one with `...`"))
    }

    /// Any type, `...` allowed.
    fn ptype(&mut self) -> Result<PType> {
        self.enter()?;
        let ty = self.ptype_inner();
        self.leave();
        ty
    }

    fn ptype_inner(&mut self) -> Result<PType> {
        let at = self.here();
        let name = match self.advance() {
            Tok::Ident(s) => s,
            Tok::Ellipsis => return Ok(PType::Any),
            other => {
                return Err(self.error_at(at, format!("expected a type, found {other}")));
            }
        };
        if let Some(dtype) = crate::mil::DataType::from_mil_name(&name) {
            return Ok(PType::Tensor {
                dtype,
                shape: Some(Vec::new()),
            });
        }
        if !TYPE_KEYWORDS.contains(&name.as_str()) {
            return Err(self.error_at(at, format!("expected a type, found unknown type `{name}`")));
        }
        self.expect_punct('<', &format!("after `{name}`"))?;
        let ty = match name.as_str() {
            "tensor" => self.tensor_type()?,
            "state" => PType::State(Box::new(self.ptype()?)),
            "list" => self.list_type()?,
            "tuple" => {
                let mut items = Vec::new();
                if !self.is_punct('>') {
                    loop {
                        items.push(self.ptype()?);
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                }
                PType::Tuple(items)
            }
            _ => {
                let key = self.ptype()?;
                self.expect_punct(',', "between the dict's key and value types")?;
                let value = self.ptype()?;
                PType::Dict(Box::new(key), Box::new(value))
            }
        };
        self.expect_punct('>', &format!("to close `{name}<`"))?;
        Ok(ty)
    }

    /// After `tensor<`: `DTYPE [, [dims] | , *]`.
    fn tensor_type(&mut self) -> Result<PType> {
        let at = self.here();
        let dname = self.expect_ident("a dtype such as `fp16`")?;
        let dtype = crate::mil::DataType::from_mil_name(&dname).ok_or_else(|| {
            self.error_at(
                at,
                format!("expected a dtype, found unknown dtype `{dname}`"),
            )
        })?;
        if !self.eat_punct(',') {
            return Ok(PType::Tensor { dtype, shape: None });
        }
        if self.eat_punct('*') {
            return Ok(PType::Tensor { dtype, shape: None });
        }
        self.expect_punct('[', "to open the tensor's shape")?;
        let mut dims = Vec::new();
        if !self.is_punct(']') {
            loop {
                dims.push(self.dim()?);
                if !self.eat_punct(',') {
                    break;
                }
            }
        }
        self.expect_punct(']', "to close the tensor's shape")?;
        Ok(PType::Tensor {
            dtype,
            shape: Some(dims),
        })
    }

    /// A dimension: a non-negative integer, `?`, or a symbol (unknown).
    fn dim(&mut self) -> Result<crate::mil::Dim> {
        use crate::mil::Dim;
        let at = self.here();
        match self.advance() {
            Tok::Punct('?') | Tok::Ident(_) => Ok(Dim::Unknown),
            Tok::Number(s) => match lexer::parse_number(&s) {
                Some(lexer::Num::Int(n)) => usize::try_from(n)
                    .map(Dim::Fixed)
                    .map_err(|_| self.error_at(at, format!("dimension {n} out of range"))),
                _ => Err(self.error_at(at, format!("expected an integer dimension, found `{s}`"))),
            },
            other => Err(self.error_at(at, format!("expected a dimension or `?`, found {other}"))),
        }
    }

    /// After `list<`: `TYPE [, N | ?]`.
    fn list_type(&mut self) -> Result<PType> {
        let element = Box::new(self.ptype()?);
        let mut length = None;
        if self.eat_punct(',') {
            length = self.dim()?.fixed();
        }
        Ok(PType::List { element, length })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Program> {
        let mut blobs = BlobResolver::new(Path::new("/nonexistent"));
        parse(text, Path::new("model.mil"), &mut blobs)
    }

    #[test]
    fn no_output_statement_and_nested_blocks() {
        let text = "program(1.3)\n{\n  func main<ios18>(state<tensor<fp16, [2]>> s, tensor<bool, []> p) {\n    write_state(data = x, input = s)[name = string(\"w\")];\n    tensor<fp16, [2]> y = cond(pred = p)[name = string(\"c\")] {\n      tensor<fp16, [2]> a = relu(x = s);\n    } -> (a) {\n      tensor<fp16, [2]> b = sin(x = s);\n    } -> (b);\n  } -> (y);\n}\n";
        let p = parse_str(text).unwrap();
        let f = &p.functions[0];
        assert_eq!(f.block.operations[0].op_type, "write_state");
        assert!(f.block.operations[0].outputs.is_empty());
        let cond = &f.block.operations[1];
        assert_eq!(cond.blocks.len(), 2);
        assert_eq!(cond.blocks[1].outputs, vec!["b".to_string()]);
        assert_eq!(f.op_histogram().get("sin"), Some(&1));
    }
}

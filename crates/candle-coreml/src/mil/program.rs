//! The in-memory MIL program that every container reader produces.

use std::collections::BTreeMap;
use std::fmt;

use super::types::ValueType;
use super::value::Value;

/// Where an operation came from in MIL text (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A named, typed value: a function or block input, or an op output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedValueType {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: ValueType,
}

/// One binding of an argument: a reference to a named value, or a literal.
#[derive(Debug, Clone)]
pub enum Binding {
    /// The value of that name (a function input or an earlier op output).
    Name(String),
    /// An inline constant.
    Value(Value),
}

/// An op's argument: one binding, or several for a variadic input
/// (`concat(values = (a, b, c))`).
#[derive(Debug, Clone)]
pub struct Argument {
    /// The bindings, in order.
    pub bindings: Vec<Binding>,
}

impl Argument {
    /// An argument of one binding.
    pub fn single(binding: Binding) -> Self {
        Self {
            bindings: vec![binding],
        }
    }

    /// The name when this argument is exactly one named reference.
    pub fn as_name(&self) -> Option<&str> {
        match self.bindings.as_slice() {
            [Binding::Name(n)] => Some(n),
            _ => None,
        }
    }
}

/// One operation of a block.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Op type (`add`, `conv`, `const`, `constexpr_lut_to_dense`...).
    pub op_type: String,
    /// Named inputs.
    pub inputs: BTreeMap<String, Argument>,
    /// Outputs, in order.
    pub outputs: Vec<NamedValueType>,
    /// Nested blocks (`cond`, `while_loop`).
    pub blocks: Vec<Block>,
    /// Attributes (`name`, `val` of `const`, constexpr parameters in compiled text).
    pub attributes: BTreeMap<String, Value>,
    /// Position in MIL text, when read from text.
    pub location: Option<Location>,
}

impl Operation {
    /// The argument bound to input `name`.
    pub fn input(&self, name: &str) -> Option<&Argument> {
        self.inputs.get(name)
    }

    /// The attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes.get(name)
    }

    /// The op's `name` attribute, if present.
    pub fn name(&self) -> Option<&str> {
        self.attribute("name").and_then(Value::as_str)
    }

    /// A label for messages: the first output's name, else the op's `name`, else its type.
    pub fn label(&self) -> &str {
        self.outputs
            .first()
            .map(|o| o.name.as_str())
            .or_else(|| self.name())
            .unwrap_or(&self.op_type)
    }
}

/// A block: inputs, operations and the names it returns.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// Block inputs (loop variables of `while_loop` bodies).
    pub inputs: Vec<NamedValueType>,
    /// Names of the values the block returns.
    pub outputs: Vec<String>,
    /// Operations in execution order.
    pub operations: Vec<Operation>,
    /// Attributes.
    pub attributes: BTreeMap<String, Value>,
}

impl Block {
    /// Adds every op type of this block and its nested blocks to `hist`,
    /// leaving out `const` (Core ML's own histogram does not count it).
    pub fn count_ops(&self, hist: &mut BTreeMap<String, usize>) {
        for op in &self.operations {
            if op.op_type != "const" {
                *hist.entry(op.op_type.clone()).or_default() += 1;
            }
            for b in &op.blocks {
                b.count_ops(hist);
            }
        }
    }
}

/// A function of a program.
#[derive(Debug, Clone)]
pub struct Function {
    /// Name (`main`, `prefill`, `infer`...).
    pub name: String,
    /// Inputs, in order; states have [`ValueType::State`].
    pub inputs: Vec<NamedValueType>,
    /// Opset as written: `ios16`... in text, `CoreML7`... in protobuf.
    pub opset: String,
    /// The body.
    pub block: Block,
    /// Attributes (e.g. `FlexibleShapeInformation`).
    pub attributes: BTreeMap<String, Value>,
}

impl Function {
    /// The iOS version of the opset: `ios17` and `CoreML7` both give 17.
    pub fn ios_version(&self) -> Option<u32> {
        let s = self.opset.to_ascii_lowercase();
        if let Some(v) = s.strip_prefix("ios") {
            return v.parse().ok();
        }
        if let Some(v) = s.strip_prefix("coreml") {
            return v.parse::<u32>().ok().map(|v| v + 10);
        }
        None
    }

    /// Op histogram of this function, nested blocks included, `const` left out.
    pub fn op_histogram(&self) -> BTreeMap<String, usize> {
        let mut hist = BTreeMap::new();
        self.block.count_ops(&mut hist);
        hist
    }
}

/// A MIL program.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// Version as written: `1.0`, `1.3` (text) or the protobuf number.
    pub version: String,
    /// Functions, in file order.
    pub functions: Vec<Function>,
    /// Program attributes (e.g. `buildInfo`).
    pub attributes: BTreeMap<String, Value>,
}

impl Program {
    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }
}

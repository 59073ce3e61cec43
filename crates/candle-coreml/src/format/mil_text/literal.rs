//! Literals of MIL text: parsed untyped first ([`Lit`]), then typed into
//! [`Value`]s by the declared type ([`PType`]).

use super::cursor::Parser;
use super::lexer::{self, Num, Tok};
use crate::error::Result;
use crate::mil::{DataType, Dim, Location, TensorData, TensorType, TensorValue, Value, ValueType};

/// A type as written, where `...` (an elided type) is allowed.
#[derive(Debug, Clone)]
pub(super) enum PType {
    /// `tensor<DTYPE, [dims]>` or a bare scalar dtype; `shape` is `None` for unknown rank.
    Tensor {
        dtype: DataType,
        shape: Option<Vec<Dim>>,
    },
    /// `list<T, N|?>`.
    List {
        element: Box<PType>,
        length: Option<usize>,
    },
    /// `tuple<...>`.
    Tuple(Vec<PType>),
    /// `dict<K, V>`.
    Dict(Box<PType>, Box<PType>),
    /// `state<T>`.
    State(Box<PType>),
    /// `...`: any type; literals are typed from their form.
    Any,
}

impl PType {
    /// The [`ValueType`], `None` when some part is `...`.
    pub(super) fn to_value_type(&self) -> Option<ValueType> {
        Some(match self {
            PType::Tensor { dtype, shape } => ValueType::Tensor(TensorType {
                dtype: *dtype,
                shape: shape.clone(),
            }),
            PType::List { element, length } => ValueType::List {
                element: Box::new(element.to_value_type()?),
                length: *length,
            },
            PType::Tuple(items) => ValueType::Tuple(
                items
                    .iter()
                    .map(PType::to_value_type)
                    .collect::<Option<Vec<_>>>()?,
            ),
            PType::Dict(k, v) => ValueType::Dict {
                key: Box::new(k.to_value_type()?),
                value: Box::new(v.to_value_type()?),
            },
            PType::State(inner) => ValueType::State(Box::new(inner.to_value_type()?)),
            PType::Any => return None,
        })
    }
}

/// A literal before typing.
#[derive(Debug)]
pub(super) enum Lit {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// `[a, b, ...]`
    List(Vec<Lit>),
    /// `(a, b, ...)`
    Paren(Vec<Lit>),
    /// `{a, b, ...}`; a dict is braces of two-item braces.
    Brace(Vec<Lit>),
    /// `BLOBFILE(path = ..., offset = ...)`
    Blob {
        file: String,
        offset: u64,
    },
    /// A nested `TYPE(literal)`, already typed.
    Typed(Value),
}

/// A scalar leaf of a tensor literal.
enum Leaf<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
}

impl Parser<'_> {
    /// One literal, untyped.
    pub(super) fn literal(&mut self) -> Result<Lit> {
        self.enter()?;
        let lit = self.literal_inner();
        self.leave();
        lit
    }

    fn literal_inner(&mut self) -> Result<Lit> {
        if self.at_typed_literal() {
            return self.typed_literal().map(Lit::Typed);
        }
        match self.peek().clone() {
            Tok::Punct('[') => self.lit_seq(']').map(Lit::List),
            Tok::Punct('(') => self.lit_seq(')').map(Lit::Paren),
            Tok::Punct('{') => self.lit_seq('}').map(Lit::Brace),
            Tok::Str(s) => {
                self.advance();
                Ok(Lit::Str(s))
            }
            Tok::Ident(s) if s == "BLOBFILE" => self.blobfile(),
            Tok::Ident(s) if s == "true" || s == "false" => {
                self.advance();
                Ok(Lit::Bool(s == "true"))
            }
            Tok::Punct('-') | Tok::Punct('+') => {
                let neg = self.is_punct('-');
                self.advance();
                match self.number()? {
                    Lit::Int(v) if neg => Ok(v
                        .checked_neg()
                        .map(Lit::Int)
                        .unwrap_or(Lit::Float(-(v as f64)))),
                    Lit::Float(v) if neg => Ok(Lit::Float(-v)),
                    other => Ok(other),
                }
            }
            _ => self.number(),
        }
    }

    /// An unsigned number, `inf` or `nan`.
    fn number(&mut self) -> Result<Lit> {
        let lit = match self.peek() {
            Tok::Number(s) => match lexer::parse_number(s) {
                Some(Num::Int(v)) => Lit::Int(v),
                Some(Num::Float(v)) => Lit::Float(v),
                None => return Err(self.error_at(self.here(), format!("malformed number `{s}`"))),
            },
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "inf" | "infinity" => Lit::Float(f64::INFINITY),
                "nan" => Lit::Float(f64::NAN),
                _ => return Err(self.expected("a literal")),
            },
            _ => return Err(self.expected("a literal")),
        };
        self.advance();
        Ok(lit)
    }

    /// `open item, item, ... close` (the opening token is current).
    fn lit_seq(&mut self, close: char) -> Result<Vec<Lit>> {
        self.advance();
        let mut items = Vec::new();
        if self.eat_punct(close) {
            return Ok(items);
        }
        loop {
            items.push(self.literal()?);
            if !self.eat_punct(',') {
                break;
            }
        }
        self.expect_punct(close, "to close the literal")?;
        Ok(items)
    }

    /// `BLOBFILE(path = string("..."), offset = uint64(N))`.
    fn blobfile(&mut self) -> Result<Lit> {
        let at = self.here();
        self.advance();
        self.expect_punct('(', "after `BLOBFILE`")?;
        let (mut file, mut offset) = (None, None);
        loop {
            let key_at = self.here();
            let key = self.expect_ident("`path` or `offset`")?;
            self.expect_punct('=', "after the BLOBFILE field name")?;
            let lit = self.literal()?;
            match (key.as_str(), lit) {
                ("path", Lit::Str(s)) => file = Some(s),
                ("path", Lit::Typed(v)) if v.as_str().is_some() => {
                    file = v.as_str().map(str::to_string)
                }
                ("offset", Lit::Int(n)) => offset = u64::try_from(n).ok(),
                ("offset", Lit::Typed(Value::Tensor(t))) => offset = scalar_u64(&t),
                (k, _) => {
                    return Err(self.error_at(
                        key_at,
                        format!("BLOBFILE field `{k}`: expected `path = string(...)` or `offset = uint64(...)`"),
                    ))
                }
            }
            if !self.eat_punct(',') {
                break;
            }
        }
        self.expect_punct(')', "to close `BLOBFILE(`")?;
        match (file, offset) {
            (Some(file), Some(offset)) => Ok(Lit::Blob { file, offset }),
            _ => Err(self.error_at(
                at,
                "BLOBFILE needs a string `path` and a non-negative integer `offset`",
            )),
        }
    }

    /// Types `lit` by `ty`.
    pub(super) fn convert(&mut self, lit: Lit, ty: &PType, at: Location) -> Result<Value> {
        match (ty, lit) {
            (_, Lit::Typed(v)) => Ok(v),
            (PType::Tensor { dtype, shape }, lit) => {
                self.tensor_value(lit, *dtype, shape.as_deref(), at)
            }
            (PType::List { element, length }, Lit::List(items) | Lit::Paren(items)) => {
                if let Some(n) = length {
                    if *n != items.len() {
                        return Err(self.error_at(
                            at,
                            format!("list type says {n} items, literal has {}", items.len()),
                        ));
                    }
                }
                let values = items
                    .into_iter()
                    .map(|l| self.convert(l, element, at))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Value::List(values))
            }
            (PType::Tuple(types), Lit::Paren(items)) => {
                let all_any = matches!(types.as_slice(), [PType::Any]);
                if !all_any && types.len() != items.len() {
                    return Err(self.error_at(
                        at,
                        format!(
                            "tuple type has {} items, literal has {}",
                            types.len(),
                            items.len()
                        ),
                    ));
                }
                let values = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| self.convert(l, types.get(i).unwrap_or(&PType::Any), at))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Value::Tuple(values))
            }
            (PType::Dict(k, v), Lit::Brace(items)) => self.dict_value(items, k, v, at),
            (PType::State(_), _) => Err(self.error_at(at, "a state cannot be a literal")),
            (PType::Any, lit) => self.untyped_value(lit, at),
            (ty, _) => Err(self.error_at(
                at,
                format!("literal does not match its type {}", describe(ty)),
            )),
        }
    }

    fn dict_value(&mut self, items: Vec<Lit>, k: &PType, v: &PType, at: Location) -> Result<Value> {
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            let Lit::Brace(kv) = item else {
                return Err(self.error_at(at, "dict entries must be `{key, value}` pairs"));
            };
            let mut kv = kv.into_iter();
            let (Some(key), Some(value), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(self.error_at(at, "dict entries must be `{key, value}` pairs"));
            };
            pairs.push((self.convert(key, k, at)?, self.convert(value, v, at)?));
        }
        Ok(Value::Dict(pairs))
    }

    /// A literal with no declared type, typed from its form: integers as
    /// int32 (int64 when large), floats as fp32, nested lists as tensors.
    fn untyped_value(&mut self, lit: Lit, at: Location) -> Result<Value> {
        match lit {
            Lit::Paren(items) => {
                let values = items
                    .into_iter()
                    .map(|l| self.untyped_value(l, at))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Value::Tuple(values))
            }
            Lit::Brace(items) => self.dict_value(items, &PType::Any, &PType::Any, at),
            Lit::Blob { .. } => Err(self.error_at(at, "BLOBFILE needs a declared tensor type")),
            Lit::Typed(v) => Ok(v),
            Lit::List(items) if !items.iter().all(is_tensor_lit) => {
                let values = items
                    .into_iter()
                    .map(|l| self.untyped_value(l, at))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Value::List(values))
            }
            lit => {
                let dtype = infer_dtype(&lit);
                self.tensor_value(lit, dtype, None, at)
            }
        }
    }

    /// A tensor of `dtype` whose declared shape is `declared` (`None`: unknown rank).
    fn tensor_value(
        &mut self,
        lit: Lit,
        dtype: DataType,
        declared: Option<&[Dim]>,
        at: Location,
    ) -> Result<Value> {
        if let Lit::Blob { file, offset } = &lit {
            let shape = declared
                .and_then(|d| d.iter().map(|d| d.fixed()).collect::<Option<Vec<_>>>())
                .ok_or_else(|| self.error_at(at, "a BLOBFILE tensor needs a fully known shape"))?;
            return self
                .blobs
                .tensor(file, *offset, dtype, &shape)
                .map(Value::Tensor);
        }
        let mut leaves = Vec::new();
        let inferred = match lit_shape(&lit, &mut leaves) {
            Some(s) => s,
            None => {
                return Err(self.error_at(at, "tensor literal is not a rectangular nest of scalars"))
            }
        };
        let shape = match declared {
            None => inferred,
            Some(dims) => match dims.iter().map(|d| d.fixed()).collect::<Option<Vec<_>>>() {
                Some(fixed) => {
                    let count = fixed.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                    if count != Some(leaves.len()) {
                        return Err(self.error_at(
                            at,
                            format!(
                                "shape {} needs {} elements, literal has {}",
                                shape_text(dims),
                                count.map_or("too many".to_string(), |c| c.to_string()),
                                leaves.len()
                            ),
                        ));
                    }
                    fixed
                }
                None => {
                    let fits = inferred.len() == dims.len()
                        && dims
                            .iter()
                            .zip(&inferred)
                            .all(|(d, &n)| d.fixed().is_none_or(|f| f == n));
                    if !fits {
                        return Err(self.error_at(
                            at,
                            format!(
                                "literal of shape {inferred:?} does not fit shape {}",
                                shape_text(dims)
                            ),
                        ));
                    }
                    inferred
                }
            },
        };
        let data = self.tensor_data(&leaves, dtype, at)?;
        Ok(Value::Tensor(TensorValue::new(dtype, shape, data)))
    }

    fn tensor_data(
        &self,
        leaves: &[Leaf<'_>],
        dtype: DataType,
        at: Location,
    ) -> Result<TensorData> {
        let bad =
            |what: &str| self.error_at(at, format!("expected {dtype} elements, found {what}"));
        Ok(match dtype {
            DataType::String => TensorData::Str(
                leaves
                    .iter()
                    .map(|l| match l {
                        Leaf::Str(s) => Ok(s.to_string()),
                        _ => Err(bad("a non-string")),
                    })
                    .collect::<Result<_>>()?,
            ),
            DataType::Bool => TensorData::Bool(
                leaves
                    .iter()
                    .map(|l| match l {
                        Leaf::Bool(b) => Ok(*b),
                        Leaf::Int(0) => Ok(false),
                        Leaf::Int(1) => Ok(true),
                        _ => Err(bad("a non-boolean")),
                    })
                    .collect::<Result<_>>()?,
            ),
            d if d.is_float() => TensorData::F64(
                leaves
                    .iter()
                    .map(|l| match l {
                        Leaf::Float(v) => Ok(*v),
                        Leaf::Int(v) => Ok(*v as f64),
                        _ => Err(bad("a non-number")),
                    })
                    .collect::<Result<_>>()?,
            ),
            d => {
                let (lo, hi) = int_range(d);
                TensorData::I64(
                    leaves
                        .iter()
                        .map(|l| {
                            let v = match l {
                                Leaf::Int(v) => i128::from(*v),
                                Leaf::Float(f) if f.fract() == 0.0 && f.abs() < 1e19 => *f as i128,
                                _ => return Err(bad("a non-integer")),
                            };
                            if v < lo || v > hi {
                                return Err(bad(&format!("{v}, out of range")));
                            }
                            i64::try_from(v).map_err(|_| bad(&format!("{v}, out of range")))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        })
    }
}

/// The shape of a nest of lists with scalar leaves, leaves collected in
/// order; `None` when ragged or holding a non-scalar.
fn lit_shape<'a>(lit: &'a Lit, leaves: &mut Vec<Leaf<'a>>) -> Option<Vec<usize>> {
    let mut shape = Vec::new();
    let mut probe = lit;
    while let Lit::List(items) = probe {
        shape.push(items.len());
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    collect_leaves(lit, &shape, leaves).then_some(shape)
}

fn collect_leaves<'a>(lit: &'a Lit, shape: &[usize], leaves: &mut Vec<Leaf<'a>>) -> bool {
    match (lit, shape.split_first()) {
        (Lit::List(items), Some((&n, rest))) => {
            items.len() == n && items.iter().all(|l| collect_leaves(l, rest, leaves))
        }
        (Lit::Int(v), None) => push(leaves, Leaf::Int(*v)),
        (Lit::Float(v), None) => push(leaves, Leaf::Float(*v)),
        (Lit::Bool(v), None) => push(leaves, Leaf::Bool(*v)),
        (Lit::Str(s), None) => push(leaves, Leaf::Str(s)),
        _ => false,
    }
}

fn push<'a>(leaves: &mut Vec<Leaf<'a>>, leaf: Leaf<'a>) -> bool {
    leaves.push(leaf);
    true
}

/// True for a scalar or a list of lists/scalars (a tensor literal).
fn is_tensor_lit(lit: &Lit) -> bool {
    match lit {
        Lit::Int(_) | Lit::Float(_) | Lit::Bool(_) | Lit::Str(_) => true,
        Lit::List(items) => items.iter().all(is_tensor_lit),
        _ => false,
    }
}

/// The dtype of an untyped tensor literal from its first leaf kind.
fn infer_dtype(lit: &Lit) -> DataType {
    let mut leaves = Vec::new();
    let _ = lit_shape(lit, &mut leaves);
    let mut dtype = DataType::Int32;
    for l in &leaves {
        match l {
            Leaf::Str(_) => return DataType::String,
            Leaf::Bool(_) => return DataType::Bool,
            Leaf::Float(_) => dtype = DataType::Fp32,
            Leaf::Int(v) if i32::try_from(*v).is_err() && dtype == DataType::Int32 => {
                dtype = DataType::Int64
            }
            Leaf::Int(_) => {}
        }
    }
    dtype
}

/// The inclusive value range of an integer dtype.
fn int_range(d: DataType) -> (i128, i128) {
    let bits = d.bit_width().unwrap_or(64);
    let signed = matches!(
        d,
        DataType::Int4 | DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    );
    if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

fn scalar_u64(t: &TensorValue) -> Option<u64> {
    match &t.data {
        TensorData::I64(v) if v.len() == 1 => u64::try_from(v[0]).ok(),
        _ => None,
    }
}

fn shape_text(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn describe(ty: &PType) -> String {
    ty.to_value_type()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "with `...`".to_string())
}

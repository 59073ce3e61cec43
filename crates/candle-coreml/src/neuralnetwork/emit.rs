//! Building the MIL ops a NeuralNetwork layer becomes.
//!
//! Every value the front end creates is an fp32 tensor unless said otherwise
//! (NeuralNetwork layers compute in float; indices and shapes are cast where
//! a MIL op needs integers). The emitter knows the rank of a value when the
//! layer rules give it, never a size it could get wrong.

use std::collections::{BTreeMap, HashSet};

use crate::mil::{
    Argument, Binding, Block, DataType, Dim, NamedValueType, Operation, TensorData, TensorType,
    TensorValue, Value, ValueType,
};

/// A value of the program being built: its MIL name and, when known, its rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Val {
    /// MIL name.
    pub(crate) name: String,
    /// Rank, when the layer rules give it.
    pub(crate) rank: Option<usize>,
}

impl Val {
    /// The same value with rank `rank`.
    pub(crate) fn with_rank(&self, rank: Option<usize>) -> Val {
        Val {
            name: self.name.clone(),
            rank,
        }
    }
}

/// One argument of an emitted op.
pub(crate) enum Arg {
    /// A value of the program.
    V(Val),
    /// Several values (a variadic input).
    Vs(Vec<Val>),
    /// A constant.
    C(TensorValue),
    /// Several constants (a variadic input of constants).
    Cs(Vec<TensorValue>),
}

/// Collects the ops of one function, naming values uniquely.
#[derive(Default)]
pub(crate) struct Emitter {
    pub(crate) ops: Vec<Operation>,
    taken: HashSet<String>,
}

impl Emitter {
    /// A name not used yet: `hint` itself when free, else `hint#k`.
    pub(crate) fn fresh(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut k = 1;
        while self.taken.contains(&name) {
            name = format!("{hint}#{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// Claims `name` for a value (a blob written by its first layer).
    pub(crate) fn claim(&mut self, name: &str) -> bool {
        self.taken.insert(name.to_string())
    }

    /// Emits `op_type` with `args`; outputs are named after `hint` with the
    /// given dtypes and ranks.
    pub(crate) fn op(
        &mut self,
        op_type: &str,
        hint: &str,
        args: Vec<(&str, Arg)>,
        outs: &[(DataType, Option<usize>)],
    ) -> Vec<Val> {
        let mut inputs = BTreeMap::new();
        for (name, arg) in args {
            let bindings = match arg {
                Arg::V(v) => vec![Binding::Name(v.name)],
                Arg::Vs(vs) => vs.into_iter().map(|v| Binding::Name(v.name)).collect(),
                Arg::C(c) => vec![Binding::Value(Value::Tensor(c))],
                Arg::Cs(cs) => cs
                    .into_iter()
                    .map(|c| Binding::Value(Value::Tensor(c)))
                    .collect(),
            };
            inputs.insert(name.to_string(), Argument { bindings });
        }
        let outputs: Vec<NamedValueType> = outs
            .iter()
            .map(|&(dtype, rank)| NamedValueType {
                name: self.fresh(hint),
                ty: ValueType::Tensor(TensorType {
                    dtype,
                    shape: rank.map(|r| vec![Dim::Unknown; r]),
                }),
            })
            .collect();
        let vals = outputs
            .iter()
            .zip(outs)
            .map(|(o, &(_, rank))| Val {
                name: o.name.clone(),
                rank,
            })
            .collect();
        self.ops.push(Operation {
            op_type: op_type.to_string(),
            inputs,
            outputs,
            blocks: Vec::new(),
            attributes: BTreeMap::from([("name".to_string(), Value::string(hint))]),
            location: None,
        });
        vals
    }

    /// Runs `f`, returning the ops it emitted apart from the ones before
    /// (the body of a nested block).
    pub(crate) fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> crate::error::Result<T>,
    ) -> crate::error::Result<(Vec<Operation>, T)> {
        let outer = std::mem::take(&mut self.ops);
        let r = f(self);
        let inner = std::mem::replace(&mut self.ops, outer);
        r.map(|t| (inner, t))
    }

    /// A new block input: an fp32 value of rank `rank` named after `hint`.
    pub(crate) fn block_input(&mut self, hint: &str, rank: Option<usize>) -> (NamedValueType, Val) {
        let name = self.fresh(hint);
        let ty = ValueType::Tensor(TensorType {
            dtype: DataType::Fp32,
            shape: rank.map(|r| vec![Dim::Unknown; r]),
        });
        (
            NamedValueType {
                name: name.clone(),
                ty,
            },
            Val { name, rank },
        )
    }

    /// Emits an op with nested `blocks` and fp32 outputs of the given ranks.
    pub(crate) fn op_with_blocks(
        &mut self,
        op_type: &str,
        hint: &str,
        args: Vec<(&str, Arg)>,
        ranks: &[Option<usize>],
        blocks: Vec<Block>,
    ) -> Vec<Val> {
        let outs: Vec<(DataType, Option<usize>)> =
            ranks.iter().map(|&r| (DataType::Fp32, r)).collect();
        let vals = self.op(op_type, hint, args, &outs);
        if let Some(op) = self.ops.last_mut() {
            op.blocks = blocks;
        }
        vals
    }

    /// Emits an op with one output named exactly `name` (claimed beforehand
    /// with [`Emitter::claim`], or never used).
    pub(crate) fn named_op(
        &mut self,
        op_type: &str,
        name: &str,
        args: Vec<(&str, Arg)>,
        dtype: DataType,
        rank: Option<usize>,
    ) -> Val {
        self.taken.insert(name.to_string());
        let v = self.typed_op(op_type, name, args, dtype, rank);
        let op = self.ops.last_mut().expect("just emitted");
        op.outputs[0].name = name.to_string();
        self.taken.remove(&v.name);
        self.taken.insert(name.to_string());
        Val {
            name: name.to_string(),
            rank,
        }
    }

    /// Emits an op with one fp32 output of rank `rank`.
    pub(crate) fn f32_op(
        &mut self,
        op_type: &str,
        hint: &str,
        args: Vec<(&str, Arg)>,
        rank: Option<usize>,
    ) -> Val {
        self.typed_op(op_type, hint, args, DataType::Fp32, rank)
    }

    /// Emits an op with one output of `dtype` and rank `rank`.
    pub(crate) fn typed_op(
        &mut self,
        op_type: &str,
        hint: &str,
        args: Vec<(&str, Arg)>,
        dtype: DataType,
        rank: Option<usize>,
    ) -> Val {
        self.op(op_type, hint, args, &[(dtype, rank)])
            .pop()
            .expect("one output")
    }

    /// `x` cast to `dtype` (as MIL spells it).
    pub(crate) fn cast(&mut self, x: &Val, dtype: DataType, hint: &str) -> Val {
        self.typed_op(
            "cast",
            hint,
            vec![
                ("x", Arg::V(x.clone())),
                ("dtype", Arg::C(string(dtype.mil_name()))),
            ],
            dtype,
            x.rank,
        )
    }

    /// An elementwise binary op of fp32 values (numpy broadcasting).
    pub(crate) fn binary(&mut self, op_type: &str, x: &Val, y: &Val, hint: &str) -> Val {
        let rank = match (x.rank, y.rank) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        self.f32_op(
            op_type,
            hint,
            vec![("x", Arg::V(x.clone())), ("y", Arg::V(y.clone()))],
            rank,
        )
    }

    /// An elementwise op of one fp32 value and a scalar constant.
    pub(crate) fn binary_scalar(&mut self, op_type: &str, x: &Val, y: f32, hint: &str) -> Val {
        self.f32_op(
            op_type,
            hint,
            vec![("x", Arg::V(x.clone())), ("y", Arg::C(float(y)))],
            x.rank,
        )
    }

    /// An elementwise op of an fp32 value and a constant tensor.
    pub(crate) fn binary_const(
        &mut self,
        op_type: &str,
        x: &Val,
        y: TensorValue,
        hint: &str,
    ) -> Val {
        let rank = x.rank.map(|r| r.max(y.shape.len()));
        self.f32_op(
            op_type,
            hint,
            vec![("x", Arg::V(x.clone())), ("y", Arg::C(y))],
            rank,
        )
    }

    /// An op of one input `x` and constant parameters, keeping `x`'s rank.
    pub(crate) fn unary(
        &mut self,
        op_type: &str,
        x: &Val,
        params: Vec<(&str, TensorValue)>,
        hint: &str,
    ) -> Val {
        let mut args = vec![("x", Arg::V(x.clone()))];
        args.extend(params.into_iter().map(|(n, c)| (n, Arg::C(c))));
        self.f32_op(op_type, hint, args, x.rank)
    }

    /// `x` reshaped to the constant `shape` (-1 inferred).
    pub(crate) fn reshape(&mut self, x: &Val, shape: &[i64], hint: &str) -> Val {
        self.f32_op(
            "reshape",
            hint,
            vec![("x", Arg::V(x.clone())), ("shape", Arg::C(ints(shape)))],
            Some(shape.len()),
        )
    }

    /// `x` reshaped to the runtime int32 shape `shape` of `rank` values.
    pub(crate) fn reshape_to(
        &mut self,
        x: &Val,
        shape: &Val,
        rank: Option<usize>,
        hint: &str,
    ) -> Val {
        self.f32_op(
            "reshape",
            hint,
            vec![("x", Arg::V(x.clone())), ("shape", Arg::V(shape.clone()))],
            rank,
        )
    }

    /// The int32 shape of `x`.
    pub(crate) fn shape(&mut self, x: &Val, hint: &str) -> Val {
        self.typed_op(
            "shape",
            hint,
            vec![("x", Arg::V(x.clone()))],
            DataType::Int32,
            Some(1),
        )
    }

    /// `v[begin..end]` of a rank-1 int32 value (Python-style negative bounds;
    /// `end` `None` = to the end).
    pub(crate) fn slice1(&mut self, v: &Val, begin: i64, end: Option<i64>, hint: &str) -> Val {
        self.typed_op(
            "slice_by_index",
            hint,
            vec![
                ("x", Arg::V(v.clone())),
                ("begin", Arg::C(ints(&[begin]))),
                ("end", Arg::C(ints(&[end.unwrap_or(0)]))),
                ("end_mask", Arg::C(bools(&[end.is_none()]))),
            ],
            DataType::Int32,
            Some(1),
        )
    }

    /// The rank-1 int32 values `parts` joined.
    pub(crate) fn concat_ints(&mut self, parts: Vec<Arg>, hint: &str) -> Val {
        let vals: Vec<Val> = parts
            .into_iter()
            .map(|p| match p {
                Arg::V(v) => v,
                Arg::C(c) => self.constant(c, hint),
                Arg::Vs(_) | Arg::Cs(_) => unreachable!("concat_ints takes single values"),
            })
            .collect();
        self.typed_op(
            "concat",
            hint,
            vec![("values", Arg::Vs(vals)), ("axis", Arg::C(int(0)))],
            DataType::Int32,
            Some(1),
        )
    }

    /// A `const` op holding `c`.
    pub(crate) fn constant(&mut self, c: TensorValue, hint: &str) -> Val {
        let rank = c.shape.len();
        let dtype = c.dtype;
        let name = self.fresh(hint);
        self.ops.push(Operation {
            op_type: "const".into(),
            inputs: BTreeMap::new(),
            outputs: vec![NamedValueType {
                name: name.clone(),
                ty: ValueType::Tensor(TensorType::new(dtype, &c.shape)),
            }],
            blocks: Vec::new(),
            attributes: BTreeMap::from([
                ("name".to_string(), Value::string(hint)),
                ("val".to_string(), Value::Tensor(c)),
            ]),
            location: None,
        });
        Val {
            name,
            rank: Some(rank),
        }
    }
}

/// An int32 1-D constant.
pub(crate) fn ints(v: &[i64]) -> TensorValue {
    TensorValue::new(DataType::Int32, vec![v.len()], TensorData::I64(v.to_vec()))
}

/// An int32 scalar constant.
pub(crate) fn int(v: i64) -> TensorValue {
    TensorValue::new(DataType::Int32, vec![], TensorData::I64(vec![v]))
}

/// An fp32 scalar constant.
pub(crate) fn float(v: f32) -> TensorValue {
    TensorValue::new(DataType::Fp32, vec![], TensorData::F32(vec![v]))
}

/// An fp32 constant of `shape`.
pub(crate) fn floats(v: Vec<f32>, shape: &[usize]) -> TensorValue {
    TensorValue::new(DataType::Fp32, shape.to_vec(), TensorData::F32(v))
}

/// A bool scalar constant.
pub(crate) fn boolean(v: bool) -> TensorValue {
    TensorValue::new(DataType::Bool, vec![], TensorData::Bool(vec![v]))
}

/// A bool 1-D constant.
pub(crate) fn bools(v: &[bool]) -> TensorValue {
    TensorValue::new(DataType::Bool, vec![v.len()], TensorData::Bool(v.to_vec()))
}

/// A string constant.
pub(crate) fn string(s: &str) -> TensorValue {
    TensorValue::new(
        DataType::String,
        vec![],
        TensorData::Str(vec![s.to_string()]),
    )
}

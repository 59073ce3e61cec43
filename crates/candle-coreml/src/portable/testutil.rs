//! Test helpers: run one op of a hand-built program through the evaluator.

use candle_core::{DType, Device, Tensor};

use super::ops::registry;
use super::plan::{build_function, BuildCtx, Plan};
use super::state::StateStore;
use crate::error::Result;
use crate::mil::{
    Argument, Binding, Block, DataType, Function, NamedValueType, Operation, TensorData,
    TensorType, TensorValue, Value, ValueType,
};
use crate::options::ComputePrecision;

/// A runtime input or a constant argument of a test op.
pub(crate) enum Arg {
    /// A runtime tensor (becomes a function input).
    T(Tensor),
    /// A constant.
    C(TensorValue),
    /// A variadic argument of runtime tensors.
    Many(Vec<Tensor>),
    /// A variadic argument of constants (`reshape_like`'s `begins`).
    Cs(Vec<TensorValue>),
}

/// The MIL dtype a test tensor stands for.
fn mil_dtype(d: DType) -> DataType {
    match d {
        DType::F16 => DataType::Fp16,
        DType::F64 => DataType::Fp64,
        DType::I64 => DataType::Int32,
        DType::I32 => DataType::Int32,
        DType::U8 => DataType::Bool,
        _ => DataType::Fp32,
    }
}

/// Runs `op_type` with `args` and outputs of the given MIL dtypes, on CPU in f32.
pub(crate) fn run_op(
    op_type: &str,
    args: Vec<(&str, Arg)>,
    outputs: &[DataType],
) -> Result<Vec<Tensor>> {
    let mut inputs = Vec::new();
    let mut fn_inputs = Vec::new();
    let mut op_inputs = std::collections::BTreeMap::new();
    for (name, arg) in args {
        let bindings = match arg {
            Arg::C(tv) => vec![Binding::Value(Value::Tensor(tv))],
            Arg::T(t) => vec![bind_input(&mut inputs, &mut fn_inputs, t)],
            Arg::Many(ts) => ts
                .into_iter()
                .map(|t| bind_input(&mut inputs, &mut fn_inputs, t))
                .collect(),
            Arg::Cs(tvs) => tvs
                .into_iter()
                .map(|tv| Binding::Value(Value::Tensor(tv)))
                .collect(),
        };
        op_inputs.insert(name.to_string(), Argument { bindings });
    }
    let outs: Vec<NamedValueType> = outputs
        .iter()
        .enumerate()
        .map(|(i, &d)| NamedValueType {
            name: format!("out{i}"),
            ty: ValueType::Tensor(TensorType {
                dtype: d,
                shape: None,
            }),
        })
        .collect();
    let op = Operation {
        op_type: op_type.to_string(),
        inputs: op_inputs,
        outputs: outs.clone(),
        blocks: vec![],
        attributes: Default::default(),
        location: None,
    };
    let f = Function {
        name: "main".into(),
        inputs: fn_inputs,
        opset: "CoreML8".into(),
        block: Block {
            inputs: vec![],
            outputs: outs.iter().map(|o| o.name.clone()).collect(),
            operations: vec![op],
            attributes: Default::default(),
        },
        attributes: Default::default(),
    };
    prepare(&f)?.run(inputs, &mut StateStore::default())
}

fn bind_input(inputs: &mut Vec<Tensor>, fn_inputs: &mut Vec<NamedValueType>, t: Tensor) -> Binding {
    let name = format!("in{}", fn_inputs.len());
    fn_inputs.push(NamedValueType {
        name: name.clone(),
        ty: ValueType::Tensor(TensorType::new(mil_dtype(t.dtype()), t.dims())),
    });
    let t = if t.dtype().is_int() {
        t.to_dtype(DType::I64).expect("int cast")
    } else {
        t
    };
    inputs.push(t);
    Binding::Name(name)
}

/// An int32 constant of the given shape.
pub(crate) fn ints(v: &[i64], shape: &[usize]) -> TensorValue {
    TensorValue::new(DataType::Int32, shape.to_vec(), TensorData::I64(v.to_vec()))
}

/// An int32 1-D constant.
pub(crate) fn ints1(v: &[i64]) -> TensorValue {
    ints(v, &[v.len()])
}

/// An int32 scalar constant.
pub(crate) fn int(v: i64) -> TensorValue {
    ints(&[v], &[])
}

/// An fp32 constant of the given shape.
pub(crate) fn floats(v: &[f64], shape: &[usize]) -> TensorValue {
    TensorValue::new(DataType::Fp32, shape.to_vec(), TensorData::F64(v.to_vec()))
}

/// An fp32 scalar constant.
pub(crate) fn float(v: f64) -> TensorValue {
    floats(&[v], &[])
}

/// A bool scalar constant.
pub(crate) fn boolean(v: bool) -> TensorValue {
    TensorValue::new(DataType::Bool, vec![], TensorData::Bool(vec![v]))
}

/// A string constant.
pub(crate) fn string(s: &str) -> TensorValue {
    TensorValue::new(
        DataType::String,
        vec![],
        TensorData::Str(vec![s.to_string()]),
    )
}

/// Asserts two f32 tensors are equal within `tol` (absolute).
pub(crate) fn assert_close(got: &Tensor, want: &[f32], shape: &[usize], tol: f32) {
    assert_eq!(got.dims(), shape, "shape");
    let g: Vec<f32> = got
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            a == b || (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
            "element {i}: got {a}, want {b}"
        );
    }
}

/// One op of [`build_program`]: type, inputs bound by name, output name.
pub(crate) type TestOp<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// Builds and prepares a program of `ops` (each `(op_type, inputs by name,
/// output name)`) over one fp32 input `x`, returning the load result.
pub(crate) fn build_program(ops: &[TestOp<'_>]) -> Result<()> {
    let ty = ValueType::Tensor(TensorType::new(DataType::Fp32, &[2]));
    let operations = ops
        .iter()
        .map(|(t, ins, out)| Operation {
            op_type: t.to_string(),
            inputs: ins
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Argument::single(Binding::Name(v.to_string())),
                    )
                })
                .collect(),
            outputs: vec![NamedValueType {
                name: out.to_string(),
                ty: ty.clone(),
            }],
            blocks: vec![],
            attributes: Default::default(),
            location: None,
        })
        .collect();
    let f = Function {
        name: "main".into(),
        inputs: vec![NamedValueType {
            name: "x".into(),
            ty: ty.clone(),
        }],
        opset: "CoreML8".into(),
        block: Block {
            inputs: vec![],
            outputs: vec![ops.last().map(|o| o.2.to_string()).unwrap_or_default()],
            operations,
            attributes: Default::default(),
        },
        attributes: Default::default(),
    };
    prepare(&f).map(|_| ())
}

/// Prepares `f` on the CPU in f32, as `Model::load` would.
fn prepare(f: &Function) -> Result<Plan> {
    let registry = registry();
    let ctx = BuildCtx {
        registry: &registry,
        device: &Device::Cpu,
        precision: ComputePrecision::Float32,
        function: "main",
        consts: &Default::default(),
    };
    build_function(&ctx, f)
}

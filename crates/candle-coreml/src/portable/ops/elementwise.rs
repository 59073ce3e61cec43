//! `elementwise_binary` and `elementwise_unary` ops (MIL iOS15–iOS18), plus
//! `cast` and `identity`.
//!
//! Binary ops broadcast like numpy. Integers are computed in i64, bools in
//! u8 (0/1), floats in the program's compute dtype; every result is cast to
//! the op's declared output dtype at the end.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::numeric::{full_like, isnan, round_half_even, to_float, where_scalar};
use crate::error::Result;
use crate::mil::DataType;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// A binary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Add,
    Sub,
    Mul,
    RealDiv,
    FloorDiv,
    Mod,
    Pow,
    Maximum,
    Minimum,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    And,
    Or,
    Xor,
}

const BINARY: &[(&str, Bin)] = &[
    ("add", Bin::Add),
    ("sub", Bin::Sub),
    ("mul", Bin::Mul),
    ("real_div", Bin::RealDiv),
    ("floor_div", Bin::FloorDiv),
    ("mod", Bin::Mod),
    ("pow", Bin::Pow),
    ("maximum", Bin::Maximum),
    ("minimum", Bin::Minimum),
    ("equal", Bin::Equal),
    ("not_equal", Bin::NotEqual),
    ("less", Bin::Less),
    ("less_equal", Bin::LessEqual),
    ("greater", Bin::Greater),
    ("greater_equal", Bin::GreaterEqual),
    ("logical_and", Bin::And),
    ("logical_or", Bin::Or),
    ("logical_xor", Bin::Xor),
];

/// A unary op without parameters, or with an `epsilon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Un {
    Abs,
    Acos,
    Asin,
    Atan,
    Atanh,
    Acosh,
    Asinh,
    Ceil,
    Cos,
    Cosh,
    Erf,
    Exp,
    Exp2,
    Floor,
    Inverse,
    Log,
    LogicalNot,
    Round,
    Rsqrt,
    Sign,
    Sin,
    Sinh,
    Sqrt,
    Square,
    Tan,
    Tanh,
}

const UNARY: &[(&str, Un)] = &[
    ("abs", Un::Abs),
    ("acos", Un::Acos),
    ("asin", Un::Asin),
    ("atan", Un::Atan),
    ("atanh", Un::Atanh),
    ("acosh", Un::Acosh),
    ("asinh", Un::Asinh),
    ("ceil", Un::Ceil),
    ("cos", Un::Cos),
    ("cosh", Un::Cosh),
    ("erf", Un::Erf),
    ("exp", Un::Exp),
    ("exp2", Un::Exp2),
    ("floor", Un::Floor),
    ("inverse", Un::Inverse),
    ("log", Un::Log),
    ("logical_not", Un::LogicalNot),
    ("round", Un::Round),
    ("rsqrt", Un::Rsqrt),
    ("sign", Un::Sign),
    ("sin", Un::Sin),
    ("sinh", Un::Sinh),
    ("sqrt", Un::Sqrt),
    ("square", Un::Square),
    ("tan", Un::Tan),
    ("tanh", Un::Tanh),
];

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    for (name, _) in BINARY {
        reg.insert(name, build_binary);
    }
    for (name, _) in UNARY {
        reg.insert(name, build_unary);
    }
    reg.insert("clip", build_clip);
    reg.insert("threshold", build_threshold);
    reg.insert("cast", build_cast);
    reg.insert("identity", build_identity);
}

fn lookup<T: Copy>(b: &OpBuilder<'_>, table: &[(&str, T)]) -> Result<T> {
    let name = b.op().op_type.as_str();
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| b.err("op is not in this family's table"))
}

// ---------------------------------------------------------------------------
// Binary ops.

fn build_binary(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let op = lookup(b, BINARY)?;
    let x = b.input("x")?;
    let y = b.input("y")?;
    let out = b.output_dtype(0)?;
    // `pow` with a constant scalar exponent uses candle's exact `powf`.
    let const_exp = match (op, b.constant("y")) {
        (Bin::Pow, Some(c)) if c.shape.iter().product::<usize>() == 1 => {
            let e = c
                .to_f64_vec()
                .map_err(|e| b.err(format!("input \"y\": {e}")))?;
            e.first().map(|&v| (v, c.shape.clone()))
        }
        _ => None,
    };
    Ok(kernel(move |a| {
        let (xt, yt) = (a.tensor(x)?, a.tensor(y)?);
        let r = match &const_exp {
            Some((e, shape)) if xt.dtype().is_float() => pow_scalar(xt, *e, shape)?,
            _ => binary(op, xt, yt, out)?,
        };
        Ok(vec![r.to_dtype(out)?])
    }))
}

/// Both operands broadcast to their common shape, in one dtype.
fn broadcast_pair(x: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
    let (x, y) = super::util::unify(x, y)?;
    let shape = x
        .shape()
        .broadcast_shape_binary_op(y.shape(), "broadcast")?;
    Ok((x.broadcast_as(&shape)?, y.broadcast_as(&shape)?))
}

fn binary(op: Bin, x: &Tensor, y: &Tensor, out: DType) -> Result<Tensor> {
    let (x, y) = super::util::unify(x, y)?;
    let float = x.dtype().is_float();
    Ok(match op {
        Bin::Add => x.broadcast_add(&y)?,
        Bin::Sub => x.broadcast_sub(&y)?,
        Bin::Mul => x.broadcast_mul(&y)?,
        Bin::RealDiv if float => x.broadcast_div(&y)?,
        Bin::RealDiv => {
            let d = if out.is_float() { out } else { DType::F64 };
            x.to_dtype(d)?.broadcast_div(&y.to_dtype(d)?)?
        }
        Bin::FloorDiv | Bin::Mod if float => {
            let q = x.broadcast_div(&y)?.floor()?;
            if op == Bin::FloorDiv {
                q
            } else {
                x.broadcast_sub(&q.broadcast_mul(&y)?)?
            }
        }
        Bin::FloorDiv | Bin::Mod => int_floor_div_mod(&x, &y, op == Bin::FloorDiv)?,
        Bin::Pow => pow_general(&x, &y, out)?,
        Bin::Maximum | Bin::Minimum => {
            let r = if op == Bin::Maximum {
                x.broadcast_maximum(&y)?
            } else {
                x.broadcast_minimum(&y)?
            };
            if float {
                // candle keeps the left operand on NaN; numpy propagates either.
                let yb = y.broadcast_as(r.shape())?;
                isnan(&yb)?.where_cond(&yb, &r)?
            } else {
                r
            }
        }
        Bin::Equal => x.broadcast_eq(&y)?,
        Bin::NotEqual => x.broadcast_ne(&y)?,
        Bin::Less => x.broadcast_lt(&y)?,
        Bin::LessEqual => x.broadcast_le(&y)?,
        Bin::Greater => x.broadcast_gt(&y)?,
        Bin::GreaterEqual => x.broadcast_ge(&y)?,
        Bin::And | Bin::Or | Bin::Xor => {
            let (x, y) = (to_bool(&x)?, to_bool(&y)?);
            match op {
                Bin::And => x.broadcast_mul(&y)?,
                Bin::Or => x.broadcast_maximum(&y)?,
                _ => x.broadcast_ne(&y)?,
            }
        }
    })
}

/// A u8 0/1 tensor: nonzero is true.
fn to_bool(t: &Tensor) -> Result<Tensor> {
    if t.dtype() == DType::U8 {
        Ok(t.clone())
    } else {
        Ok(t.ne(0.0)?)
    }
}

/// Integer `floor_div` / `mod` with numpy semantics (rounding toward negative
/// infinity; the remainder takes the divisor's sign; division by zero gives 0).
fn int_floor_div_mod(x: &Tensor, y: &Tensor, want_div: bool) -> Result<Tensor> {
    let (x, y) = broadcast_pair(x, y)?;
    let zero = y.eq(0.0)?;
    let ysafe = zero.where_cond(&y.ones_like()?, &y)?;
    let q = x.div(&ysafe)?;
    let r = x.sub(&q.mul(&ysafe)?)?;
    let signs_differ = r.lt(0.0)?.ne(&ysafe.lt(0.0)?)?;
    let adjust = r.ne(0.0)?.mul(&signs_differ)?.to_dtype(x.dtype())?;
    let v = if want_div {
        q.sub(&adjust)?
    } else {
        r.add(&adjust.mul(&ysafe)?)?
    };
    where_scalar(&zero, 0.0, &v)
}

/// `x ** e` for a constant scalar `e` of shape `e_shape` (broadcast like numpy).
fn pow_scalar(x: &Tensor, e: f64, e_shape: &[usize]) -> Result<Tensor> {
    let r = if e == 2.0 {
        x.sqr()?
    } else if e == 1.0 {
        x.clone()
    } else {
        x.powf(e)?
    };
    if e_shape.len() > r.rank() {
        let shape = r
            .shape()
            .broadcast_shape_binary_op(&e_shape.into(), "pow")?;
        return Ok(r.broadcast_as(shape)?.contiguous()?);
    }
    Ok(r)
}

/// `x ** y` for tensors, computed in f64 with numpy's rules for negative bases
/// (integer exponents keep the sign, others give NaN), `x ** 0 == 1` and
/// `1 ** y == 1`. Integer results are rounded.
fn pow_general(x: &Tensor, y: &Tensor, out: DType) -> Result<Tensor> {
    let (x, y) = broadcast_pair(x, y)?;
    let (xf, yf) = (x.to_dtype(DType::F64)?, y.to_dtype(DType::F64)?);
    let mag = yf.mul(&xf.abs()?.log()?)?.exp()?;
    let y_int = yf.floor()?.eq(&yf)?;
    let half = yf.affine(0.5, 0.0)?;
    let y_odd = y_int.mul(&half.floor()?.ne(&half)?)?;
    let neg = xf.lt(0.0)?;
    let signed = y_odd.where_cond(&mag.neg()?, &mag)?;
    let nan = full_like(f64::NAN, &mag)?;
    let for_neg = y_int.where_cond(&signed, &nan)?;
    let r = neg.where_cond(&for_neg, &mag)?;
    let one = yf.eq(0.0)?.maximum(&xf.eq(1.0)?)?;
    let r = where_scalar(&one, 1.0, &r)?;
    if out.is_float() {
        Ok(r)
    } else {
        round_half_even(&r)
    }
}

// ---------------------------------------------------------------------------
// Unary ops.

fn build_unary(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let op = lookup(b, UNARY)?;
    let x = b.input("x")?;
    let out = b.output_dtype(0)?;
    let eps = match op {
        Un::Inverse => b.float_or("epsilon", 1e-4)?,
        Un::Log => b.float_or("epsilon", 1e-45)?,
        Un::Rsqrt => b.float_or("epsilon", 1e-12)?,
        _ => 0.0,
    };
    Ok(kernel(move |a| {
        let r = unary(op, a.tensor(x)?, eps, out)?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

/// Applies `f` element by element on the host in f64: for the functions candle
/// has no kernel for (inverse trigonometric and hyperbolic functions).
fn host_map(x: &Tensor, f: fn(f64) -> f64) -> Result<Tensor> {
    let v: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let v: Vec<f64> = v.into_iter().map(f).collect();
    Ok(Tensor::from_vec(v, x.shape(), x.device())?)
}

fn unary(op: Un, x: &Tensor, eps: f64, out: DType) -> Result<Tensor> {
    let int = !x.dtype().is_float();
    // Ops defined on integers stay in i64; the others compute in a float
    // dtype (f64 when the result is an integer, so rounding is exact).
    match op {
        Un::Abs if int => return Ok(x.abs()?),
        Un::Sign if int => return Ok(x.sign()?),
        Un::Square if int => return Ok(x.mul(x)?),
        Un::Ceil | Un::Floor | Un::Round if int => return Ok(x.clone()),
        Un::LogicalNot => return Ok(to_bool(x)?.eq(0.0)?),
        _ => {}
    }
    let x = if int && !out.is_float() {
        x.to_dtype(DType::F64)?
    } else {
        to_float(x, out)?
    };
    let r = match op {
        Un::Abs => x.abs()?,
        Un::Ceil => x.ceil()?,
        Un::Floor => x.floor()?,
        Un::Round => round_half_even(&x)?,
        Un::Cos => x.cos()?,
        Un::Sin => x.sin()?,
        Un::Tan => host_map(&x, f64::tan)?,
        Un::Acos => host_map(&x, f64::acos)?,
        Un::Asin => host_map(&x, f64::asin)?,
        Un::Atan => host_map(&x, f64::atan)?,
        Un::Atanh => host_map(&x, f64::atanh)?,
        Un::Acosh => host_map(&x, f64::acosh)?,
        Un::Asinh => host_map(&x, f64::asinh)?,
        Un::Sinh => host_map(&x, f64::sinh)?,
        Un::Cosh => host_map(&x, f64::cosh)?,
        Un::Tanh => x.tanh()?,
        Un::Erf => x.erf()?,
        Un::Exp => x.exp()?,
        Un::Exp2 => x.affine(std::f64::consts::LN_2, 0.0)?.exp()?,
        Un::Inverse => x.affine(1.0, eps)?.recip()?,
        Un::Log => x.affine(1.0, eps)?.log()?,
        Un::Rsqrt => x.affine(1.0, eps)?.sqrt()?.recip()?,
        Un::Sign => {
            // candle gives 0 for NaN; numpy keeps NaN.
            let s = x.sign()?;
            isnan(&x)?.where_cond(&x, &s)?
        }
        Un::Sqrt => x.sqrt()?,
        Un::Square => x.sqr()?,
        Un::LogicalNot => x.eq(0.0)?,
    };
    if int && !out.is_float() {
        return round_half_even(&r);
    }
    Ok(r)
}

fn build_clip(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let alpha = b.float("alpha")?;
    let beta = b.float("beta")?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let x = to_float(a.tensor(x)?, out)?;
        let r = x.maximum(alpha)?.minimum(beta)?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

fn build_threshold(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let alpha = b.float("alpha")?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let x = to_float(a.tensor(x)?, out)?;
        Ok(vec![x.maximum(alpha)?.to_dtype(out)?])
    }))
}

fn build_identity(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| Ok(vec![a.tensor(x)?.to_dtype(out)?])))
}

/// The MIL dtype a `cast` `dtype` string names.
fn cast_target(name: &str) -> Option<DataType> {
    let name = match name {
        "float16" | "half" => "fp16",
        "float32" | "float" => "fp32",
        "float64" | "double" => "fp64",
        "int" => "int32",
        other => other,
    };
    DataType::from_mil_name(name).filter(|d| *d != DataType::String)
}

fn build_cast(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let name = b.string("dtype")?;
    let target = cast_target(&name).ok_or_else(|| b.err(format!("unknown cast dtype {name:?}")))?;
    let out = match b.output_dtype(0) {
        Ok(d) => d,
        Err(_) => b.compute_dtype(target)?,
    };
    Ok(kernel(move |a| Ok(vec![cast(a.tensor(x)?, target, out)?])))
}

/// numpy `astype`: floats to integers truncate toward zero, integers wrap to
/// the target width, anything to bool is "nonzero", floats round to the
/// target's precision even when computed wider.
fn cast(x: &Tensor, target: DataType, out: DType) -> Result<Tensor> {
    let r = match target {
        DataType::Bool => to_bool(x)?,
        DataType::Fp16 if x.dtype() != DType::F16 => x.to_dtype(DType::F16)?,
        DataType::Bf16 if x.dtype() != DType::BF16 => x.to_dtype(DType::BF16)?,
        t if t.is_int() => {
            let i = x.to_dtype(DType::I64)?;
            match t.bit_width() {
                Some(bits) if bits < 64 => wrap_int(&i, bits, !t.is_unsigned())?,
                _ => i,
            }
        }
        _ => x.clone(),
    };
    Ok(r.to_dtype(out)?)
}

/// Wraps i64 values to a `bits`-wide two's complement (or unsigned) range.
fn wrap_int(x: &Tensor, bits: u32, signed: bool) -> Result<Tensor> {
    let m = 1i64 << bits;
    let lo = if signed { -(m / 2) } else { 0 };
    let hi = lo + m - 1;
    if x.elem_count() == 0 {
        return Ok(x.clone());
    }
    // Fast path: nothing to wrap (the common case) costs two reductions.
    let flat = x.flatten_all()?;
    let min: i64 = flat.min(0)?.to_scalar()?;
    let max: i64 = flat.max(0)?.to_scalar()?;
    if min >= lo && max <= hi {
        return Ok(x.clone());
    }
    let shifted = x.affine(1.0, -(lo as f64))?;
    let modulus = Tensor::new(m, x.device())?.broadcast_as(x.shape())?;
    let r = int_floor_div_mod(&shifted, &modulus, false)?;
    Ok(r.affine(1.0, lo as f64)?)
}

#[cfg(test)]
#[path = "elementwise_tests.rs"]
mod tests;

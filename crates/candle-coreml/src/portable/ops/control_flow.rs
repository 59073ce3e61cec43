//! Control flow: `cond` and `while_loop`, whose branches and bodies are
//! nested blocks prepared at load like any function body.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("cond", build_cond);
    reg.insert("while_loop", build_while_loop);
}

/// Guard against a loop whose condition never turns false.
const MAX_ITERATIONS: usize = 1 << 24;

fn truth(t: &Tensor) -> Result<bool> {
    if t.elem_count() != 1 {
        return Err(Error::msg(format!(
            "condition must be a scalar, got shape {:?}",
            t.dims()
        )));
    }
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0] != 0.0)
}

fn build_cond(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let pred = b.input("pred")?;
    if b.op().blocks.len() != 2 {
        return Err(b.err(format!(
            "cond needs two blocks, has {}",
            b.op().blocks.len()
        )));
    }
    let on_true = b.block(0)?;
    let on_false = b.block(1)?;
    Ok(kernel(move |a| {
        let p = truth(a.tensor(pred)?)?;
        let plan = if p {
            on_true.as_ref()
        } else {
            on_false.as_ref()
        };
        a.run_block(plan, vec![])
    }))
}

fn build_while_loop(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let vars = b.variadic("loop_vars")?;
    if b.op().blocks.len() != 2 {
        return Err(b.err(format!(
            "while_loop needs a condition and a body block, has {}",
            b.op().blocks.len()
        )));
    }
    let cond = b.block(0)?;
    let body = b.block(1)?;
    let label = b.op().label().to_string();
    Ok(kernel(move |a| {
        let mut state = a.tensors(&vars)?;
        for _ in 0..MAX_ITERATIONS {
            let c = a.run_block(cond.as_ref(), state.clone())?;
            let go = match c.first() {
                Some(t) => truth(t)?,
                None => return Err(Error::msg("while_loop condition returned nothing")),
            };
            if !go {
                return Ok(state);
            }
            let next = a.run_block(body.as_ref(), state)?;
            state = next;
        }
        Err(Error::msg(format!(
            "while_loop {label:?} ran {MAX_ITERATIONS} iterations without stopping"
        )))
    }))
}

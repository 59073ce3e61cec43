//! `nn_output_shape`: the output rule of NeuralNetwork models translated by
//! [`crate::neuralnetwork`] (no MIL counterpart).
//!
//! A legacy (rank-5) NeuralNetwork computes `[Seq, Batch, C, H, W]` blobs
//! while its description declares outputs as `[C]` or `[C, H, W]`. The op
//! returns `x` reshaped to the declared `shape` when both hold the same
//! number of elements, and `x` unchanged otherwise (a flexible input changed
//! the size, or the network produced a sequence).

use super::registry::Registry;
use super::util::checked_dims;
use crate::error::Result;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("nn_output_shape", build);
}

fn build(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let shape = b.ints("shape")?;
    let dims = checked_dims(&shape).map_err(|e| b.err(format!("shape: {e}")))?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        if dims.iter().product::<usize>() == t.elem_count() {
            Ok(vec![t.reshape(dims.as_slice())?])
        } else {
            Ok(vec![t.clone()])
        }
    }))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::mil::DataType;
    use crate::portable::testutil::{ints1, run_op, Arg};

    #[test]
    fn reshapes_only_when_the_sizes_agree() {
        let x = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 6, 1, 1))
            .unwrap();
        let run = |shape: &[i64]| {
            run_op(
                "nn_output_shape",
                vec![("x", Arg::T(x.clone())), ("shape", Arg::C(ints1(shape)))],
                &[DataType::Fp32],
            )
            .unwrap()
            .remove(0)
        };
        assert_eq!(run(&[6]).dims(), &[6]);
        assert_eq!(run(&[2, 3]).dims(), &[2, 3]);
        assert_eq!(run(&[4]).dims(), &[1, 1, 6, 1, 1]);
    }
}

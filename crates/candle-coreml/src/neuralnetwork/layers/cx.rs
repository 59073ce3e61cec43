//! [`Cx`], the context every layer family translates a layer in.

use std::collections::HashMap;
use std::path::Path;

use coreml_proto::proto as pb;

use crate::error::{Error, Result, UnsupportedLayer};
use crate::mil::DataType;
use crate::neuralnetwork::emit::{boolean, int, Arg, Emitter, Val};
use crate::neuralnetwork::weights::{self, Channels};

/// Translates `layers` in order into an emitter, reading and writing blobs
/// in the map (the signature of [`super::translate_layers`]).
pub(crate) type TranslateLayers =
    fn(&mut Emitter, &mut HashMap<String, Val>, &[pb::NeuralNetworkLayer], &Path) -> Result<()>;

/// The translation context of one layer.
pub(crate) struct Cx<'a> {
    pub(crate) em: &'a mut Emitter,
    pub(crate) blobs: &'a mut HashMap<String, Val>,
    pub(crate) layer: &'a pb::NeuralNetworkLayer,
    pub(crate) kind: &'static str,
    pub(crate) path: &'a Path,
    /// Translates the layers of a nested network (a branch or a loop body);
    /// [`super::translate_layers`], passed down so that no layer family
    /// imports the dispatcher.
    pub(crate) nested: TranslateLayers,
}

impl Cx<'_> {
    /// The layer's name.
    pub(crate) fn name(&self) -> &str {
        &self.layer.name
    }

    /// An [`Error::InvalidLayer`] naming the layer.
    pub(crate) fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::InvalidLayer {
            path: self.path.to_path_buf(),
            layer: self.layer.name.clone(),
            layer_type: self.kind,
            message: message.to_string(),
        }
    }

    /// An [`Error::UnsupportedLayers`] of this layer and what is not
    /// supported.
    pub(crate) fn unsupported(&self, what: impl std::fmt::Display) -> Error {
        Error::UnsupportedLayers {
            path: self.path.to_path_buf(),
            layers: vec![UnsupportedLayer {
                layer: self.layer.name.clone(),
                layer_type: self.kind,
                what: what.to_string(),
            }],
        }
    }

    /// Number of inputs the layer names.
    pub(crate) fn n_inputs(&self) -> usize {
        self.layer.input.len()
    }

    /// Checks the number of inputs.
    pub(crate) fn expect_inputs(&self, range: std::ops::RangeInclusive<usize>) -> Result<()> {
        let n = self.n_inputs();
        if range.contains(&n) {
            Ok(())
        } else if range.start() == range.end() {
            Err(self.err(format!("has {n} inputs, expected {}", range.start())))
        } else {
            Err(self.err(format!(
                "has {n} inputs, expected {} to {}",
                range.start(),
                range.end()
            )))
        }
    }

    /// Input `i`.
    pub(crate) fn input(&self, i: usize) -> Result<Val> {
        let name = self
            .layer
            .input
            .get(i)
            .ok_or_else(|| self.err(format!("has no input {i}")))?;
        let v = self.blobs.get(name).ok_or_else(|| {
            self.err(format!(
                "reads {name:?}, which no input or earlier layer provides"
            ))
        })?;
        if v.rank.is_none() {
            if let Some(t) = self.layer.input_tensor.get(i).filter(|t| t.rank > 0) {
                return Ok(v.with_rank(Some(t.rank as usize)));
            }
        }
        Ok(v.clone())
    }

    /// Every input, in order.
    pub(crate) fn inputs(&self) -> Result<Vec<Val>> {
        (0..self.n_inputs()).map(|i| self.input(i)).collect()
    }

    /// The name of output blob `i` (a hint for the value's MIL name).
    pub(crate) fn out_name(&self, i: usize) -> Result<String> {
        self.layer
            .output
            .get(i)
            .cloned()
            .ok_or_else(|| self.err(format!("has no output {i}")))
    }

    /// Records `v` as output blob `i`.
    pub(crate) fn set(&mut self, i: usize, v: Val) -> Result<()> {
        let name = self.out_name(i)?;
        let v = match v.rank {
            None => match self.layer.output_tensor.get(i).filter(|t| t.rank > 0) {
                Some(t) => v.with_rank(Some(t.rank as usize)),
                None => v,
            },
            Some(_) => v,
        };
        self.blobs.insert(name, v);
        Ok(())
    }

    /// Emits an fp32 op named after the layer.
    pub(crate) fn op(&mut self, op_type: &str, args: Vec<(&str, Arg)>, rank: Option<usize>) -> Val {
        let hint = self.layer.name.clone();
        self.em.f32_op(op_type, &hint, args, rank)
    }

    /// Emits an fp32 op as output blob `i`.
    pub(crate) fn out_op(
        &mut self,
        i: usize,
        op_type: &str,
        args: Vec<(&str, Arg)>,
        rank: Option<usize>,
    ) -> Result<()> {
        let hint = self.out_name(i)?;
        let v = self.em.f32_op(op_type, &hint, args, rank);
        self.set(i, v)
    }

    /// Emits an op of one output of `dtype`, named after the layer.
    pub(crate) fn typed(
        &mut self,
        op_type: &str,
        args: Vec<(&str, Arg)>,
        dtype: DataType,
        rank: Option<usize>,
    ) -> Val {
        let hint = self.layer.name.clone();
        self.em.typed_op(op_type, &hint, args, dtype, rank)
    }

    /// `v` cast to `dtype`.
    pub(crate) fn cast(&mut self, v: &Val, dtype: DataType) -> Val {
        let hint = self.layer.name.clone();
        self.em.cast(v, dtype, &hint)
    }

    /// `v` (an fp32 value holding whole numbers) as int32, for index inputs.
    pub(crate) fn int_of(&mut self, v: &Val) -> Val {
        self.cast(v, DataType::Int32)
    }

    /// `v` as fp32 (NeuralNetwork blobs are float), as output blob `i`.
    pub(crate) fn set_float(&mut self, i: usize, v: &Val) -> Result<()> {
        let hint = self.out_name(i)?;
        let f = self.em.cast(v, DataType::Fp32, &hint);
        self.set(i, f)
    }

    /// The number of elements of a weight of shape `dims` (read from the
    /// file, so checked: at most 2^31, the size of the largest protobuf).
    pub(crate) fn count(&self, dims: &[usize], what: &str) -> Result<usize> {
        dims.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= 1 << 31)
            .ok_or_else(|| self.err(format!("{what}: shape {dims:?} is too large")))
    }

    /// Decodes weights `wp` (`what` names them in errors): `n` values.
    pub(crate) fn weights(
        &self,
        wp: Option<&pb::WeightParams>,
        n: usize,
        channels: Option<Channels>,
        what: &str,
    ) -> Result<Vec<f32>> {
        let wp = wp.ok_or_else(|| self.err(format!("{what}: missing")))?;
        weights::decode(wp, n, channels).map_err(|e| self.err(format!("{what}: {e}")))
    }

    /// Applies `f` to `x` with every dimension before its last `k` merged
    /// into one batch dimension (`f` sees rank `k + 1`), and splits the batch
    /// again afterwards. Works for any rank of `x` of at least `k`.
    pub(crate) fn batched(
        &mut self,
        x: &Val,
        k: usize,
        f: impl FnOnce(&mut Self, Val) -> Result<Val>,
    ) -> Result<Val> {
        if x.rank == Some(k + 1) {
            return f(self, x.clone());
        }
        let hint = self.layer.name.clone();
        // [-1, 0, .., 0]: the last k dimensions copied (counting from the
        // right), the rest merged.
        let mut spec = vec![-1];
        spec.extend(std::iter::repeat_n(0, k));
        let flat = self.em.reshape(x, &spec, &hint);
        let y = f(self, flat)?;
        // x's leading dimensions, then y's dimensions after its batch.
        let args = vec![
            ("x", Arg::V(y.clone())),
            ("ref_tensors", Arg::Vs(vec![x.clone(), y])),
            ("begins", Arg::Cs(vec![int(0), int(1)])),
            ("ends", Arg::Cs(vec![int(-(k as i64)), int(0)])),
            ("end_masks", Arg::Cs(vec![boolean(false), boolean(true)])),
        ];
        Ok(self.em.f32_op("reshape_like", &hint, args, x.rank))
    }
}

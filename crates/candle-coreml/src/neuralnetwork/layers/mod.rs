//! The portable translation of each NeuralNetwork layer type, one file per
//! family: [`translate`] dispatches on the layer's type.

mod activation;
mod control;
mod dense;
mod elementwise;
mod norm;
mod recurrent;
mod shape;
mod spatial;
mod tensor;

use std::collections::HashMap;
use std::path::Path;

use coreml_proto::proto as pb;

use super::emit::{ints, Arg, Emitter, Val};
use super::weights::{self, Channels};
use crate::error::{Error, Result};
use crate::mil::DataType;

/// The protobuf field name of a layer's type (`convolution`, `innerProduct`...),
/// `"unset"` when the layer sets none.
pub fn layer_type(l: &pb::NeuralNetworkLayer) -> &'static str {
    use pb::neural_network_layer::Layer as L;
    match &l.layer {
        None => "unset",
        Some(layer) => match layer {
            L::Convolution(_) => "convolution",
            L::Pooling(_) => "pooling",
            L::Activation(_) => "activation",
            L::InnerProduct(_) => "innerProduct",
            L::Embedding(_) => "embedding",
            L::Batchnorm(_) => "batchnorm",
            L::Mvn(_) => "mvn",
            L::L2normalize(_) => "l2normalize",
            L::Softmax(_) => "softmax",
            L::Lrn(_) => "lrn",
            L::Crop(_) => "crop",
            L::Padding(_) => "padding",
            L::Upsample(_) => "upsample",
            L::ResizeBilinear(_) => "resizeBilinear",
            L::CropResize(_) => "cropResize",
            L::Unary(_) => "unary",
            L::Add(_) => "add",
            L::Multiply(_) => "multiply",
            L::Average(_) => "average",
            L::Scale(_) => "scale",
            L::Bias(_) => "bias",
            L::Max(_) => "max",
            L::Min(_) => "min",
            L::Dot(_) => "dot",
            L::Reduce(_) => "reduce",
            L::LoadConstant(_) => "loadConstant",
            L::Reshape(_) => "reshape",
            L::Flatten(_) => "flatten",
            L::Permute(_) => "permute",
            L::Concat(_) => "concat",
            L::Split(_) => "split",
            L::SequenceRepeat(_) => "sequenceRepeat",
            L::ReorganizeData(_) => "reorganizeData",
            L::Slice(_) => "slice",
            L::SimpleRecurrent(_) => "simpleRecurrent",
            L::Gru(_) => "gru",
            L::UniDirectionalLstm(_) => "uniDirectionalLSTM",
            L::BiDirectionalLstm(_) => "biDirectionalLSTM",
            L::Custom(_) => "custom",
            L::Copy(_) => "copy",
            L::Branch(_) => "branch",
            L::Loop(_) => "loop",
            L::LoopBreak(_) => "loopBreak",
            L::LoopContinue(_) => "loopContinue",
            L::RangeStatic(_) => "rangeStatic",
            L::RangeDynamic(_) => "rangeDynamic",
            L::Clip(_) => "clip",
            L::Ceil(_) => "ceil",
            L::Floor(_) => "floor",
            L::Sign(_) => "sign",
            L::Round(_) => "round",
            L::Exp2(_) => "exp2",
            L::Sin(_) => "sin",
            L::Cos(_) => "cos",
            L::Tan(_) => "tan",
            L::Asin(_) => "asin",
            L::Acos(_) => "acos",
            L::Atan(_) => "atan",
            L::Sinh(_) => "sinh",
            L::Cosh(_) => "cosh",
            L::Tanh(_) => "tanh",
            L::Asinh(_) => "asinh",
            L::Acosh(_) => "acosh",
            L::Atanh(_) => "atanh",
            L::Erf(_) => "erf",
            L::Gelu(_) => "gelu",
            L::Equal(_) => "equal",
            L::NotEqual(_) => "notEqual",
            L::LessThan(_) => "lessThan",
            L::LessEqual(_) => "lessEqual",
            L::GreaterThan(_) => "greaterThan",
            L::GreaterEqual(_) => "greaterEqual",
            L::LogicalOr(_) => "logicalOr",
            L::LogicalXor(_) => "logicalXor",
            L::LogicalNot(_) => "logicalNot",
            L::LogicalAnd(_) => "logicalAnd",
            L::ModBroadcastable(_) => "modBroadcastable",
            L::MinBroadcastable(_) => "minBroadcastable",
            L::MaxBroadcastable(_) => "maxBroadcastable",
            L::AddBroadcastable(_) => "addBroadcastable",
            L::PowBroadcastable(_) => "powBroadcastable",
            L::DivideBroadcastable(_) => "divideBroadcastable",
            L::FloorDivBroadcastable(_) => "floorDivBroadcastable",
            L::MultiplyBroadcastable(_) => "multiplyBroadcastable",
            L::SubtractBroadcastable(_) => "subtractBroadcastable",
            L::Tile(_) => "tile",
            L::Stack(_) => "stack",
            L::Gather(_) => "gather",
            L::Scatter(_) => "scatter",
            L::GatherNd(_) => "gatherND",
            L::ScatterNd(_) => "scatterND",
            L::SoftmaxNd(_) => "softmaxND",
            L::GatherAlongAxis(_) => "gatherAlongAxis",
            L::ScatterAlongAxis(_) => "scatterAlongAxis",
            L::Reverse(_) => "reverse",
            L::ReverseSeq(_) => "reverseSeq",
            L::SplitNd(_) => "splitND",
            L::ConcatNd(_) => "concatND",
            L::Transpose(_) => "transpose",
            L::SliceStatic(_) => "sliceStatic",
            L::SliceDynamic(_) => "sliceDynamic",
            L::SlidingWindows(_) => "slidingWindows",
            L::TopK(_) => "topK",
            L::ArgMin(_) => "argMin",
            L::ArgMax(_) => "argMax",
            L::EmbeddingNd(_) => "embeddingND",
            L::BatchedMatmul(_) => "batchedMatmul",
            L::GetShape(_) => "getShape",
            L::LoadConstantNd(_) => "loadConstantND",
            L::FillLike(_) => "fillLike",
            L::FillStatic(_) => "fillStatic",
            L::FillDynamic(_) => "fillDynamic",
            L::BroadcastToLike(_) => "broadcastToLike",
            L::BroadcastToStatic(_) => "broadcastToStatic",
            L::BroadcastToDynamic(_) => "broadcastToDynamic",
            L::Squeeze(_) => "squeeze",
            L::ExpandDims(_) => "expandDims",
            L::FlattenTo2D(_) => "flattenTo2D",
            L::ReshapeLike(_) => "reshapeLike",
            L::ReshapeStatic(_) => "reshapeStatic",
            L::ReshapeDynamic(_) => "reshapeDynamic",
            L::RankPreservingReshape(_) => "rankPreservingReshape",
            L::ConstantPad(_) => "constantPad",
            L::RandomNormalLike(_) => "randomNormalLike",
            L::RandomNormalStatic(_) => "randomNormalStatic",
            L::RandomNormalDynamic(_) => "randomNormalDynamic",
            L::RandomUniformLike(_) => "randomUniformLike",
            L::RandomUniformStatic(_) => "randomUniformStatic",
            L::RandomUniformDynamic(_) => "randomUniformDynamic",
            L::RandomBernoulliLike(_) => "randomBernoulliLike",
            L::RandomBernoulliStatic(_) => "randomBernoulliStatic",
            L::RandomBernoulliDynamic(_) => "randomBernoulliDynamic",
            L::CategoricalDistribution(_) => "categoricalDistribution",
            L::ReduceL1(_) => "reduceL1",
            L::ReduceL2(_) => "reduceL2",
            L::ReduceMax(_) => "reduceMax",
            L::ReduceMin(_) => "reduceMin",
            L::ReduceSum(_) => "reduceSum",
            L::ReduceProd(_) => "reduceProd",
            L::ReduceMean(_) => "reduceMean",
            L::ReduceLogSum(_) => "reduceLogSum",
            L::ReduceSumSquare(_) => "reduceSumSquare",
            L::ReduceLogSumExp(_) => "reduceLogSumExp",
            L::WhereNonZero(_) => "whereNonZero",
            L::MatrixBandPart(_) => "matrixBandPart",
            L::LowerTriangular(_) => "lowerTriangular",
            L::UpperTriangular(_) => "upperTriangular",
            L::WhereBroadcastable(_) => "whereBroadcastable",
            L::LayerNormalization(_) => "layerNormalization",
            L::NonMaximumSuppression(_) => "NonMaximumSuppression",
            L::OneHot(_) => "oneHot",
            L::CumSum(_) => "cumSum",
            L::ClampedReLu(_) => "clampedReLU",
            L::ArgSort(_) => "argSort",
            L::Pooling3d(_) => "pooling3d",
            L::GlobalPooling3d(_) => "globalPooling3d",
            L::SliceBySize(_) => "sliceBySize",
            L::Convolution3d(_) => "convolution3d",
        },
    }
}

/// The translation context of one layer.
pub(crate) struct Cx<'a> {
    pub(crate) em: &'a mut Emitter,
    pub(crate) blobs: &'a mut HashMap<String, Val>,
    pub(crate) layer: &'a pb::NeuralNetworkLayer,
    pub(crate) kind: &'static str,
    pub(crate) path: &'a Path,
}

impl Cx<'_> {
    /// The layer's name.
    pub(crate) fn name(&self) -> &str {
        &self.layer.name
    }

    /// A format error naming the layer.
    pub(crate) fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::format(
            self.path,
            format!("layer {:?} ({}): {message}", self.layer.name, self.kind),
        )
    }

    /// An "unsupported" error naming the layer and what is not supported.
    pub(crate) fn unsupported(&self, what: impl std::fmt::Display) -> Error {
        Error::Unsupported {
            what: format!("{} (layer {:?}): {what}", self.kind, self.layer.name),
            backend: "portable",
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
        let k = k as i64;
        let shape = self.em.shape(x, &hint);
        let lead = self.em.slice1(&shape, 0, Some(-k), &hint);
        let tail = self.em.slice1(&shape, -k, None, &hint);
        let flat_shape = self
            .em
            .concat_ints(vec![Arg::C(ints(&[-1])), Arg::V(tail)], &hint);
        let flat = self
            .em
            .reshape_to(x, &flat_shape, Some(k as usize + 1), &hint);
        let y = f(self, flat)?;
        let ys = self.em.shape(&y, &hint);
        let ytail = self.em.slice1(&ys, 1, None, &hint);
        let out_shape = self
            .em
            .concat_ints(vec![Arg::V(lead), Arg::V(ytail)], &hint);
        Ok(self.em.reshape_to(&y, &out_shape, x.rank, &hint))
    }
}

/// Translates the layer of `cx`.
pub(crate) fn translate(cx: &mut Cx<'_>) -> Result<()> {
    use pb::neural_network_layer::Layer as L;
    let Some(layer) = &cx.layer.layer else {
        return Err(cx.err("sets no layer type"));
    };
    let done = activation::dispatch(cx, layer)
        .or_else(|| elementwise::dispatch(cx, layer))
        .or_else(|| spatial::dispatch(cx, layer))
        .or_else(|| norm::dispatch(cx, layer))
        .or_else(|| dense::dispatch(cx, layer))
        .or_else(|| shape::dispatch(cx, layer))
        .or_else(|| tensor::dispatch(cx, layer))
        .or_else(|| recurrent::dispatch(cx, layer))
        .or_else(|| control::dispatch(cx, layer));
    match (done, layer) {
        (Some(r), _) => r,
        (None, L::Custom(p)) => {
            Err(cx.unsupported(format!("custom layer class {:?}", p.class_name)))
        }
        (None, _) => Err(cx.err("has an unknown layer type")),
    }
}

/// Translates `layers` in order into `em`, reading and writing blobs in
/// `blobs`. Every unsupported layer is reported, together, in one error.
pub(crate) fn translate_layers(
    em: &mut Emitter,
    blobs: &mut HashMap<String, Val>,
    layers: &[pb::NeuralNetworkLayer],
    path: &Path,
) -> Result<()> {
    let mut unsupported = Vec::new();
    for layer in layers {
        let kind = layer_type(layer);
        let mut cx = Cx {
            em: &mut *em,
            blobs: &mut *blobs,
            layer,
            kind,
            path,
        };
        match translate(&mut cx) {
            Ok(()) => {}
            Err(Error::Unsupported { what, .. }) => {
                unsupported.push(what);
                // Later layers still translate, so that all problems are reported.
                for out in &layer.output {
                    blobs.insert(
                        out.clone(),
                        Val {
                            name: out.clone(),
                            rank: None,
                        },
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(Error::Unsupported {
        what: format!("NeuralNetwork layers: {}", unsupported.join(", ")),
        backend: "portable",
    })
}

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

use super::emit::{boolean, int, Arg, Emitter, Val};
use super::weights::{self, Channels};
use crate::error::{Error, Result};
use crate::mil::DataType;

/// The protobuf field name of a layer's type (`convolution`, `innerProduct`...),
/// `"unset"` when the layer sets none.
pub fn layer_type(l: &pb::NeuralNetworkLayer) -> &'static str {
    use pb::neural_network_layer::Layer as L;
    macro_rules! names {
        ($($variant:ident => $name:literal),* $(,)?) => {
            match &l.layer {
                None => "unset",
                $(Some(L::$variant(_)) => $name,)*
            }
        };
    }
    #[rustfmt::skip]
    let name = names! {
        Convolution => "convolution", Pooling => "pooling", Activation => "activation",
        InnerProduct => "innerProduct", Embedding => "embedding", Batchnorm => "batchnorm",
        Mvn => "mvn", L2normalize => "l2normalize", Softmax => "softmax", Lrn => "lrn",
        Crop => "crop", Padding => "padding", Upsample => "upsample",
        ResizeBilinear => "resizeBilinear", CropResize => "cropResize", Unary => "unary",
        Add => "add", Multiply => "multiply", Average => "average", Scale => "scale",
        Bias => "bias", Max => "max", Min => "min", Dot => "dot", Reduce => "reduce",
        LoadConstant => "loadConstant", Reshape => "reshape", Flatten => "flatten",
        Permute => "permute", Concat => "concat", Split => "split",
        SequenceRepeat => "sequenceRepeat", ReorganizeData => "reorganizeData", Slice => "slice",
        SimpleRecurrent => "simpleRecurrent", Gru => "gru",
        UniDirectionalLstm => "uniDirectionalLSTM", BiDirectionalLstm => "biDirectionalLSTM",
        Custom => "custom", Copy => "copy", Branch => "branch", Loop => "loop",
        LoopBreak => "loopBreak", LoopContinue => "loopContinue", RangeStatic => "rangeStatic",
        RangeDynamic => "rangeDynamic", Clip => "clip", Ceil => "ceil", Floor => "floor",
        Sign => "sign", Round => "round", Exp2 => "exp2", Sin => "sin", Cos => "cos", Tan => "tan",
        Asin => "asin", Acos => "acos", Atan => "atan", Sinh => "sinh", Cosh => "cosh",
        Tanh => "tanh", Asinh => "asinh", Acosh => "acosh", Atanh => "atanh", Erf => "erf",
        Gelu => "gelu", Equal => "equal", NotEqual => "notEqual", LessThan => "lessThan",
        LessEqual => "lessEqual", GreaterThan => "greaterThan", GreaterEqual => "greaterEqual",
        LogicalOr => "logicalOr", LogicalXor => "logicalXor", LogicalNot => "logicalNot",
        LogicalAnd => "logicalAnd", ModBroadcastable => "modBroadcastable",
        MinBroadcastable => "minBroadcastable", MaxBroadcastable => "maxBroadcastable",
        AddBroadcastable => "addBroadcastable", PowBroadcastable => "powBroadcastable",
        DivideBroadcastable => "divideBroadcastable",
        FloorDivBroadcastable => "floorDivBroadcastable",
        MultiplyBroadcastable => "multiplyBroadcastable",
        SubtractBroadcastable => "subtractBroadcastable", Tile => "tile", Stack => "stack",
        Gather => "gather", Scatter => "scatter", GatherNd => "gatherND", ScatterNd => "scatterND",
        SoftmaxNd => "softmaxND", GatherAlongAxis => "gatherAlongAxis",
        ScatterAlongAxis => "scatterAlongAxis", Reverse => "reverse", ReverseSeq => "reverseSeq",
        SplitNd => "splitND", ConcatNd => "concatND", Transpose => "transpose",
        SliceStatic => "sliceStatic", SliceDynamic => "sliceDynamic",
        SlidingWindows => "slidingWindows", TopK => "topK", ArgMin => "argMin", ArgMax => "argMax",
        EmbeddingNd => "embeddingND", BatchedMatmul => "batchedMatmul", GetShape => "getShape",
        LoadConstantNd => "loadConstantND", FillLike => "fillLike", FillStatic => "fillStatic",
        FillDynamic => "fillDynamic", BroadcastToLike => "broadcastToLike",
        BroadcastToStatic => "broadcastToStatic", BroadcastToDynamic => "broadcastToDynamic",
        Squeeze => "squeeze", ExpandDims => "expandDims", FlattenTo2D => "flattenTo2D",
        ReshapeLike => "reshapeLike", ReshapeStatic => "reshapeStatic",
        ReshapeDynamic => "reshapeDynamic", RankPreservingReshape => "rankPreservingReshape",
        ConstantPad => "constantPad", RandomNormalLike => "randomNormalLike",
        RandomNormalStatic => "randomNormalStatic", RandomNormalDynamic => "randomNormalDynamic",
        RandomUniformLike => "randomUniformLike", RandomUniformStatic => "randomUniformStatic",
        RandomUniformDynamic => "randomUniformDynamic",
        RandomBernoulliLike => "randomBernoulliLike",
        RandomBernoulliStatic => "randomBernoulliStatic",
        RandomBernoulliDynamic => "randomBernoulliDynamic",
        CategoricalDistribution => "categoricalDistribution", ReduceL1 => "reduceL1",
        ReduceL2 => "reduceL2", ReduceMax => "reduceMax", ReduceMin => "reduceMin",
        ReduceSum => "reduceSum", ReduceProd => "reduceProd", ReduceMean => "reduceMean",
        ReduceLogSum => "reduceLogSum", ReduceSumSquare => "reduceSumSquare",
        ReduceLogSumExp => "reduceLogSumExp", WhereNonZero => "whereNonZero",
        MatrixBandPart => "matrixBandPart", LowerTriangular => "lowerTriangular",
        UpperTriangular => "upperTriangular", WhereBroadcastable => "whereBroadcastable",
        LayerNormalization => "layerNormalization",
        NonMaximumSuppression => "NonMaximumSuppression", OneHot => "oneHot", CumSum => "cumSum",
        ClampedReLu => "clampedReLU", ArgSort => "argSort", Pooling3d => "pooling3d",
        GlobalPooling3d => "globalPooling3d", SliceBySize => "sliceBySize",
        Convolution3d => "convolution3d",
    };
    name
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

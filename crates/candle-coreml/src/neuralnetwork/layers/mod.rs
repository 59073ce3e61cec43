//! The portable translation of each NeuralNetwork layer type, one file per
//! family: [`translate`] dispatches on the layer's type.

mod activation;
mod control;
mod cx;
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

use self::cx::Cx;
use super::emit::{Emitter, Val};
use crate::error::{Error, Result};

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
            nested: translate_layers,
        };
        match translate(&mut cx) {
            Ok(()) => {}
            // A nested network (branch, loop) reports its own, merged here.
            Err(Error::UnsupportedLayers { layers, .. }) => {
                unsupported.extend(layers);
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
    Err(Error::UnsupportedLayers {
        path: path.to_path_buf(),
        layers: unsupported,
    })
}

//! Spatial layers: `convolution` (incl. deconvolution), `convolution3d`,
//! `pooling`, `pooling3d`, `globalPooling3d`, `padding`, `constantPad`,
//! `upsample`, `resizeBilinear`, `cropResize`, `crop`, `reorganizeData`.
//!
//! The 2-D layers treat every dimension before the last three as batch:
//! they run the MIL op on `[N, C, H, W]` (see [`Cx::batched`]).

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::DataType;
use crate::neuralnetwork::emit::{boolean, float, floats, int, ints, string, Arg, Val};
use crate::neuralnetwork::weights::Channels;

/// Two values of `v` (`[H, W]`), or `default` when unset.
fn pair(cx: &Cx<'_>, v: &[u64], default: u64, what: &str) -> Result<[i64; 2]> {
    match v {
        [] => Ok([default as i64; 2]),
        [h, w] => Ok([*h as i64, *w as i64]),
        other => Err(cx.err(format!("{what} {other:?} must hold 2 values"))),
    }
}

/// `[top, bottom, left, right]` of border amounts (height first).
fn borders(cx: &Cx<'_>, b: Option<&pb::BorderAmounts>) -> Result<[i64; 4]> {
    match b.map(|b| b.border_amounts.as_slice()) {
        None | Some([]) => Ok([0; 4]),
        Some([h, w]) => Ok([
            h.start_edge_size as i64,
            h.end_edge_size as i64,
            w.start_edge_size as i64,
            w.end_edge_size as i64,
        ]),
        Some(other) => Err(cx.err(format!(
            "{} border amounts, expected 2 (height, width)",
            other.len()
        ))),
    }
}

/// MIL `pad_type`/`pad` arguments of the NeuralNetwork padding oneofs.
fn same_or_custom(same: Option<i32>, pads: [i64; 4]) -> Vec<(&'static str, Arg)> {
    match same {
        Some(1) => vec![("pad_type", Arg::C(string("same_lower")))],
        Some(_) => vec![("pad_type", Arg::C(string("same")))],
        None => vec![
            ("pad_type", Arg::C(string("custom"))),
            ("pad", Arg::C(ints(&pads))),
        ],
    }
}

/// `convolution`: 2-D convolution or deconvolution, groups, dilation, valid
/// (with padding amounts) or same padding; weights as a second input.
pub(crate) fn convolution(cx: &mut Cx<'_>, p: &pb::ConvolutionLayerParams) -> Result<()> {
    use pb::convolution_layer_params::ConvolutionPaddingType as P;
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    let groups = p.n_groups.max(1);
    let strides = pair(cx, &p.stride, 1, "stride")?;
    let dil = pair(cx, &p.dilation_factor, 1, "dilationFactor")?;
    let (same, pads) = match &p.convolution_padding_type {
        Some(P::Same(s)) => (Some(s.asymmetry_mode), [0; 4]),
        Some(P::Valid(v)) => (None, borders(cx, v.padding_amounts.as_ref())?),
        None => (None, [0; 4]),
    };
    let (weight, bias) = conv_weights(cx, p, groups)?;
    let out = cx.out_name(0)?;
    let y = cx.batched(&x, 3, |cx, x4| {
        let mut args = vec![
            ("x", Arg::V(x4.clone())),
            ("weight", weight),
            ("strides", Arg::C(ints(&strides))),
            ("groups", Arg::C(int(groups as i64))),
        ];
        if let Some(b) = bias {
            args.push(("bias", Arg::C(b)));
        }
        let op = if p.is_deconvolution {
            if p.output_shape.is_empty() {
                args.extend(same_or_custom(same, pads));
            } else {
                // Cropped evenly to outputShape, the odd element at the end.
                let o: Vec<i64> = p.output_shape.iter().map(|&v| v as i64).collect();
                args.push(("output_shape", Arg::C(ints(&o))));
                args.push(("pad_type", Arg::C(string("same"))));
            }
            "conv_transpose"
        } else {
            args.push(("dilations", Arg::C(ints(&dil))));
            args.extend(same_or_custom(same, pads));
            "conv"
        };
        Ok(cx.em.f32_op(op, &out, args, Some(4)))
    })?;
    cx.set(0, y)
}

/// The weights (a constant, or the second input) and bias of a convolution.
fn conv_weights(
    cx: &Cx<'_>,
    p: &pb::ConvolutionLayerParams,
    groups: u64,
) -> Result<(Arg, Option<crate::mil::TensorValue>)> {
    let (oc, kc) = (p.output_channels, p.kernel_channels);
    let [kh, kw] = pair(cx, &p.kernel_size, 3, "kernelSize")?;
    if oc == 0 || kc == 0 || !oc.is_multiple_of(groups) {
        return Err(cx.err(format!(
            "outputChannels {oc}, kernelChannels {kc} and nGroups {groups} do not fit"
        )));
    }
    let (oc, kc, kh, kw) = (oc as usize, kc as usize, kh as usize, kw as usize);
    let (shape, channels) = if p.is_deconvolution {
        let per = oc / groups as usize;
        let ch = Channels {
            outer: kc,
            count: per,
        };
        ([kc, per, kh, kw], ch)
    } else {
        ([oc, kc, kh, kw], Channels::first(oc))
    };
    let weight = if cx.n_inputs() == 2 {
        if p.is_deconvolution {
            return Err(cx.unsupported("deconvolution with weights as an input"));
        }
        Arg::V(cx.input(1)?)
    } else {
        let n = cx.count(&shape, "weights")?;
        let w = cx.weights(p.weights.as_ref(), n, Some(channels), "weights")?;
        Arg::C(floats(w, &shape))
    };
    let bias = if p.has_bias {
        let b = cx.weights(p.bias.as_ref(), oc, None, "bias")?;
        Some(floats(b, &[oc]))
    } else {
        None
    };
    Ok((weight, bias))
}

/// `convolution3d` on `[B, C, D, H, W]`.
pub(crate) fn convolution3d(cx: &mut Cx<'_>, p: &pb::Convolution3DLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    if p.is_deconvolution {
        return Err(cx.unsupported("3-D deconvolution"));
    }
    let groups = p.n_groups.max(1) as usize;
    let dims = [
        p.output_channels,
        p.input_channels,
        p.kernel_depth,
        p.kernel_height,
        p.kernel_width,
    ];
    if dims.iter().any(|&d| d <= 0) || !(p.input_channels as usize).is_multiple_of(groups) {
        return Err(cx.err(format!(
            "channels and kernel sizes {dims:?} with {groups} groups do not fit"
        )));
    }
    let oc = p.output_channels as usize;
    let shape = [
        oc,
        p.input_channels as usize / groups,
        p.kernel_depth as usize,
        p.kernel_height as usize,
        p.kernel_width as usize,
    ];
    let n = cx.count(&shape, "weights")?;
    let w = floats(
        cx.weights(p.weights.as_ref(), n, Some(Channels::first(oc)), "weights")?,
        &shape,
    );
    let strides = positive(&[p.stride_depth, p.stride_height, p.stride_width]);
    let dilations = positive(&[p.dilation_depth, p.dilation_height, p.dilation_width]);
    let mut args = vec![
        ("x", Arg::V(x)),
        ("weight", Arg::C(w)),
        ("strides", Arg::C(ints(&strides))),
        ("dilations", Arg::C(ints(&dilations))),
        ("groups", Arg::C(int(groups as i64))),
    ];
    if p.has_bias {
        let b = cx.weights(p.bias.as_ref(), oc, None, "bias")?;
        args.push(("bias", Arg::C(floats(b, &[oc]))));
    }
    let custom = [
        p.custom_padding_front,
        p.custom_padding_back,
        p.custom_padding_top,
        p.custom_padding_bottom,
        p.custom_padding_left,
        p.custom_padding_right,
    ];
    args.extend(pad3d(cx, p.padding_type, custom)?);
    cx.out_op(0, "conv", args, Some(5))
}

/// Sizes of at least 1 (an unset 0 means 1).
fn positive(v: &[i32]) -> Vec<i64> {
    v.iter().map(|&x| i64::from(x.max(1))).collect()
}

/// MIL padding of the 3-D layers (custom 0, valid 1, same 2).
fn pad3d(cx: &Cx<'_>, kind: i32, custom: [i32; 6]) -> Result<Vec<(&'static str, Arg)>> {
    Ok(match kind {
        0 => {
            let p: Vec<i64> = custom.iter().map(|&v| i64::from(v.max(0))).collect();
            vec![
                ("pad_type", Arg::C(string("custom"))),
                ("pad", Arg::C(ints(&p))),
            ]
        }
        1 => vec![("pad_type", Arg::C(string("valid")))],
        2 => vec![("pad_type", Arg::C(string("same")))],
        k => return Err(cx.err(format!("unknown padding type {k}"))),
    })
}

/// `pooling`: max, average or L2 over H, W; valid (with padding amounts),
/// same, or include-last-pixel padding; global.
pub(crate) fn pooling(cx: &mut Cx<'_>, p: &pb::PoolingLayerParams) -> Result<()> {
    use pb::pooling_layer_params::PoolingPaddingType as P;
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let op = match p.r#type {
        0 => "max_pool",
        1 => "avg_pool",
        2 => "l2_pool",
        t => return Err(cx.err(format!("unknown pooling type {t}"))),
    };
    if p.global_pooling {
        let red = ["reduce_max", "reduce_mean", "reduce_l2_norm"][p.r#type as usize];
        return cx.out_op(
            0,
            red,
            vec![
                ("x", Arg::V(x.clone())),
                ("axes", Arg::C(ints(&[-2, -1]))),
                ("keep_dims", Arg::C(boolean(true))),
            ],
            x.rank,
        );
    }
    let kernel = pair(cx, &p.kernel_size, 3, "kernelSize")?;
    let strides = pair(cx, &p.stride, 1, "stride")?;
    let mut ceil = false;
    let pad = match &p.pooling_padding_type {
        Some(P::Same(s)) => same_or_custom(Some(s.asymmetry_mode), [0; 4]),
        Some(P::Valid(v)) => same_or_custom(None, borders(cx, v.padding_amounts.as_ref())?),
        Some(P::IncludeLastPixel(v)) => {
            ceil = true;
            let [h, w] = pair(cx, &v.padding_amounts, 0, "paddingAmounts")?;
            same_or_custom(None, [h, h, w, w])
        }
        None => same_or_custom(None, [0; 4]),
    };
    let out = cx.out_name(0)?;
    let y = cx.batched(&x, 3, |cx, x4| {
        let mut args = vec![
            ("x", Arg::V(x4)),
            ("kernel_sizes", Arg::C(ints(&kernel))),
            ("strides", Arg::C(ints(&strides))),
            ("ceil_mode", Arg::C(boolean(ceil))),
        ];
        args.extend(pad);
        if op == "avg_pool" {
            args.push((
                "exclude_padding_from_average",
                Arg::C(boolean(p.avg_pool_exclude_padding)),
            ));
        }
        Ok(cx.em.f32_op(op, &out, args, Some(4)))
    })?;
    cx.set(0, y)
}

/// `pooling3d` on `[B, C, D, H, W]`.
pub(crate) fn pooling3d(cx: &mut Cx<'_>, p: &pb::Pooling3DLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let op = match p.r#type {
        0 => "max_pool",
        1 => "avg_pool",
        t => return Err(cx.err(format!("unknown pooling type {t}"))),
    };
    let kernel = positive(&[p.kernel_depth, p.kernel_height, p.kernel_width]);
    let strides = positive(&[p.stride_depth, p.stride_height, p.stride_width]);
    let mut args = vec![
        ("x", Arg::V(x)),
        ("kernel_sizes", Arg::C(ints(&kernel))),
        ("strides", Arg::C(ints(&strides))),
    ];
    let custom = [
        p.custom_padding_front,
        p.custom_padding_back,
        p.custom_padding_top,
        p.custom_padding_bottom,
        p.custom_padding_left,
        p.custom_padding_right,
    ];
    args.extend(pad3d(cx, p.padding_type, custom)?);
    if op == "avg_pool" {
        args.push((
            "exclude_padding_from_average",
            Arg::C(boolean(p.count_exclude_padding)),
        ));
    }
    cx.out_op(0, op, args, Some(5))
}

/// `globalPooling3d`: max or mean over D, H, W.
pub(crate) fn global_pooling3d(cx: &mut Cx<'_>, p: &pb::GlobalPooling3DLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let op = if p.r#type == 0 {
        "reduce_max"
    } else {
        "reduce_mean"
    };
    cx.out_op(
        0,
        op,
        vec![
            ("x", Arg::V(x.clone())),
            ("axes", Arg::C(ints(&[-3, -2, -1]))),
            ("keep_dims", Arg::C(boolean(true))),
        ],
        x.rank,
    )
}

/// `padding` of the last two dimensions: constant, reflection, replication.
pub(crate) fn padding(cx: &mut Cx<'_>, p: &pb::PaddingLayerParams) -> Result<()> {
    use pb::padding_layer_params::PaddingType as P;
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let pads = borders(cx, p.padding_amounts.as_ref())?;
    let mut args = vec![("x", Arg::V(x.clone())), ("pad", Arg::C(ints(&pads)))];
    match &p.padding_type {
        Some(P::Constant(c)) => {
            args.push(("mode", Arg::C(string("constant"))));
            args.push(("constant_val", Arg::C(float(c.value))));
        }
        Some(P::Reflection(_)) => args.push(("mode", Arg::C(string("reflect")))),
        Some(P::Replication(_)) => args.push(("mode", Arg::C(string("replicate")))),
        None => return Err(cx.err("sets no padding type")),
    }
    cx.out_op(0, "pad", args, x.rank)
}

/// `constantPad`: amounts per axis, or (`padToGivenOutputSizeMode`) up to a size.
pub(crate) fn constant_pad(cx: &mut Cx<'_>, p: &pb::ConstantPaddingLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    let pad = if cx.n_inputs() == 2 {
        let v = cx.input(1)?;
        Arg::V(cx.int_of(&v))
    } else if p.pad_to_given_output_size_mode {
        Arg::V(pad_to_size(cx, &x, &p.pad_amounts)?)
    } else {
        Arg::C(ints(
            &p.pad_amounts.iter().map(|&v| v as i64).collect::<Vec<_>>(),
        ))
    };
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("pad", pad),
        ("mode", Arg::C(string("constant"))),
        ("constant_val", Arg::C(float(p.value))),
    ];
    cx.out_op(0, "pad", args, x.rank)
}

/// The pad amounts that bring `x` up to the sizes in `amounts` (one nonzero
/// value per before/after pair, on the side that gets the padding).
fn pad_to_size(cx: &mut Cx<'_>, x: &Val, amounts: &[u64]) -> Result<Val> {
    if !amounts.len().is_multiple_of(2) || amounts.is_empty() {
        return Err(cx.err(format!("padAmounts {amounts:?} must hold a pair per axis")));
    }
    let target: Vec<i64> = amounts.chunks(2).map(|c| c[0].max(c[1]) as i64).collect();
    let before: Vec<i64> = amounts.chunks(2).map(|c| i64::from(c[0] > 0)).collect();
    let after: Vec<i64> = before.iter().map(|&b| 1 - b).collect();
    let hint = cx.name().to_string();
    let shape = cx.em.shape(x, &hint);
    let t = cx.em.constant(ints(&target), &hint);
    let diff = cx.typed(
        "sub",
        vec![("x", Arg::V(t)), ("y", Arg::V(shape))],
        DataType::Int32,
        Some(1),
    );
    let zero = crate::neuralnetwork::emit::int(0);
    let d = cx.typed(
        "maximum",
        vec![("x", Arg::V(diff)), ("y", Arg::C(zero))],
        DataType::Int32,
        Some(1),
    );
    let b = cx.typed(
        "mul",
        vec![("x", Arg::V(d.clone())), ("y", Arg::C(ints(&before)))],
        DataType::Int32,
        Some(1),
    );
    let a = cx.typed(
        "mul",
        vec![("x", Arg::V(d)), ("y", Arg::C(ints(&after)))],
        DataType::Int32,
        Some(1),
    );
    let pairs = cx.typed(
        "stack",
        vec![("values", Arg::Vs(vec![b, a])), ("axis", Arg::C(int(1)))],
        DataType::Int32,
        Some(2),
    );
    Ok(cx.typed(
        "reshape",
        vec![("x", Arg::V(pairs)), ("shape", Arg::C(ints(&[-1])))],
        DataType::Int32,
        Some(1),
    ))
}

/// `upsample`: nearest neighbour or bilinear (three grid modes), integer or
/// fractional factors.
pub(crate) fn upsample(cx: &mut Cx<'_>, p: &pb::UpsampleLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let (sh, sw) = match (
        p.scaling_factor.as_slice(),
        p.fractional_scaling_factor.as_slice(),
    ) {
        ([], []) => (1.0, 1.0),
        ([h, w], []) => (*h as f32, *w as f32),
        ([], [h, w]) => (*h, *w),
        _ => return Err(cx.err("needs 2 scalingFactor or 2 fractionalScalingFactor values")),
    };
    let mut args = vec![
        ("x", Arg::V(x.clone())),
        ("scale_factor_height", Arg::C(float(sh))),
        ("scale_factor_width", Arg::C(float(sw))),
    ];
    let op = match p.mode {
        0 => "upsample_nearest_neighbor",
        1 => {
            let (align, half) = match p.linear_upsample_mode {
                // DEFAULT samples at i * in / out.
                0 => (false, false),
                1 => (true, false),
                2 => (false, true),
                m => return Err(cx.err(format!("unknown linearUpsampleMode {m}"))),
            };
            args.push(("align_corners", Arg::C(boolean(align))));
            args.push(("half_pixel_centers", Arg::C(boolean(half))));
            "upsample_bilinear"
        }
        m => return Err(cx.err(format!("unknown upsample mode {m}"))),
    };
    cx.out_op(0, op, args, x.rank)
}

/// The MIL `sampling_mode` of a NeuralNetwork `SamplingMode`.
fn sampling_mode(cx: &Cx<'_>, m: Option<&pb::SamplingMode>) -> Result<&'static str> {
    Ok(match m.map_or(0, |m| m.sampling_method) {
        0 => "STRICT_ALIGN_CORNERS",
        1 => "ALIGN_CORNERS",
        2 => "DEFAULT",
        3 => "OFFSET_CORNERS",
        k => return Err(cx.err(format!("unknown sampling method {k}"))),
    })
}

/// `resizeBilinear` to a fixed size.
pub(crate) fn resize_bilinear(cx: &mut Cx<'_>, p: &pb::ResizeBilinearLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let [h, w] = pair(cx, &p.target_size, 1, "targetSize")?;
    let mode = sampling_mode(cx, p.mode.as_ref())?;
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("target_size_height", Arg::C(int(h))),
        ("target_size_width", Arg::C(int(w))),
        ("sampling_mode", Arg::C(string(mode))),
    ];
    cx.out_op(0, "resize_bilinear", args, x.rank)
}

/// `cropResize`: RoIs of `[1, B, C, H, W]` resized bilinearly.
pub(crate) fn crop_resize(cx: &mut Cx<'_>, p: &pb::CropResizeLayerParams) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, roi) = (cx.input(0)?, cx.input(1)?);
    let [h, w] = pair(cx, &p.target_size, 1, "targetSize")?;
    let mode = sampling_mode(cx, p.mode.as_ref())?;
    let boxes = match p.box_indices_mode.as_ref().map_or(0, |m| m.box_mode) {
        0 => "CORNERS_HEIGHT_FIRST",
        1 => "CORNERS_WIDTH_FIRST",
        2 => "CENTER_SIZE_HEIGHT_FIRST",
        3 => "CENTER_SIZE_WIDTH_FIRST",
        k => return Err(cx.err(format!("unknown box indices mode {k}"))),
    };
    let hint = cx.name().to_string();
    // MIL crop_resize takes x [B, C, H, W].
    let x4 = cx.em.f32_op(
        "squeeze",
        &hint,
        vec![("x", Arg::V(x)), ("axes", Arg::C(ints(&[0])))],
        Some(4),
    );
    let scale = if p.spatial_scale == 0.0 {
        1.0
    } else {
        p.spatial_scale
    };
    let args = vec![
        ("x", Arg::V(x4)),
        ("roi", Arg::V(roi)),
        ("target_height", Arg::C(int(h))),
        ("target_width", Arg::C(int(w))),
        (
            "normalized_coordinates",
            Arg::C(boolean(p.normalized_coordinates)),
        ),
        ("spatial_scale", Arg::C(float(scale))),
        ("box_coordinate_mode", Arg::C(string(boxes))),
        ("sampling_mode", Arg::C(string(mode))),
    ];
    cx.out_op(0, "crop_resize", args, Some(5))
}

/// `crop`: by border amounts, or (two inputs) to the second input's H, W at an offset.
pub(crate) fn crop(cx: &mut Cx<'_>, p: &pb::CropLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    if cx.n_inputs() == 1 {
        let [t, b, l, r] = borders(cx, p.crop_amounts.as_ref())?;
        let args = vec![
            ("x", Arg::V(x.clone())),
            ("begin", Arg::C(ints(&[t, l]))),
            ("end", Arg::C(ints(&[-b, -r]))),
            (
                "end_mask",
                Arg::C(crate::neuralnetwork::emit::bools(&[b == 0, r == 0])),
            ),
        ];
        return last_two(cx, &x, "slice_by_index", args);
    }
    let r = cx.input(1)?;
    let [oh, ow] = pair(cx, &p.offset, 0, "offset")?;
    let hint = cx.name().to_string();
    let rs = cx.em.shape(&r, &hint);
    let size = cx.em.slice1(&rs, -2, None, &hint);
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("begin", Arg::C(ints(&[oh, ow]))),
        ("size", Arg::V(size)),
    ];
    last_two(cx, &x, "slice_by_size", args)
}

/// A slicing op over the last two dimensions of `x`, applied on `x`
/// reshaped to `[N, H, W]`.
fn last_two(cx: &mut Cx<'_>, x: &Val, op: &str, args: Vec<(&str, Arg)>) -> Result<()> {
    let out = cx.out_name(0)?;
    // Prefix the per-axis arguments with the batch axis, taken whole.
    let y = cx.batched(x, 2, |cx, x3| {
        let mut full = Vec::new();
        for (name, a) in args {
            let a = match (name, a) {
                ("x", _) => Arg::V(x3.clone()),
                ("begin", Arg::C(c)) => Arg::C(prefix(&c, 0)),
                ("end", Arg::C(c)) => Arg::C(prefix(&c, 0)),
                ("end_mask", Arg::C(c)) => {
                    let mut v = vec![true];
                    v.extend(c.to_bool_vec().unwrap_or_default());
                    Arg::C(crate::neuralnetwork::emit::bools(&v))
                }
                ("size", Arg::V(s)) => {
                    let all = cx.em.constant(ints(&[-1]), &out);
                    Arg::V(cx.em.concat_ints(vec![Arg::V(all), Arg::V(s)], &out))
                }
                (_, a) => a,
            };
            full.push((name, a));
        }
        Ok(cx.em.f32_op(op, &out, full, Some(3)))
    })?;
    cx.set(0, y)
}

/// `c` (an int list) with `v` prepended.
fn prefix(c: &crate::mil::TensorValue, v: i64) -> crate::mil::TensorValue {
    let mut out = vec![v];
    out.extend(c.to_i64_vec().unwrap_or_default());
    ints(&out)
}

/// `reorganizeData`: space-to-depth, depth-to-space, pixel shuffle.
pub(crate) fn reorganize_data(cx: &mut Cx<'_>, p: &pb::ReorganizeDataLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    if p.block_size < 2 {
        return Err(cx.err(format!("blockSize {} must be at least 2", p.block_size)));
    }
    let bs = Arg::C(int(p.block_size as i64));
    let (op, param) = match p.mode {
        0 => ("space_to_depth", "block_size"),
        1 => ("depth_to_space", "block_size"),
        2 => ("pixel_shuffle", "upscale_factor"),
        m => return Err(cx.err(format!("unknown mode {m}"))),
    };
    let out = cx.out_name(0)?;
    let y = cx.batched(&x, 3, |cx, x4| {
        Ok(cx
            .em
            .f32_op(op, &out, vec![("x", Arg::V(x4)), (param, bs)], Some(4)))
    })?;
    cx.set(0, y)
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::Convolution(p) => convolution(cx, p),
        L::Convolution3d(p) => convolution3d(cx, p),
        L::Pooling(p) => pooling(cx, p),
        L::Pooling3d(p) => pooling3d(cx, p),
        L::GlobalPooling3d(p) => global_pooling3d(cx, p),
        L::Padding(p) => padding(cx, p),
        L::ConstantPad(p) => constant_pad(cx, p),
        L::Upsample(p) => upsample(cx, p),
        L::ResizeBilinear(p) => resize_bilinear(cx, p),
        L::CropResize(p) => crop_resize(cx, p),
        L::Crop(p) => crop(cx, p),
        L::ReorganizeData(p) => reorganize_data(cx, p),
        _ => return None,
    })
}

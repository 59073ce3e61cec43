//! A [`Network`] as one MIL [`Function`]: inputs (dtype, shape mapping,
//! image preprocessing), the layers in order, and the outputs (declared
//! shapes and dtypes, classifier outputs).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use coreml_proto::proto as pb;

use super::emit::{floats, int, ints, Arg, Emitter, Val};
use super::layers;
use super::network::{ArrayMapping, ClassLabels, ImageMapping, Network};
use crate::description::{
    ArrayFeature, ColorSpace, FeatureDescription, FeatureType, FunctionDescription,
    ShapeFlexibility,
};
use crate::error::{Error, Result};
use crate::mil::{
    Block, DataType, Dim, Function, NamedValueType, TensorData, TensorType, TensorValue, ValueType,
};

/// Translates `net` with interface `fd` into a MIL function named after `fd`.
/// `path` is the model file, named in errors.
pub fn to_function(net: &Network, fd: &FunctionDescription, path: &Path) -> Result<Function> {
    let mut b = Builder {
        em: Emitter::default(),
        blobs: HashMap::new(),
        path,
        net,
    };
    for o in &fd.outputs {
        b.em.claim(&o.name);
    }
    let mut inputs = Vec::with_capacity(fd.inputs.len());
    for f in &fd.inputs {
        inputs.push(b.input(f)?);
    }
    layers::translate_layers(&mut b.em, &mut b.blobs, &net.layers, path)?;
    let mut outputs = Vec::with_capacity(fd.outputs.len());
    for f in &fd.outputs {
        outputs.push(b.output(f)?);
    }
    Ok(Function {
        name: fd.name.clone(),
        inputs,
        opset: "CoreML7".into(),
        block: Block {
            inputs: Vec::new(),
            outputs,
            operations: b.em.ops,
            attributes: BTreeMap::new(),
        },
        attributes: BTreeMap::new(),
    })
}

struct Builder<'a> {
    em: Emitter,
    blobs: HashMap<String, Val>,
    path: &'a Path,
    net: &'a Network,
}

/// The shape of a multi-array input with its flexible dimensions unknown.
fn array_dims(a: &ArrayFeature) -> Option<Vec<Dim>> {
    let fixed = |v: &[usize]| v.iter().map(|&d| Dim::Fixed(d)).collect::<Vec<_>>();
    match &a.flexibility {
        None => Some(fixed(&a.shape)),
        Some(ShapeFlexibility::Ranges(r)) => Some(
            r.iter()
                .map(|r| match r.upper {
                    Some(u) if u == r.lower => Dim::Fixed(u),
                    _ => Dim::Unknown,
                })
                .collect(),
        ),
        Some(ShapeFlexibility::Enumerated(shapes)) => {
            let first = shapes.first().map(Vec::as_slice).unwrap_or(&a.shape);
            if shapes.iter().any(|s| s.len() != first.len()) {
                return None;
            }
            Some(
                (0..first.len())
                    .map(|i| {
                        let d = first[i];
                        if shapes.iter().all(|s| s[i] == d)
                            && (a.shape.is_empty() || a.shape.get(i) == Some(&d))
                        {
                            Dim::Fixed(d)
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect(),
            )
        }
    }
}

impl Builder<'_> {
    fn err(&self, message: String) -> Error {
        Error::format(self.path, message)
    }

    /// Declares input `f` and maps it onto the tensor the layers see.
    fn input(&mut self, f: &FeatureDescription) -> Result<NamedValueType> {
        let name = &f.name;
        let (dtype, dims, image) = match &f.ty {
            FeatureType::MultiArray(a) => (a.dtype.unwrap_or(DataType::Fp32), array_dims(a), None),
            FeatureType::Image(i) => {
                let c = if matches!(i.color_space, ColorSpace::Rgb | ColorSpace::Bgr) {
                    3
                } else {
                    1
                };
                let flexible = !i.enumerated_sizes.is_empty() || i.size_range.is_some();
                let hw = |n: usize| {
                    if flexible {
                        Dim::Unknown
                    } else {
                        Dim::Fixed(n)
                    }
                };
                let dims = vec![Dim::Fixed(1), Dim::Fixed(c), hw(i.height), hw(i.width)];
                (DataType::Fp32, Some(dims), Some(i.color_space))
            }
            FeatureType::Int64 => (DataType::Int64, Some(vec![Dim::Fixed(1)]), None),
            FeatureType::Double => (DataType::Fp64, Some(vec![Dim::Fixed(1)]), None),
            other => {
                return Err(Error::Unsupported {
                    what: format!("NeuralNetwork input {name:?} of type {other:?}"),
                    backend: "portable",
                })
            }
        };
        if !self.em.claim(name) {
            return Err(self.err(format!(
                "input {name:?} is declared twice or is also an output"
            )));
        }
        let rank = dims.as_ref().map(Vec::len);
        let mut v = Val {
            name: name.clone(),
            rank,
        };
        if dtype != DataType::Fp32 {
            v = self.em.cast(&v, DataType::Fp32, name);
        }
        v = match (
            image.is_some(),
            self.net.array_mapping,
            self.net.image_mapping,
        ) {
            (true, _, ImageMapping::Rank5) => self.expand(&v, &[0], name),
            (true, _, ImageMapping::Rank4) | (false, ArrayMapping::Exact, _) => v,
            (false, ArrayMapping::Rank5, _) => match rank {
                Some(1) => self.expand(&v, &[0, 1, 3, 4], name),
                Some(3) => self.expand(&v, &[0, 1], name),
                Some(5) => v,
                _ => {
                    return Err(self.err(format!(
                        "input {name:?}: a rank-5 (legacy) network takes inputs of rank 1, 3 or 5, \
                         this one is declared {dims:?}"
                    )))
                }
            },
        };
        if let Some(space) = image {
            v = self.preprocess(name, v, space)?;
        }
        self.blobs.insert(name.clone(), v);
        Ok(NamedValueType {
            name: name.clone(),
            ty: ValueType::Tensor(TensorType { dtype, shape: dims }),
        })
    }

    fn expand(&mut self, v: &Val, axes: &[i64], hint: &str) -> Val {
        let rank = v.rank.map(|r| r + axes.len());
        self.em.f32_op(
            "expand_dims",
            hint,
            vec![("x", Arg::V(v.clone())), ("axes", Arg::C(ints(axes)))],
            rank,
        )
    }

    /// Applies the image preprocessing (scaler or mean image) of input `name`.
    fn preprocess(&mut self, name: &str, mut v: Val, space: ColorSpace) -> Result<Val> {
        use pb::neural_network_preprocessing::Preprocessor as P;
        // An unnamed preprocessor applies when it is the only one.
        let single = self.net.preprocessing.len() == 1;
        for p in &self.net.preprocessing {
            if !(p.feature_name == name || (p.feature_name.is_empty() && single)) {
                continue;
            }
            match &p.preprocessor {
                Some(P::Scaler(s)) => {
                    let bias = match space {
                        ColorSpace::Rgb => vec![s.red_bias, s.green_bias, s.blue_bias],
                        ColorSpace::Bgr => vec![s.blue_bias, s.green_bias, s.red_bias],
                        _ => vec![s.gray_bias],
                    };
                    let c = bias.len();
                    v = self.em.binary_scalar("mul", &v, s.channel_scale, name);
                    v = self
                        .em
                        .binary_const("add", &v, floats(bias, &[c, 1, 1]), name);
                }
                Some(P::MeanImage(m)) => {
                    let n = m.mean_image.len();
                    let mean = floats(m.mean_image.clone(), &[n]);
                    // The mean image is [C, H, W]: subtract it in that shape.
                    let shape = self.em.shape(&v, name);
                    let chw = self.em.slice1(&shape, -3, None, name);
                    let flat = self.em.constant(mean, name);
                    let img = self.em.reshape_to(&flat, &chw, Some(3), name);
                    v = self.em.binary("sub", &v, &img, name);
                }
                None => {}
            }
        }
        Ok(v)
    }

    fn blob(&self, name: &str, what: &str) -> Result<Val> {
        self.blobs
            .get(name)
            .cloned()
            .ok_or_else(|| self.err(format!("{what} {name:?} is written by no layer")))
    }

    /// The value of output `f`, under its own name.
    fn output(&mut self, f: &FeatureDescription) -> Result<String> {
        let name = f.name.as_str();
        if let Some(c) = &self.net.classifier {
            match &f.ty {
                FeatureType::Dictionary => {
                    let p = self.probabilities(c.probability_blob.as_str())?;
                    return Ok(self.finish(name, &p, DataType::Fp32));
                }
                FeatureType::String | FeatureType::Int64 if !self.blobs.contains_key(name) => {
                    return self.label(
                        name,
                        &c.labels.clone(),
                        c.probability_blob.clone().as_str(),
                    );
                }
                _ => {}
            }
        }
        let v = self.blob(name, "output")?;
        let (dtype, shape) = match &f.ty {
            FeatureType::MultiArray(a) => (a.dtype.unwrap_or(DataType::Fp32), a.shape.clone()),
            FeatureType::Double => (DataType::Fp64, vec![]),
            FeatureType::Int64 => (DataType::Int64, vec![]),
            _ => (DataType::Fp32, vec![]),
        };
        let v = if self.net.array_mapping == ArrayMapping::Rank5 && !shape.is_empty() {
            let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            self.em.f32_op(
                "nn_output_shape",
                name,
                vec![("x", Arg::V(v)), ("shape", Arg::C(ints(&s)))],
                None,
            )
        } else {
            v
        };
        Ok(self.finish(name, &v, dtype))
    }

    /// Gives `v` the output name `name` in `dtype`.
    fn finish(&mut self, name: &str, v: &Val, dtype: DataType) -> String {
        let op = if dtype == DataType::Fp32 {
            "identity"
        } else {
            "cast"
        };
        let mut args = vec![("x", Arg::V(v.clone()))];
        if dtype != DataType::Fp32 {
            args.push(("dtype", Arg::C(super::emit::string(dtype.mil_name()))));
        }
        self.em.named_op(op, name, args, dtype, v.rank);
        name.to_string()
    }

    /// The class probabilities as a vector.
    fn probabilities(&mut self, blob: &str) -> Result<Val> {
        let v = if blob.is_empty() {
            let last = self
                .net
                .layers
                .last()
                .and_then(|l| l.output.first())
                .ok_or_else(|| self.err("a classifier without layers".into()))?
                .clone();
            self.blob(&last, "probability blob")?
        } else {
            self.blob(blob, "probability blob")?
        };
        Ok(self.em.reshape(&v, &[-1], "probabilities"))
    }

    /// The predicted label: the label itself (int64 labels) or its index.
    fn label(&mut self, name: &str, labels: &ClassLabels, blob: &str) -> Result<String> {
        let p = self.probabilities(blob)?;
        let idx = self.em.typed_op(
            "reduce_argmax",
            "label",
            vec![
                ("x", Arg::V(p)),
                ("axis", Arg::C(int(0))),
                ("keep_dims", Arg::C(super::emit::boolean(true))),
            ],
            DataType::Int32,
            Some(1),
        );
        let v = match labels {
            ClassLabels::Ints(l) => {
                let table =
                    TensorValue::new(DataType::Int64, vec![l.len()], TensorData::I64(l.clone()));
                self.em.typed_op(
                    "gather",
                    "label",
                    vec![
                        ("x", Arg::C(table)),
                        ("indices", Arg::V(idx)),
                        ("axis", Arg::C(int(0))),
                    ],
                    DataType::Int64,
                    Some(1),
                )
            }
            ClassLabels::Strings(_) => idx,
        };
        self.em.named_op(
            "cast",
            name,
            vec![
                ("x", Arg::V(v)),
                ("dtype", Arg::C(super::emit::string("int64"))),
            ],
            DataType::Int64,
            Some(1),
        );
        Ok(name.to_string())
    }
}

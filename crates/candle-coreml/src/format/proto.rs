//! Conversion of Core ML protobuf messages (the `coreml-proto` generated
//! types) into the in-memory [`Program`] and [`ModelDescription`].
//!
//! Used by the `.mlpackage` and `.mlmodel` readers. Every field read from
//! the file is checked; malformed content gives [`Error::Format`] naming the
//! protobuf file and where in the model the problem is.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;

use coreml_proto::proto as pb;
use coreml_proto::proto::mil_spec as milpb;
use prost::Message;

use super::blob::BlobResolver;
use super::model_file::{ModelBody, ModelFile, ModelFormat};
use crate::description::{
    ArrayFeature, ColorSpace, DimRange, FeatureDescription, FeatureType, FunctionDescription,
    ImageFeature, Metadata, ModelDescription, ShapeFlexibility,
};
use crate::error::{Error, Result};
use crate::mil::{
    Argument, Binding, Block, ByteView, DataType, Dim, Function, NamedValueType, Operation,
    Program, TensorData, TensorType, TensorValue, Value, ValueType,
};
use crate::neuralnetwork::Network;

pub use crate::mil::MAX_DEPTH;

/// The name a single-function model's function gets when the program does
/// not name it.
pub const DEFAULT_FUNCTION: &str = "main";

/// Decodes a `CoreML.Specification.Model` from `bytes` read from `path`.
pub fn decode_model(bytes: &[u8], path: &Path) -> Result<pb::Model> {
    pb::Model::decode(bytes).map_err(|source| Error::Protobuf {
        path: path.to_path_buf(),
        source,
    })
}

/// Converts a decoded model into a [`ModelFile`].
///
/// `model_path` is what the user opened (recorded in [`ModelFile::path`]),
/// `source` the protobuf file itself (named in errors), and `blobs`
/// resolves the ML Program's `blobFileValue`s.
pub fn convert_model(
    model: pb::Model,
    model_path: &Path,
    source: &Path,
    format: ModelFormat,
    blobs: &mut BlobResolver,
) -> Result<ModelFile> {
    let mut c = Converter {
        model_path,
        source,
        format,
        blobs,
    };
    c.model(model, 0)
}

/// Converts the protobuf of an ML Program, resolving blobs with `blobs`;
/// errors name `source`.
pub fn convert_program(
    program: milpb::Program,
    source: &Path,
    blobs: &mut BlobResolver,
) -> Result<Program> {
    let mut c = Converter {
        model_path: source,
        source,
        format: ModelFormat::MlModel,
        blobs,
    };
    c.program(program)
}

/// Prefixes a format error's message with where in the model it happened.
fn within(e: Error, context: impl FnOnce() -> String) -> Error {
    match e {
        Error::Format { path, message } => Error::Format {
            path,
            message: format!("{}: {message}", context()),
        },
        other => other,
    }
}

/// Sorts a protobuf map by key, for a deterministic order.
fn sorted<V>(map: HashMap<String, V>) -> Vec<(String, V)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

struct Converter<'a> {
    model_path: &'a Path,
    source: &'a Path,
    format: ModelFormat,
    blobs: &'a mut BlobResolver,
}

impl Converter<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::format(self.source, message)
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn model(&mut self, m: pb::Model, depth: usize) -> Result<ModelFile> {
        self.check_depth(depth)?;
        let body = self.body(m.r#type, depth)?;
        let description = self.description(m.description, body_program(&body))?;
        Ok(ModelFile {
            path: self.model_path.to_path_buf(),
            format: self.format,
            spec_version: u32::try_from(m.specification_version).ok(),
            description,
            body,
            compiled_op_histogram: None,
            weights_root: self.blobs.root().to_path_buf(),
        })
    }

    fn body(&mut self, t: Option<pb::model::Type>, depth: usize) -> Result<ModelBody> {
        use pb::model::Type as T;
        let pipeline = match t {
            None => return Err(self.err("the model sets no model type")),
            Some(T::MlProgram(p)) => return self.program(p).map(ModelBody::Program),
            Some(T::NeuralNetwork(n)) => return Ok(nn(Network::from_plain(n))),
            Some(T::NeuralNetworkClassifier(n)) => return Ok(nn(Network::from_classifier(n))),
            Some(T::NeuralNetworkRegressor(n)) => return Ok(nn(Network::from_regressor(n))),
            Some(T::Pipeline(p)) => p,
            Some(T::PipelineClassifier(p)) => p.pipeline.unwrap_or_default(),
            Some(T::PipelineRegressor(p)) => p.pipeline.unwrap_or_default(),
            Some(other) => return Ok(ModelBody::Other(other_kind(&other).to_string())),
        };
        let models = pipeline
            .models
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                self.model(m, depth + 1)
                    .map_err(|e| within(e, || format!("pipeline model {i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelBody::Pipeline(models))
    }

    // ---- ML Program -------------------------------------------------------

    fn program(&mut self, p: milpb::Program) -> Result<Program> {
        let mut functions = Vec::with_capacity(p.functions.len());
        for (name, f) in sorted(p.functions) {
            let func = self
                .function(name.clone(), f)
                .map_err(|e| within(e, || format!("function {name:?}")))?;
            functions.push(func);
        }
        Ok(Program {
            version: p.version.to_string(),
            functions,
            attributes: self.attributes(p.attributes, 0)?,
        })
    }

    fn function(&mut self, name: String, mut f: milpb::Function) -> Result<Function> {
        let block = f.block_specializations.remove(&f.opset).ok_or_else(|| {
            self.err(format!(
                "opset {:?} has no block specialization (has {:?})",
                f.opset,
                f.block_specializations.keys().collect::<Vec<_>>()
            ))
        })?;
        Ok(Function {
            name,
            inputs: self.named_types(f.inputs, 0)?,
            opset: f.opset,
            block: self.block(block, 0)?,
            attributes: self.attributes(f.attributes, 0)?,
        })
    }

    fn block(&mut self, b: milpb::Block, depth: usize) -> Result<Block> {
        self.check_depth(depth)?;
        let mut operations = Vec::with_capacity(b.operations.len());
        for (i, op) in b.operations.into_iter().enumerate() {
            let label = op
                .outputs
                .first()
                .map(|o| o.name.clone())
                .unwrap_or_else(|| format!("#{i}"));
            let op_type = op.r#type.clone();
            let converted = self
                .operation(op, depth)
                .map_err(|e| within(e, || format!("op {label:?} ({op_type})")))?;
            operations.push(converted);
        }
        Ok(Block {
            inputs: self.named_types(b.inputs, depth)?,
            outputs: b.outputs,
            operations,
            attributes: self.attributes(b.attributes, depth)?,
        })
    }

    fn operation(&mut self, op: milpb::Operation, depth: usize) -> Result<Operation> {
        let mut inputs = BTreeMap::new();
        for (name, arg) in sorted(op.inputs) {
            let mut bindings = Vec::with_capacity(arg.arguments.len());
            for b in arg.arguments {
                use milpb::argument::binding::Binding as B;
                bindings.push(match b.binding {
                    Some(B::Name(n)) => Binding::Name(n),
                    Some(B::Value(v)) => Binding::Value(
                        self.value(v, depth + 1)
                            .map_err(|e| within(e, || format!("input {name:?}")))?,
                    ),
                    None => return Err(self.err(format!("input {name:?} has an empty binding"))),
                });
            }
            inputs.insert(name, Argument { bindings });
        }
        let blocks = op
            .blocks
            .into_iter()
            .map(|b| self.block(b, depth + 1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Operation {
            op_type: op.r#type,
            inputs,
            outputs: self.named_types(op.outputs, depth)?,
            blocks,
            attributes: self.attributes(op.attributes, depth)?,
            location: None,
        })
    }

    fn named_types(
        &self,
        items: Vec<milpb::NamedValueType>,
        depth: usize,
    ) -> Result<Vec<NamedValueType>> {
        items
            .into_iter()
            .map(|n| {
                let ty = n
                    .r#type
                    .ok_or_else(|| self.err(format!("{:?} has no type", n.name)))
                    .and_then(|t| self.value_type(t, depth + 1))
                    .map_err(|e| within(e, || format!("value {:?}", n.name)))?;
                Ok(NamedValueType { name: n.name, ty })
            })
            .collect()
    }

    fn attributes(
        &mut self,
        attrs: HashMap<String, milpb::Value>,
        depth: usize,
    ) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        for (name, v) in sorted(attrs) {
            let value = self
                .value(v, depth + 1)
                .map_err(|e| within(e, || format!("attribute {name:?}")))?;
            out.insert(name, value);
        }
        Ok(out)
    }

    // ---- types ------------------------------------------------------------

    fn value_type(&self, t: milpb::ValueType, depth: usize) -> Result<ValueType> {
        use milpb::value_type::Type as T;
        self.check_depth(depth)?;
        let boxed = |t: Option<Box<milpb::ValueType>>, what: &str| -> Result<Box<ValueType>> {
            let t = t.ok_or_else(|| self.err(format!("{what} type missing")))?;
            Ok(Box::new(self.value_type(*t, depth + 1)?))
        };
        Ok(match t.r#type {
            None => return Err(self.err("value type not set")),
            Some(T::TensorType(tt)) => ValueType::Tensor(self.tensor_type(&tt)?),
            Some(T::ListType(l)) => ValueType::List {
                element: boxed(l.r#type, "list element")?,
                length: match l.length.and_then(|d| d.dimension) {
                    Some(milpb::dimension::Dimension::Constant(c)) => Some(self.size(c.size)?),
                    _ => None,
                },
            },
            Some(T::TupleType(t)) => ValueType::Tuple(
                t.types
                    .into_iter()
                    .map(|t| self.value_type(t, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Some(T::DictionaryType(d)) => ValueType::Dict {
                key: boxed(d.key_type, "dictionary key")?,
                value: boxed(d.value_type, "dictionary value")?,
            },
            Some(T::StateType(s)) => ValueType::State(boxed(s.wrapped_type, "state")?),
        })
    }

    fn tensor_type(&self, t: &milpb::TensorType) -> Result<TensorType> {
        let dtype = DataType::from_proto_code(t.data_type)
            .ok_or_else(|| self.err(format!("unknown MIL data type code {}", t.data_type)))?;
        if t.rank < 0 {
            return Ok(TensorType { dtype, shape: None });
        }
        if usize::try_from(t.rank).ok() != Some(t.dimensions.len()) {
            return Err(self.err(format!(
                "tensor type of rank {} lists {} dimensions",
                t.rank,
                t.dimensions.len()
            )));
        }
        let shape = t
            .dimensions
            .iter()
            .map(|d| match d.dimension {
                Some(milpb::dimension::Dimension::Constant(c)) => self.size(c.size).map(Dim::Fixed),
                _ => Ok(Dim::Unknown),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TensorType {
            dtype,
            shape: Some(shape),
        })
    }

    fn size(&self, n: u64) -> Result<usize> {
        usize::try_from(n).map_err(|_| self.err(format!("size {n} too large")))
    }

    // ---- values -----------------------------------------------------------

    fn value(&mut self, v: milpb::Value, depth: usize) -> Result<Value> {
        use milpb::value::Value as V;
        self.check_depth(depth)?;
        match v.value {
            None => Err(self.err("value has neither an immediate value nor a blob")),
            Some(V::ImmediateValue(imm)) => self.immediate(imm, v.r#type, depth),
            Some(V::BlobFileValue(b)) => {
                let (dtype, shape) = self.fixed_tensor_type(v.r#type, "blob value")?;
                self.blobs
                    .tensor(&b.file_name, b.offset, dtype, &shape)
                    .map(Value::Tensor)
            }
        }
    }

    /// The dtype and fully known shape of a constant tensor's type.
    fn fixed_tensor_type(
        &self,
        ty: Option<milpb::ValueType>,
        what: &str,
    ) -> Result<(DataType, Vec<usize>)> {
        let tt = match ty.and_then(|t| t.r#type) {
            Some(milpb::value_type::Type::TensorType(tt)) => self.tensor_type(&tt)?,
            _ => return Err(self.err(format!("{what} without a tensor type"))),
        };
        let shape = tt.fixed_shape().ok_or_else(|| {
            self.err(format!(
                "{what} of type {tt} has a dimension that is not known"
            ))
        })?;
        Ok((tt.dtype, shape))
    }

    fn immediate(
        &mut self,
        imm: milpb::value::ImmediateValue,
        ty: Option<milpb::ValueType>,
        depth: usize,
    ) -> Result<Value> {
        use milpb::value::immediate_value::Value as I;
        let values = |c: &mut Self, vs: Vec<milpb::Value>| -> Result<Vec<Value>> {
            vs.into_iter().map(|v| c.value(v, depth + 1)).collect()
        };
        Ok(match imm.value {
            None => return Err(self.err("immediate value is empty")),
            Some(I::Tensor(t)) => {
                let (dtype, shape) = self.fixed_tensor_type(ty, "immediate tensor")?;
                let data = self.tensor_data(dtype, &shape, t)?;
                Value::Tensor(TensorValue::new(dtype, shape, data))
            }
            Some(I::Tuple(t)) => Value::Tuple(values(self, t.values)?),
            Some(I::List(l)) => Value::List(values(self, l.values)?),
            Some(I::Dictionary(d)) => {
                let mut pairs = Vec::with_capacity(d.values.len());
                for kv in d.values {
                    let (Some(k), Some(v)) = (kv.key, kv.value) else {
                        return Err(self.err("dictionary entry without key or value"));
                    };
                    pairs.push((self.value(k, depth + 1)?, self.value(v, depth + 1)?));
                }
                Value::Dict(pairs)
            }
        })
    }

    fn tensor_data(
        &self,
        dtype: DataType,
        shape: &[usize],
        t: milpb::TensorValue,
    ) -> Result<TensorData> {
        use milpb::tensor_value::Value as V;
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.err(format!("shape {shape:?} overflows")))?;
        let (count, data) = match t.value {
            None if n == 0 => return Ok(empty_data(dtype)),
            None => return Err(self.err(format!("{dtype} tensor of shape {shape:?} has no data"))),
            Some(V::Floats(v)) => (v.values.len(), TensorData::F32(v.values)),
            Some(V::Doubles(v)) => (v.values.len(), TensorData::F64(v.values)),
            Some(V::Ints(v)) => (v.values.len(), TensorData::I32(v.values)),
            Some(V::LongInts(v)) => (v.values.len(), TensorData::I64(v.values)),
            Some(V::Bools(v)) => (v.values.len(), TensorData::Bool(v.values)),
            Some(V::Strings(v)) => (v.values.len(), TensorData::Str(v.values)),
            Some(V::Bytes(v)) => {
                let need = dtype
                    .bit_width()
                    .and_then(|b| n.checked_mul(b as usize))
                    .map(|bits| bits.div_ceil(8))
                    .ok_or_else(|| self.err(format!("{dtype} values cannot be stored as bytes")))?;
                if v.values.len() != need {
                    return Err(self.err(format!(
                        "{dtype} tensor of shape {shape:?} needs {need} bytes, has {}",
                        v.values.len()
                    )));
                }
                return Ok(TensorData::Bytes(ByteView::from_vec(v.values)));
            }
        };
        if (dtype == DataType::String) != matches!(data, TensorData::Str(_)) {
            return Err(self.err(format!("{dtype} tensor stored in the wrong protobuf field")));
        }
        if count != n {
            return Err(self.err(format!(
                "{dtype} tensor of shape {shape:?} holds {count} values, expected {n}"
            )));
        }
        Ok(data)
    }
}

fn nn(network: Network) -> ModelBody {
    ModelBody::NeuralNetwork {
        layers: network.layer_count(),
        network: Some(std::sync::Arc::new(network)),
    }
}

fn body_program(body: &ModelBody) -> Option<&Program> {
    match body {
        ModelBody::Program(p) => Some(p),
        _ => None,
    }
}

fn empty_data(dtype: DataType) -> TensorData {
    match dtype {
        DataType::String => TensorData::Str(Vec::new()),
        _ => TensorData::Bytes(ByteView::from_vec(Vec::new())),
    }
}

/// The protobuf field name of a model type the reader does not convert.
fn other_kind(t: &pb::model::Type) -> &'static str {
    use pb::model::Type as T;
    match t {
        T::PipelineClassifier(_) => "pipelineClassifier",
        T::PipelineRegressor(_) => "pipelineRegressor",
        T::Pipeline(_) => "pipeline",
        T::GlmRegressor(_) => "glmRegressor",
        T::SupportVectorRegressor(_) => "supportVectorRegressor",
        T::TreeEnsembleRegressor(_) => "treeEnsembleRegressor",
        T::NeuralNetworkRegressor(_) => "neuralNetworkRegressor",
        T::BayesianProbitRegressor(_) => "bayesianProbitRegressor",
        T::GlmClassifier(_) => "glmClassifier",
        T::SupportVectorClassifier(_) => "supportVectorClassifier",
        T::TreeEnsembleClassifier(_) => "treeEnsembleClassifier",
        T::NeuralNetworkClassifier(_) => "neuralNetworkClassifier",
        T::KNearestNeighborsClassifier(_) => "kNearestNeighborsClassifier",
        T::NeuralNetwork(_) => "neuralNetwork",
        T::ItemSimilarityRecommender(_) => "itemSimilarityRecommender",
        T::MlProgram(_) => "mlProgram",
        T::CustomModel(_) => "customModel",
        T::LinkedModel(_) => "linkedModel",
        T::ClassConfidenceThresholding(_) => "classConfidenceThresholding",
        T::OneHotEncoder(_) => "oneHotEncoder",
        T::Imputer(_) => "imputer",
        T::FeatureVectorizer(_) => "featureVectorizer",
        T::DictVectorizer(_) => "dictVectorizer",
        T::Scaler(_) => "scaler",
        T::CategoricalMapping(_) => "categoricalMapping",
        T::Normalizer(_) => "normalizer",
        T::ArrayFeatureExtractor(_) => "arrayFeatureExtractor",
        T::NonMaximumSuppression(_) => "nonMaximumSuppression",
        T::Identity(_) => "identity",
        T::TextClassifier(_) => "textClassifier",
        T::WordTagger(_) => "wordTagger",
        T::VisionFeaturePrint(_) => "visionFeaturePrint",
        T::SoundAnalysisPreprocessing(_) => "soundAnalysisPreprocessing",
        T::Gazetteer(_) => "gazetteer",
        T::WordEmbedding(_) => "wordEmbedding",
        T::AudioFeaturePrint(_) => "audioFeaturePrint",
        T::SerializedModel(_) => "serializedModel",
    }
}

// ---- model description ----------------------------------------------------

impl Converter<'_> {
    fn description(
        &self,
        d: Option<pb::ModelDescription>,
        program: Option<&Program>,
    ) -> Result<ModelDescription> {
        let d = d.unwrap_or_default();
        let metadata = d.metadata.map(convert_metadata).unwrap_or_default();
        if d.functions.is_empty() {
            let name = match program.map(|p| p.functions.as_slice()) {
                Some([only]) => only.name.clone(),
                _ => DEFAULT_FUNCTION.to_string(),
            };
            let function = FunctionDescription {
                name: name.clone(),
                inputs: self.features(d.input, "input")?,
                outputs: self.features(d.output, "output")?,
                states: self.features(d.state, "state")?,
            };
            return Ok(ModelDescription {
                functions: vec![function],
                default_function: name,
                metadata,
            });
        }
        let mut functions = Vec::with_capacity(d.functions.len());
        for f in d.functions {
            let name = f.name;
            let converted = (|| {
                Ok::<_, Error>(FunctionDescription {
                    name: name.clone(),
                    inputs: self.features(f.input, "input")?,
                    outputs: self.features(f.output, "output")?,
                    states: self.features(f.state, "state")?,
                })
            })()
            .map_err(|e| within(e, || format!("function description {name:?}")))?;
            functions.push(converted);
        }
        let default_function = if d.default_function_name.is_empty() {
            functions
                .first()
                .map(|f| f.name.clone())
                .unwrap_or_default()
        } else {
            d.default_function_name
        };
        if !functions.iter().any(|f| f.name == default_function) {
            return Err(self.err(format!(
                "defaultFunctionName {default_function:?} names none of the model's functions"
            )));
        }
        Ok(ModelDescription {
            functions,
            default_function,
            metadata,
        })
    }

    fn features(
        &self,
        items: Vec<pb::FeatureDescription>,
        role: &str,
    ) -> Result<Vec<FeatureDescription>> {
        items
            .into_iter()
            .map(|f| {
                let name = f.name;
                let ft = f
                    .r#type
                    .ok_or_else(|| self.err(format!("{role} {name:?} has no type")))?;
                let ty = self
                    .feature_type(ft.r#type)
                    .map_err(|e| within(e, || format!("{role} {name:?}")))?;
                Ok(FeatureDescription {
                    name,
                    ty,
                    short_description: f.short_description,
                    optional: ft.is_optional,
                })
            })
            .collect()
    }

    fn feature_type(&self, t: Option<pb::feature_type::Type>) -> Result<FeatureType> {
        use pb::feature_type::Type as T;
        Ok(match t {
            None => return Err(self.err("feature type not set")),
            Some(T::Int64Type(_)) => FeatureType::Int64,
            Some(T::DoubleType(_)) => FeatureType::Double,
            Some(T::StringType(_)) => FeatureType::String,
            Some(T::DictionaryType(_)) => FeatureType::Dictionary,
            Some(T::SequenceType(_)) => FeatureType::Sequence,
            Some(T::MultiArrayType(a)) => FeatureType::MultiArray(self.array(a)?),
            Some(T::ImageType(i)) => FeatureType::Image(self.image(i)?),
            Some(T::StateType(s)) => match s.r#type {
                Some(pb::state_feature_type::Type::ArrayType(a)) => {
                    FeatureType::State(self.array(a)?)
                }
                None => return Err(self.err("state feature without an array type")),
            },
        })
    }

    fn dim(&self, d: i64) -> Result<usize> {
        usize::try_from(d).map_err(|_| self.err(format!("invalid dimension {d}")))
    }

    fn dims(&self, dims: &[i64]) -> Result<Vec<usize>> {
        dims.iter().map(|&d| self.dim(d)).collect()
    }

    fn range(&self, r: pb::SizeRange) -> Result<DimRange> {
        Ok(DimRange {
            lower: self.size(r.lower_bound)?,
            upper: if r.upper_bound < 0 {
                None
            } else {
                Some(self.size(r.upper_bound.unsigned_abs())?)
            },
        })
    }

    fn array(&self, a: pb::ArrayFeatureType) -> Result<ArrayFeature> {
        use pb::array_feature_type::ShapeFlexibility as F;
        let dtype = match a.data_type {
            0 => None,
            65568 => Some(DataType::Fp32),
            65600 => Some(DataType::Fp64),
            131104 => Some(DataType::Int32),
            131080 => Some(DataType::Int8),
            65552 => Some(DataType::Fp16),
            code => return Err(self.err(format!("unknown multi-array data type code {code}"))),
        };
        let flexibility = match a.shape_flexibility {
            None => None,
            Some(F::EnumeratedShapes(e)) => Some(ShapeFlexibility::Enumerated(
                e.shapes
                    .iter()
                    .map(|s| self.dims(&s.shape))
                    .collect::<Result<_>>()?,
            )),
            Some(F::ShapeRange(r)) => Some(ShapeFlexibility::Ranges(
                r.size_ranges
                    .into_iter()
                    .map(|r| self.range(r))
                    .collect::<Result<_>>()?,
            )),
        };
        Ok(ArrayFeature {
            dtype,
            shape: self.dims(&a.shape)?,
            flexibility,
        })
    }

    fn image(&self, i: pb::ImageFeatureType) -> Result<ImageFeature> {
        use pb::image_feature_type::SizeFlexibility as F;
        let color_space = match i.color_space {
            10 => ColorSpace::Grayscale,
            20 => ColorSpace::Rgb,
            30 => ColorSpace::Bgr,
            40 => ColorSpace::GrayscaleFloat16,
            code => return Err(self.err(format!("unknown image colour space code {code}"))),
        };
        let width = self.dim(i.width)?;
        let height = self.dim(i.height)?;
        let mut enumerated_sizes = Vec::new();
        let mut size_range = None;
        match i.size_flexibility {
            None => {}
            Some(F::EnumeratedSizes(e)) => {
                for s in e.sizes {
                    enumerated_sizes.push((self.size(s.width)?, self.size(s.height)?));
                }
            }
            Some(F::ImageSizeRange(r)) => {
                // An unset range reads as the protobuf default (0..=0), as
                // every protobuf reader sees it.
                let w = self.range(r.width_range.unwrap_or_default())?;
                let h = self.range(r.height_range.unwrap_or_default())?;
                size_range = Some((w, h));
            }
        }
        Ok(ImageFeature {
            width,
            height,
            color_space,
            enumerated_sizes,
            size_range,
        })
    }
}

fn convert_metadata(m: pb::Metadata) -> Metadata {
    Metadata {
        short_description: m.short_description,
        version: m.version_string,
        author: m.author,
        license: m.license,
        user_defined: m.user_defined.into_iter().collect(),
    }
}

//! What a model takes and gives: inputs, outputs, states, functions, metadata.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::mil::DataType;

/// The range of one flexible dimension: `upper` is `None` when unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DimRange {
    /// Smallest size accepted.
    pub lower: usize,
    /// Largest size accepted, `None` for unbounded.
    pub upper: Option<usize>,
}

impl DimRange {
    /// True when `n` lies in the range.
    pub fn contains(&self, n: usize) -> bool {
        n >= self.lower && self.upper.is_none_or(|u| n <= u)
    }
}

/// How a multi-array or image may change shape from its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeFlexibility {
    /// Each dimension within a range.
    Ranges(Vec<DimRange>),
    /// One of these shapes.
    Enumerated(Vec<Vec<usize>>),
}

impl ShapeFlexibility {
    /// True when `shape` is accepted.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        match self {
            ShapeFlexibility::Ranges(r) => {
                r.len() == shape.len() && r.iter().zip(shape).all(|(r, &n)| r.contains(n))
            }
            ShapeFlexibility::Enumerated(shapes) => shapes.iter().any(|s| s == shape),
        }
    }
}

/// A multi-array (tensor) feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArrayFeature {
    /// Element type; `None` when the model leaves it open.
    pub dtype: Option<DataType>,
    /// Default shape (may be empty when only flexibility is given).
    pub shape: Vec<usize>,
    /// Flexibility, if the shape is not fixed.
    pub flexibility: Option<ShapeFlexibility>,
}

impl ArrayFeature {
    /// True when `shape` is accepted: the default shape, or within the flexibility.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        match &self.flexibility {
            Some(f) => f.accepts(shape) || shape == self.shape.as_slice(),
            None => shape == self.shape.as_slice(),
        }
    }
}

/// Colour layout of an image feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorSpace {
    /// One 8-bit channel.
    Grayscale,
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
    /// One float16 channel.
    GrayscaleFloat16,
}

/// An image feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageFeature {
    /// Default width in pixels.
    pub width: usize,
    /// Default height in pixels.
    pub height: usize,
    /// Colour layout.
    pub color_space: ColorSpace,
    /// Accepted sizes as (width, height) when flexible.
    pub enumerated_sizes: Vec<(usize, usize)>,
    /// Accepted width and height ranges when flexible.
    pub size_range: Option<(DimRange, DimRange)>,
}

/// The type of a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// A tensor.
    MultiArray(ArrayFeature),
    /// An image.
    Image(ImageFeature),
    /// A 64-bit integer scalar.
    Int64,
    /// A double scalar.
    Double,
    /// A string.
    String,
    /// A dictionary (classifier probabilities).
    Dictionary,
    /// A sequence.
    Sequence,
    /// A state buffer.
    State(ArrayFeature),
}

impl FeatureType {
    /// The kind of feature, as `snake_case` (`multi_array`, `image`, `int64`...).
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureType::MultiArray(_) => "multi_array",
            FeatureType::Image(_) => "image",
            FeatureType::Int64 => "int64",
            FeatureType::Double => "double",
            FeatureType::String => "string",
            FeatureType::Dictionary => "dictionary",
            FeatureType::Sequence => "sequence",
            FeatureType::State(_) => "state",
        }
    }

    /// The element type, for tensor-like features.
    pub fn dtype(&self) -> Option<DataType> {
        match self {
            FeatureType::MultiArray(a) | FeatureType::State(a) => a.dtype,
            FeatureType::Image(i) => Some(match i.color_space {
                ColorSpace::GrayscaleFloat16 => DataType::Fp16,
                _ => DataType::UInt8,
            }),
            FeatureType::Int64 => Some(DataType::Int64),
            FeatureType::Double => Some(DataType::Fp64),
            FeatureType::String => Some(DataType::String),
            FeatureType::Dictionary | FeatureType::Sequence => None,
        }
    }

    /// The default shape, for tensor-like features (images as `[1, C, H, W]`).
    pub fn shape(&self) -> Option<Vec<usize>> {
        match self {
            FeatureType::MultiArray(a) | FeatureType::State(a) => Some(a.shape.clone()),
            FeatureType::Image(i) => {
                let c = if matches!(i.color_space, ColorSpace::Rgb | ColorSpace::Bgr) {
                    3
                } else {
                    1
                };
                Some(vec![1, c, i.height, i.width])
            }
            FeatureType::Int64 | FeatureType::Double | FeatureType::String => Some(vec![]),
            FeatureType::Dictionary | FeatureType::Sequence => None,
        }
    }

    /// Flexibility of a multi-array or state.
    pub fn flexibility(&self) -> Option<&ShapeFlexibility> {
        match self {
            FeatureType::MultiArray(a) | FeatureType::State(a) => a.flexibility.as_ref(),
            _ => None,
        }
    }
}

/// A named input, output or state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureDescription {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: FeatureType,
    /// Short description from the model author.
    pub short_description: String,
    /// True when the input may be left out.
    pub optional: bool,
}

/// One function's interface. Single-function models have one, named `main`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionDescription {
    /// Function name.
    pub name: String,
    /// Inputs.
    pub inputs: Vec<FeatureDescription>,
    /// Outputs.
    pub outputs: Vec<FeatureDescription>,
    /// States.
    pub states: Vec<FeatureDescription>,
}

/// Author metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Short description.
    pub short_description: String,
    /// Version string.
    pub version: String,
    /// Author.
    pub author: String,
    /// Licence.
    pub license: String,
    /// User-defined key/value pairs.
    pub user_defined: BTreeMap<String, String>,
}

/// The interface of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDescription {
    /// Functions; a single-function model has one called `main`.
    pub functions: Vec<FunctionDescription>,
    /// The function used when none is named.
    pub default_function: String,
    /// Metadata.
    pub metadata: Metadata,
}

impl ModelDescription {
    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionDescription> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The default function's description.
    pub fn default(&self) -> Option<&FunctionDescription> {
        self.function(&self.default_function)
    }
}

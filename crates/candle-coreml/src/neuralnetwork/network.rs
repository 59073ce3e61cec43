//! The NeuralNetwork model as the readers keep it: [`Network`], its layers
//! and how its inputs map onto tensors.

use std::collections::BTreeMap;

use coreml_proto::proto as pb;

use super::layers::layer_type;

/// How multi-array inputs map onto the tensors the layers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayMapping {
    /// Legacy rank-5 `[Seq, Batch, C, H, W]` tensors (spec versions 1-3).
    Rank5,
    /// Inputs as declared (spec 4+).
    Exact,
}

/// How image inputs map onto tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMapping {
    /// `[1, 1, C, H, W]`.
    Rank5,
    /// `[1, C, H, W]` (spec 4+).
    Rank4,
}

/// The class labels of a `neuralNetworkClassifier`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassLabels {
    /// String labels: the label output holds an index into these.
    Strings(Vec<String>),
    /// Integer labels: the label output holds the label itself.
    Ints(Vec<i64>),
}

impl ClassLabels {
    /// Number of classes.
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Strings(v) => v.len(),
            ClassLabels::Ints(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a classifier adds to its network.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    pub(crate) labels: ClassLabels,
    /// The blob of class probabilities (the last layer's output when empty).
    pub(crate) probability_blob: String,
}

/// A NeuralNetwork model as read from its protobuf: its layers, kept as they
/// are, and how inputs map onto tensors.
#[derive(Debug, Clone)]
pub struct Network {
    kind: &'static str,
    pub(crate) layers: Vec<pb::NeuralNetworkLayer>,
    pub(crate) preprocessing: Vec<pb::NeuralNetworkPreprocessing>,
    pub(crate) array_mapping: ArrayMapping,
    pub(crate) image_mapping: ImageMapping,
    pub(crate) classifier: Option<Classifier>,
}

fn mappings(array: i32, image: i32) -> (ArrayMapping, ImageMapping) {
    (
        if array == 1 {
            ArrayMapping::Exact
        } else {
            ArrayMapping::Rank5
        },
        if image == 1 {
            ImageMapping::Rank4
        } else {
            ImageMapping::Rank5
        },
    )
}

impl Network {
    /// A plain `neuralNetwork`.
    pub fn from_plain(n: pb::NeuralNetwork) -> Self {
        let (array_mapping, image_mapping) =
            mappings(n.array_input_shape_mapping, n.image_input_shape_mapping);
        Self {
            kind: "neuralNetwork",
            layers: n.layers,
            preprocessing: n.preprocessing,
            array_mapping,
            image_mapping,
            classifier: None,
        }
    }

    /// A `neuralNetworkRegressor` (a plain network by another name).
    pub fn from_regressor(n: pb::NeuralNetworkRegressor) -> Self {
        let (array_mapping, image_mapping) =
            mappings(n.array_input_shape_mapping, n.image_input_shape_mapping);
        Self {
            kind: "neuralNetworkRegressor",
            layers: n.layers,
            preprocessing: n.preprocessing,
            array_mapping,
            image_mapping,
            classifier: None,
        }
    }

    /// A `neuralNetworkClassifier`.
    pub fn from_classifier(n: pb::NeuralNetworkClassifier) -> Self {
        use pb::neural_network_classifier::ClassLabels as L;
        let (array_mapping, image_mapping) =
            mappings(n.array_input_shape_mapping, n.image_input_shape_mapping);
        let labels = match n.class_labels {
            Some(L::StringClassLabels(v)) => ClassLabels::Strings(v.vector),
            Some(L::Int64ClassLabels(v)) => ClassLabels::Ints(v.vector),
            None => ClassLabels::Strings(Vec::new()),
        };
        Self {
            kind: "neuralNetworkClassifier",
            layers: n.layers,
            preprocessing: n.preprocessing,
            array_mapping,
            image_mapping,
            classifier: Some(Classifier {
                labels,
                probability_blob: n.label_probability_layer_name,
            }),
        }
    }

    /// The protobuf field name of the model type (`neuralNetwork`,
    /// `neuralNetworkClassifier`, `neuralNetworkRegressor`).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Number of layers (nested networks of branches and loops not counted).
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// How many layers of each type (`convolution`, `innerProduct`...) the
    /// network has, nested networks included.
    pub fn layer_histogram(&self) -> BTreeMap<&'static str, usize> {
        let mut hist = BTreeMap::new();
        count_layers(&self.layers, &mut hist, 0);
        hist
    }

    /// The class labels of a classifier.
    pub fn class_labels(&self) -> Option<&ClassLabels> {
        self.classifier.as_ref().map(|c| &c.labels)
    }

    /// How multi-array inputs are mapped.
    pub fn array_mapping(&self) -> ArrayMapping {
        self.array_mapping
    }
}

fn count_layers(
    layers: &[pb::NeuralNetworkLayer],
    hist: &mut BTreeMap<&'static str, usize>,
    depth: usize,
) {
    use pb::neural_network_layer::Layer as L;
    if depth > crate::mil::MAX_DEPTH {
        return;
    }
    for l in layers {
        *hist.entry(layer_type(l)).or_default() += 1;
        let nested: Vec<&pb::NeuralNetwork> = match &l.layer {
            Some(L::Branch(b)) => b.if_branch.iter().chain(b.else_branch.iter()).collect(),
            Some(L::Loop(lp)) => lp
                .condition_network
                .iter()
                .chain(lp.body_network.iter())
                .collect(),
            _ => Vec::new(),
        };
        for n in nested {
            count_layers(&n.layers, hist, depth + 1);
        }
    }
}

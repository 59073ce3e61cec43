//! NeuralNetwork models (the layer list of NeuralNetwork.proto, Core ML's
//! model kind before ML Programs) as MIL programs.
//!
//! The readers keep a NeuralNetwork as its layers ([`Network`]); the portable
//! backend translates them at load into one MIL [`Function`](crate::mil::Function) (see
//! [`to_function`]), so every kernel, the planner and the CLI serve both model
//! kinds. Most layers become one MIL op or a short sequence of them.
//!
//! Conventions of the translation (where Core ML documents none, these are
//! our choices):
//! - Every blob is fp32. Inputs of another dtype are cast on entry; outputs
//!   are cast to their declared dtype.
//! - Rank-5 networks (`RANK5_ARRAY_MAPPING`, spec 1-3): an input `[C]` is seen
//!   as `[1, 1, C, 1, 1]`, `[C, H, W]` as `[1, 1, C, H, W]`, and images as
//!   `[1, 1, C, H, W]`. An output whose declared shape holds as many elements
//!   as the computed blob takes that shape; otherwise (no declared shape, or
//!   a flexible input changed the size) the computed shape is returned.
//! - Exact-mapping networks (spec 4+) see inputs as declared and return
//!   outputs as computed.
//! - Classifiers: the probabilities output (a dictionary in Core ML) is an
//!   fp32 tensor `[n_classes]` in the order of the class labels; the label
//!   output is an int64 tensor `[1]` holding the label for int64 labels, and
//!   the label's index in [`Network::class_labels`] for string labels.
//!
//! Nothing here depends on candle.

mod convert;
mod emit;
mod layers;
mod network;
pub mod pipeline;
mod weights;

pub use convert::to_function;
pub use layers::layer_type;
pub use network::{ArrayMapping, ClassLabels, ImageMapping, Network};

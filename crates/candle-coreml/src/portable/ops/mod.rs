//! Op kernels, one file per family mirroring the MIL op documentation.
//! Each family registers its ops by name in [`Registry`], declaring there
//! what the planner must know about them (an op that touches states or
//! draws random numbers is never folded at load).

mod activation;
mod attention;
mod control_flow;
mod conv;
mod conv_quantized;
mod elementwise;
pub(crate) mod epilogue;
mod gather_scatter;
mod image;
mod linear;
mod list;
mod nn_output;
mod normalization;
mod palettized;
mod pool;
mod quantization;
mod random;
mod recurrent;
mod reduction;
mod registry;
mod sampling;
mod shape_ops;
mod state;
mod tensor_ops;
pub(crate) mod util;

pub(crate) use registry::{OpEntry, Registry};

/// Every op the portable backend implements, each family registering its own.
pub(crate) fn registry() -> Registry {
    let mut reg = Registry::default();
    activation::register(&mut reg);
    attention::register(&mut reg);
    control_flow::register(&mut reg);
    conv::register(&mut reg);
    conv_quantized::register(&mut reg);
    elementwise::register(&mut reg);
    gather_scatter::register(&mut reg);
    image::register(&mut reg);
    linear::register(&mut reg);
    list::register(&mut reg);
    nn_output::register(&mut reg);
    normalization::register(&mut reg);
    palettized::register(&mut reg);
    pool::register(&mut reg);
    quantization::register(&mut reg);
    random::register(&mut reg);
    recurrent::register(&mut reg);
    reduction::register(&mut reg);
    sampling::register(&mut reg);
    shape_ops::register(&mut reg);
    state::register(&mut reg);
    tensor_ops::register(&mut reg);
    reg
}

/// Names of the ops the portable backend implements (besides `const` and the
/// constexpr ops, which are decoded at load). Internal ops made by load-time
/// rewrites (named with a leading `_`) are not listed.
pub fn supported_ops() -> Vec<&'static str> {
    let mut names = registry().names();
    names.retain(|n| !n.starts_with('_'));
    names
}

//! Op kernels, one file per family mirroring the MIL op documentation.
//! Each family registers its ops by name in [`Registry`].

use std::collections::HashMap;

use super::kernel::BuildFn;

mod activation;
mod attention;
mod control_flow;
mod conv;
mod conv_quantized;
mod elementwise;
mod gather_scatter;
mod image;
mod linear;
mod list;
mod nn_output;
mod normalization;
mod pool;
mod quantization;
mod random;
mod recurrent;
mod reduction;
mod sampling;
mod shape_ops;
mod state;
mod tensor_ops;
pub(crate) mod util;

/// Op name -> kernel builder.
pub(crate) struct Registry {
    builders: HashMap<&'static str, BuildFn>,
}

impl Registry {
    /// Every op the portable backend implements.
    pub(crate) fn new() -> Self {
        let mut reg = Registry {
            builders: HashMap::new(),
        };
        activation::register(&mut reg);
        attention::register(&mut reg);
        control_flow::register(&mut reg);
        conv::register(&mut reg);
        elementwise::register(&mut reg);
        gather_scatter::register(&mut reg);
        image::register(&mut reg);
        linear::register(&mut reg);
        list::register(&mut reg);
        nn_output::register(&mut reg);
        normalization::register(&mut reg);
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

    /// Registers `op`.
    pub(crate) fn insert(&mut self, op: &'static str, build: BuildFn) {
        self.builders.insert(op, build);
    }

    /// The builder of `op`.
    pub(crate) fn get(&self, op: &str) -> Option<BuildFn> {
        self.builders.get(op).copied()
    }

    /// Names of all registered ops, sorted.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.builders.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// Names of the ops the portable backend implements (besides `const` and the
/// constexpr ops, which are decoded at load).
pub fn supported_ops() -> Vec<&'static str> {
    Registry::new().names()
}

//! Op kernels, one file per family mirroring the MIL op documentation.
//! Each family registers its ops by name in [`Registry`], declaring there
//! what the planner must know about them (an op that touches states or
//! draws random numbers is never folded at load).

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

/// One registered op: its kernel builder and its properties.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpEntry {
    /// Builds the op's kernel at load.
    pub(crate) build: BuildFn,
    /// True when the op may run at load once all its inputs are constants:
    /// its result depends on its inputs alone and it has no effect.
    pub(crate) foldable: bool,
}

impl OpEntry {
    /// Declares that the op reads or writes states (never folded).
    pub(crate) fn stateful(&mut self) -> &mut Self {
        self.foldable = false;
        self
    }

    /// Declares that the op draws random numbers (never folded: each call
    /// draws anew).
    pub(crate) fn random(&mut self) -> &mut Self {
        self.foldable = false;
        self
    }
}

/// Op name -> kernel builder and properties.
pub(crate) struct Registry {
    entries: HashMap<&'static str, OpEntry>,
}

impl Registry {
    /// Every op the portable backend implements.
    pub(crate) fn new() -> Self {
        let mut reg = Registry {
            entries: HashMap::new(),
        };
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

    /// Registers `op` as a pure op (foldable); the returned entry declares
    /// other properties (`reg.insert(..).stateful()`).
    pub(crate) fn insert(&mut self, op: &'static str, build: BuildFn) -> &mut OpEntry {
        let entry = OpEntry {
            build,
            foldable: true,
        };
        let slot = self.entries.entry(op).or_insert(entry);
        *slot = entry;
        slot
    }

    /// The entry of `op`.
    pub(crate) fn get(&self, op: &str) -> Option<&OpEntry> {
        self.entries.get(op)
    }

    /// Names of all registered ops, sorted.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.entries.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// Names of the ops the portable backend implements (besides `const` and the
/// constexpr ops, which are decoded at load).
pub fn supported_ops() -> Vec<&'static str> {
    Registry::new().names()
}

//! The op registry: op name -> kernel builder and the op's properties.

use std::collections::HashMap;

use crate::portable::kernel::BuildFn;

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
#[derive(Default)]
pub(crate) struct Registry {
    entries: HashMap<&'static str, OpEntry>,
}

impl Registry {
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

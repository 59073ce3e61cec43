//! The prepared form of a block: [`Plan`] and its [`Step`]s, and the
//! load-time context ([`BuildCtx`]) they are built with.

use candle_core::Device;

use super::cache::ConstCache;
use crate::options::ComputePrecision;
use crate::portable::kernel::{Kernel, Source};
use crate::portable::ops::Registry;

/// One op of a plan: its kernel, where its inputs come from, the slots it
/// fills, and the slots that die after it.
pub(super) struct Step {
    pub(super) kernel: Box<dyn Kernel>,
    pub(super) sources: Vec<Source>,
    pub(super) outputs: Vec<usize>,
    pub(super) free_after: Vec<usize>,
    pub(super) op_type: String,
    pub(super) label: String,
}

/// A prepared block, ready to run.
pub(crate) struct Plan {
    pub(super) function: String,
    pub(super) steps: Vec<Step>,
    pub(super) n_slots: usize,
    /// Block (or function) inputs bound at run time, in order: name and slot.
    pub(crate) inputs: Vec<(String, usize)>,
    /// What the block returns.
    pub(super) outputs: Vec<Source>,
    /// Values of the enclosing block this nested block reads: outer source, local slot.
    pub(super) captures: Vec<(Source, usize)>,
}

/// Shared load-time context.
pub(crate) struct BuildCtx<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) device: &'a Device,
    pub(crate) precision: ComputePrecision,
    pub(crate) function: &'a str,
    pub(crate) consts: &'a ConstCache,
}

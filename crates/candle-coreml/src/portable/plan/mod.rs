//! Load-time preparation of a MIL block into a [`Plan`], and running it.
//!
//! - [`build`]: resolves every name to a slot or a constant and builds each
//!   op's kernel once; unknown ops (constexpr ones included) are collected
//!   and reported together.
//! - [`fold`]: constexpr decoding and folding of ops whose inputs are all
//!   constants (unless the op is registered as not foldable).
//! - [`cache`]: device constants shared across functions, by [`CacheKey`].
//! - [`liveness`]: after which step each slot is last used, so that
//!   intermediates are dropped as early as possible.
//! - [`run`]: the run loop; [`env`] the slots it fills.
//!
//! The kernel contract (`kernel.rs`) knows a nested block only as a
//! [`crate::portable::kernel::BlockPlan`], so this module depends on
//! `kernel.rs` and never the other way round.

mod build;
pub(crate) mod cache;
pub(crate) mod env;
mod fold;
mod liveness;
mod run;
#[cfg(test)]
mod tests;

use candle_core::Device;

use super::kernel::{Kernel, Source};
use super::ops::Registry;
use crate::error::Result;
use crate::mil::Function;
use crate::options::ComputePrecision;
pub(crate) use cache::ConstCache;

/// One op of a plan: its kernel, where its inputs come from, the slots it
/// fills, and the slots that die after it.
struct Step {
    kernel: Box<dyn Kernel>,
    sources: Vec<Source>,
    outputs: Vec<usize>,
    free_after: Vec<usize>,
    op_type: String,
    label: String,
}

/// A prepared block, ready to run.
pub(crate) struct Plan {
    function: String,
    steps: Vec<Step>,
    n_slots: usize,
    /// Block (or function) inputs bound at run time, in order: name and slot.
    pub(crate) inputs: Vec<(String, usize)>,
    /// What the block returns.
    outputs: Vec<Source>,
    /// Values of the enclosing block this nested block reads: outer source, local slot.
    captures: Vec<(Source, usize)>,
}

/// Shared load-time context.
pub(crate) struct BuildCtx<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) device: &'a Device,
    pub(crate) precision: ComputePrecision,
    pub(crate) function: &'a str,
    pub(crate) consts: &'a ConstCache,
}

/// Prepares function `f` of a program.
pub(crate) fn build_function(ctx: &BuildCtx<'_>, f: &Function) -> Result<Plan> {
    build::build_function(ctx, f)
}

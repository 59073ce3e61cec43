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
mod steps;
#[cfg(test)]
mod tests;

pub(crate) use build::build_function;
#[cfg(test)]
pub(crate) use build::rewritten_ops;
pub(crate) use cache::ConstCache;
pub(crate) use steps::{BuildCtx, Plan};

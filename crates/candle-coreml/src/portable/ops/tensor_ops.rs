//! `tensor_ops` ops.

use super::Registry;

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    let _ = reg;
}

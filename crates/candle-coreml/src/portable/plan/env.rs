//! The values of one running block, by slot.

use candle_core::Tensor;

use crate::error::{Error, Result};

/// Values of one running block, by slot.
#[derive(Debug, Default)]
pub(crate) struct Env {
    slots: Vec<Option<Tensor>>,
}

impl Env {
    /// `n` empty slots.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            slots: vec![None; n],
        }
    }

    /// The tensor in slot `s`.
    pub(crate) fn get(&self, s: usize) -> Result<&Tensor> {
        self.slots
            .get(s)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::msg(format!("internal: slot {s} read before it was written")))
    }

    /// Puts `t` in slot `s`.
    pub(crate) fn set(&mut self, s: usize, t: Tensor) {
        if let Some(slot) = self.slots.get_mut(s) {
            *slot = Some(t);
        }
    }

    /// Drops the value of slot `s`.
    pub(crate) fn free(&mut self, s: usize) {
        if let Some(slot) = self.slots.get_mut(s) {
            *slot = None;
        }
    }
}

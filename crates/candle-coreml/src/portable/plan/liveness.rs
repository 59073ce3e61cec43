//! Slot liveness: after which step each value can be dropped.

use std::collections::HashSet;

use super::steps::Step;
use crate::portable::kernel::Source;

/// Records, for each step, the slots whose last reader it is.
pub(super) fn plan_frees(steps: &mut [Step], outputs: &[Source], n_slots: usize) {
    let mut last_use: Vec<Option<usize>> = vec![None; n_slots];
    for (i, step) in steps.iter().enumerate() {
        for s in &step.sources {
            if let Source::Slot(slot) = s {
                if let Some(l) = last_use.get_mut(*slot) {
                    *l = Some(i);
                }
            }
        }
    }
    for s in outputs {
        if let Source::Slot(slot) = s {
            if let Some(l) = last_use.get_mut(*slot) {
                *l = None;
            }
        }
    }
    let kept: HashSet<usize> = outputs
        .iter()
        .filter_map(|s| match s {
            Source::Slot(x) => Some(*x),
            _ => None,
        })
        .collect();
    for (slot, l) in last_use.iter().enumerate() {
        if let Some(i) = l {
            if !kept.contains(&slot) {
                steps[*i].free_after.push(slot);
            }
        }
    }
    // Outputs of a step nobody reads are dropped right away.
    for step in steps.iter_mut() {
        let unused: Vec<usize> = step
            .outputs
            .iter()
            .copied()
            .filter(|o| last_use.get(*o).copied().flatten().is_none() && !kept.contains(o))
            .collect();
        step.free_after.extend(unused);
    }
}

//! Running a [`Plan`].

use candle_core::Tensor;

use super::env::Env;
use super::steps::{Plan, Step};
use crate::error::{Error, Result};
use crate::portable::kernel::{Args, BlockPlan, Source};
use crate::portable::state::StateStore;

impl Plan {
    /// Runs the plan with `inputs` bound to its inputs in order.
    pub(crate) fn run(&self, inputs: Vec<Tensor>, states: &mut StateStore) -> Result<Vec<Tensor>> {
        let mut env = Env::new(self.n_slots);
        for ((_, slot), t) in self.inputs.iter().zip(inputs) {
            env.set(*slot, t);
        }
        self.execute(env, states)
    }

    /// Runs a nested block inside `outer`, reading its captured values from there.
    fn run_nested_block(
        &self,
        outer: &Env,
        inputs: Vec<Tensor>,
        states: &mut StateStore,
    ) -> Result<Vec<Tensor>> {
        let mut env = Env::new(self.n_slots);
        for ((_, slot), t) in self.inputs.iter().zip(inputs) {
            env.set(*slot, t);
        }
        for (source, local) in &self.captures {
            let t = match source {
                Source::Slot(s) => outer.get(*s)?.clone(),
                Source::Const(t) => t.clone(),
                Source::State(n) => {
                    return Err(Error::InvalidProgram {
                        function: self.function.clone(),
                        message: format!("state {n:?} captured as a value"),
                    })
                }
            };
            env.set(*local, t);
        }
        self.execute(env, states)
    }

    fn execute(&self, mut env: Env, states: &mut StateStore) -> Result<Vec<Tensor>> {
        let mut profile = crate::portable::profile::enabled().then(Vec::new);
        for step in &self.steps {
            let started = profile.as_ref().map(|_| std::time::Instant::now());
            let mut args = Args {
                sources: &step.sources,
                env: &env,
                states: &mut *states,
            };
            let outs = step
                .kernel
                .run(&mut args)
                .map_err(|e| self.op_error(step, e))?;
            if outs.len() < step.outputs.len() {
                return Err(self.op_error(
                    step,
                    Error::msg(format!(
                        "gave {} outputs, op declares {}",
                        outs.len(),
                        step.outputs.len()
                    )),
                ));
            }
            for (slot, t) in step.outputs.iter().zip(outs) {
                env.set(*slot, t);
            }
            for &slot in &step.free_after {
                env.free(slot);
            }
            if let (Some(p), Some(t0)) = (profile.as_mut(), started) {
                p.push((step.op_type.as_str(), step.label.as_str(), t0.elapsed()));
            }
        }
        if let Some(p) = profile {
            crate::portable::profile::report(&self.function, &p);
        }
        self.outputs
            .iter()
            .map(|s| match s {
                Source::Slot(x) => env.get(*x).cloned(),
                Source::Const(t) => Ok(t.clone()),
                Source::State(n) => Err(Error::InvalidProgram {
                    function: self.function.clone(),
                    message: format!("returns state {n:?} as a value"),
                }),
            })
            .collect()
    }

    fn op_error(&self, step: &Step, e: Error) -> Error {
        match e {
            already @ Error::OpFailed { .. } => already,
            e => Error::OpFailed {
                function: self.function.clone(),
                op: step.label.clone(),
                op_type: step.op_type.clone(),
                source: Box::new(e),
            },
        }
    }
}

impl BlockPlan for Plan {
    fn run_nested(
        &self,
        outer: &Env,
        inputs: Vec<Tensor>,
        states: &mut StateStore,
    ) -> Result<Vec<Tensor>> {
        self.run_nested_block(outer, inputs, states)
    }
}

//! Work done once at load: decoding constexpr weights and folding ops whose
//! inputs are all constants, both cached across functions by [`CacheKey`].

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;

use super::build::{BlockBuilder, Entry};
use super::cache::{CacheKey, Literal, Param};
use super::env::Env;
use crate::error::Result;
use crate::mil::{Binding, Operation, Value};
use crate::portable::kernel::{Args, Kernel, Source};
use crate::portable::state::StateStore;
use crate::portable::values::tensor_to_value;

/// Constants up to this many elements are also kept as MIL values after folding,
/// so that later ops can read them as parameters (shapes, axes).
const FOLD_KEEP_VALUE: usize = 1 << 16;

impl BlockBuilder<'_> {
    /// The cached outputs of the op keyed `key`, when every one is cached.
    fn cached_outputs(&self, key: Option<&CacheKey>, n: usize) -> Option<Vec<Tensor>> {
        let key = key?;
        (0..n)
            .map(|i| self.ctx.consts.get(&key.output(i)))
            .collect()
    }

    /// Runs `op` (all inputs constant) now and defines its outputs as constants.
    pub(super) fn fold(
        &mut self,
        op: &Operation,
        kernel: &dyn Kernel,
        sources: &[Source],
    ) -> Result<()> {
        let key = self.derived_key(op);
        let outs = match self.cached_outputs(key.as_ref(), op.outputs.len()) {
            Some(outs) => outs,
            None => {
                let env = Env::default();
                let mut states = StateStore::default();
                let mut args = Args {
                    sources,
                    env: &env,
                    states: &mut states,
                };
                let outs = kernel.run(&mut args).map_err(|e| {
                    self.invalid(op, format!("while folding constants: {}", e.report()))
                })?;
                if outs.len() != op.outputs.len() {
                    return Err(self.invalid(
                        op,
                        format!(
                            "kernel gave {} outputs, op declares {}",
                            outs.len(),
                            op.outputs.len()
                        ),
                    ));
                }
                if let Some(k) = &key {
                    for (i, t) in outs.iter().enumerate() {
                        self.ctx.consts.insert(&k.output(i), t);
                    }
                }
                outs
            }
        };
        for (i, (t, out)) in outs.into_iter().zip(&op.outputs).enumerate() {
            let constant = match out.ty.as_tensor() {
                Some(tt) if t.elem_count() <= FOLD_KEEP_VALUE => {
                    tensor_to_value(&t, tt.dtype).ok().map(Arc::new)
                }
                _ => None,
            };
            let entry = Entry {
                source: Source::Const(t),
                ty: Some(out.ty.clone()),
                constant,
                key: key.as_ref().map(|k| Arc::new(k.output(i))),
            };
            self.define(&out.name, entry);
        }
        Ok(())
    }

    /// Decodes a constexpr op (a compressed weight) into dense constants.
    pub(super) fn build_constexpr(&mut self, op: &Operation) -> Result<()> {
        let key = self.derived_key(op);
        if let Some(hits) = self.cached_outputs(key.as_ref(), op.outputs.len()) {
            for (i, (t, out)) in hits.into_iter().zip(&op.outputs).enumerate() {
                let entry = Entry {
                    source: Source::Const(t),
                    ty: Some(out.ty.clone()),
                    constant: None,
                    key: key.as_ref().map(|k| Arc::new(k.output(i))),
                };
                self.define(&out.name, entry);
            }
            return Ok(());
        }
        // Parameters bound by name (iOS18 form) resolve to the constants in scope.
        let mut known: HashMap<&str, Value> = HashMap::new();
        for arg in op.inputs.values() {
            for b in &arg.bindings {
                if let Binding::Name(n) = b {
                    let c = self
                        .scope
                        .get(n)
                        .and_then(|e| e.constant.as_ref())
                        .ok_or_else(|| {
                            self.invalid(op, format!("parameter {n:?} is not a constant"))
                        })?;
                    known.insert(n, Value::Tensor((**c).clone()));
                }
            }
        }
        let lookup = |name: &str| known.get(name);
        let dense =
            crate::mil::constexpr::decompress_all(op, &lookup).map_err(|e| self.invalid(op, e))?;
        if dense.len() != op.outputs.len() {
            return Err(self.invalid(
                op,
                format!(
                    "decoded {} values for {} outputs",
                    dense.len(),
                    op.outputs.len()
                ),
            ));
        }
        for (i, (tv, out)) in dense.into_iter().zip(&op.outputs).enumerate() {
            let k = key.as_ref().map(|k| Arc::new(k.output(i)));
            let e = self.constant_entry_keyed(op, tv, Some(out.ty.clone()), k)?;
            self.define(&out.name, e);
        }
        Ok(())
    }

    /// The key of a constexpr or folded op's output 0: its type and the
    /// identity of every parameter (cache keys, or small literals by value).
    /// `None` when a parameter has no identity (a large literal).
    fn derived_key(&self, op: &Operation) -> Option<CacheKey> {
        let literal = |v: &Value| -> Option<Param> {
            let t = v.as_tensor()?;
            match &t.blob {
                Some(b) => Some(Param::Keyed(Arc::new(CacheKey::Blob {
                    file: Arc::from(b.file.as_str()),
                    offset: b.offset,
                    dtype: t.dtype,
                    precision: self.ctx.precision,
                }))),
                None => Literal::of(t).map(Param::Literal),
            }
        };
        let mut params: Vec<(Arc<str>, Param)> = Vec::new();
        for (name, arg) in &op.inputs {
            for b in &arg.bindings {
                let id = match b {
                    Binding::Name(n) => Param::Keyed(self.scope.get(n)?.key.clone()?),
                    Binding::Value(v) => literal(v)?,
                };
                params.push((Arc::from(name.as_str()), id));
            }
        }
        for (name, v) in &op.attributes {
            if name != "name" {
                params.push((Arc::from(name.as_str()), literal(v)?));
            }
        }
        Some(CacheKey::Derived {
            op_type: Arc::from(op.op_type.as_str()),
            precision: self.ctx.precision,
            params: params.into(),
            output: 0,
        })
    }
}

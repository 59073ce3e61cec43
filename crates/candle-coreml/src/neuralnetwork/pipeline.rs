//! The MIL program of any runnable model: an ML Program as read, a
//! NeuralNetwork translated, or a pipeline whose stages are merged into one
//! function that runs them in order.
//!
//! Merging renames every value of stage `i` to `stage{i}/<name>`, except its
//! inputs, which are bound to the pipeline input or earlier stage output of
//! the same feature name. Each pipeline output is the last value produced
//! under its feature name.

use std::collections::{BTreeMap, HashMap};

use super::to_function;
use crate::error::{Error, Result};
use crate::format::{ModelBody, ModelFile};
use crate::mil::{
    Argument, Binding, Block, DataType, Function, NamedValueType, Operation, Program, Value,
    ValueType,
};

/// The program the portable backend runs for `file`: its ML Program, its
/// NeuralNetwork translated to MIL, or its pipeline merged into one function.
pub fn program_of(file: &ModelFile) -> Result<Program> {
    program_at(file, 0)
}

fn program_at(file: &ModelFile, depth: usize) -> Result<Program> {
    if depth > crate::mil::MAX_DEPTH {
        return Err(Error::format(&file.path, "pipelines nested too deeply"));
    }
    let function = match &file.body {
        ModelBody::Program(p) => return Ok(p.clone()),
        ModelBody::NeuralNetwork {
            network: Some(n), ..
        } => {
            let fd = file
                .description
                .default()
                .ok_or_else(|| Error::format(&file.path, "the model describes no function"))?;
            to_function(n, fd, &file.path)?
        }
        ModelBody::NeuralNetwork { network: None, .. } => {
            return Err(Error::Unsupported {
                what: format!(
                    "a compiled NeuralNetwork ({}); open its .mlmodel or .mlpackage instead",
                    file.path.display()
                ),
                backend: "portable",
            })
        }
        ModelBody::Pipeline(stages) => merge(file, stages, depth)?,
        ModelBody::Other(kind) => {
            return Err(Error::Unsupported {
                what: format!("a {kind} model ({})", file.path.display()),
                backend: "portable",
            })
        }
    };
    Ok(Program {
        version: "1".into(),
        functions: vec![function],
        attributes: BTreeMap::new(),
    })
}

/// The default function of a stage's program.
fn stage_function(stage: &ModelFile, depth: usize) -> Result<Function> {
    let mut p = program_at(stage, depth + 1)?;
    let name = &stage.description.default_function;
    let i = p
        .functions
        .iter()
        .position(|f| &f.name == name)
        .or(if p.functions.len() == 1 {
            Some(0)
        } else {
            None
        })
        .ok_or_else(|| Error::format(&stage.path, format!("no function {name:?}")))?;
    Ok(p.functions.swap_remove(i))
}

/// Renames every value name of a block with `r`.
fn rename_block(b: &mut Block, r: &dyn Fn(&str) -> String) {
    for i in &mut b.inputs {
        i.name = r(&i.name);
    }
    for o in &mut b.outputs {
        *o = r(o);
    }
    for op in &mut b.operations {
        rename_op(op, r);
    }
}

fn rename_op(op: &mut Operation, r: &dyn Fn(&str) -> String) {
    for arg in op.inputs.values_mut() {
        for b in &mut arg.bindings {
            if let Binding::Name(n) = b {
                *n = r(n);
            }
        }
    }
    for o in &mut op.outputs {
        o.name = r(&o.name);
    }
    for b in &mut op.blocks {
        rename_block(b, r);
    }
}

/// What the stages merged so far hold.
#[derive(Default)]
struct Merged {
    /// Feature name -> the value that currently holds it.
    env: HashMap<String, String>,
    /// Declared types of the pipeline inputs, from the stages that read them.
    input_types: HashMap<String, ValueType>,
    ops: Vec<Operation>,
}

impl Merged {
    /// Appends stage `i` (its function `f`), its inputs bound to the values
    /// of their feature names.
    fn add(&mut self, file: &ModelFile, i: usize, f: Function) -> Result<()> {
        let mut bound = HashMap::new();
        for input in &f.inputs {
            if matches!(input.ty, ValueType::State(_)) {
                return Err(Error::Unsupported {
                    what: format!("a pipeline stage with states (stage {i})"),
                    backend: "portable",
                });
            }
            let v = self.env.get(&input.name).ok_or_else(|| {
                Error::format(
                    &file.path,
                    format!(
                        "pipeline stage {i} takes {:?}, which neither the pipeline inputs nor an earlier stage provide",
                        input.name
                    ),
                )
            })?;
            if v == &input.name {
                self.input_types
                    .entry(v.clone())
                    .or_insert_with(|| input.ty.clone());
            }
            bound.insert(input.name.clone(), v.clone());
        }
        let prefix = format!("stage{i}/");
        let r = |n: &str| {
            bound
                .get(n)
                .cloned()
                .unwrap_or_else(|| format!("{prefix}{n}"))
        };
        let features = f.block.outputs.clone();
        let mut block = f.block;
        rename_block(&mut block, &r);
        for (name, value) in features.into_iter().zip(block.outputs.iter().cloned()) {
            self.env.insert(name, value);
        }
        self.ops.extend(block.operations);
        Ok(())
    }
}

fn merge(file: &ModelFile, stages: &[ModelFile], depth: usize) -> Result<Function> {
    let fd = file
        .description
        .default()
        .ok_or_else(|| Error::format(&file.path, "the pipeline describes no function"))?;
    let mut m = Merged {
        env: fd
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.name.clone()))
            .collect(),
        ..Default::default()
    };
    for (i, stage) in stages.iter().enumerate() {
        m.add(file, i, stage_function(stage, depth)?)?;
    }
    let inputs = fd
        .inputs
        .iter()
        .map(|i| NamedValueType {
            name: i.name.clone(),
            ty: m.input_types.remove(&i.name).unwrap_or_else(|| {
                ValueType::Tensor(crate::mil::TensorType {
                    dtype: i.ty.dtype().unwrap_or(DataType::Fp32),
                    shape: None,
                })
            }),
        })
        .collect();
    let mut outputs = Vec::with_capacity(fd.outputs.len());
    for o in &fd.outputs {
        let v = m.env.get(&o.name).ok_or_else(|| {
            Error::format(
                &file.path,
                format!("no pipeline stage produces output {:?}", o.name),
            )
        })?;
        if v != &o.name {
            let op = identity(v, &o.name, &m.ops);
            m.ops.push(op);
        }
        outputs.push(o.name.clone());
    }
    Ok(Function {
        name: fd.name.clone(),
        inputs,
        opset: "CoreML7".into(),
        block: Block {
            inputs: Vec::new(),
            outputs,
            operations: m.ops,
            attributes: BTreeMap::new(),
        },
        attributes: BTreeMap::new(),
    })
}

/// `identity(x = from)` named `to`, typed like the op output it copies.
fn identity(from: &str, to: &str, ops: &[Operation]) -> Operation {
    let ty = ops
        .iter()
        .flat_map(|op| op.outputs.iter())
        .find(|o| o.name == from)
        .map(|o| o.ty.clone())
        .unwrap_or(ValueType::Tensor(crate::mil::TensorType {
            dtype: DataType::Fp32,
            shape: None,
        }));
    Operation {
        op_type: "identity".into(),
        inputs: BTreeMap::from([(
            "x".to_string(),
            Argument::single(Binding::Name(from.to_string())),
        )]),
        outputs: vec![NamedValueType {
            name: to.to_string(),
            ty,
        }],
        blocks: Vec::new(),
        attributes: BTreeMap::from([("name".to_string(), Value::string(to))]),
        location: None,
    }
}

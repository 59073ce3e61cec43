//! `candle-coreml run`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_coreml::Model;

use crate::BackendArg;

/// Arguments of `run`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The model: .mlpackage, .mlmodel or .mlmodelc.
    model: PathBuf,
    /// Function of a multifunction model (default: the model's default).
    #[arg(long)]
    function: Option<String>,
    /// Backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Device of the portable backend: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// An input as NAME=PATH.npy (repeat for each input).
    #[arg(long = "input", value_name = "NAME=PATH")]
    inputs: Vec<String>,
    /// An .npz archive of inputs: each array named NAME or `input:NAME`
    /// feeds the input NAME; other arrays are ignored.
    #[arg(long = "inputs-npz", value_name = "PATH")]
    inputs_npz: Option<PathBuf>,
    /// Folder to write each output to as OUTPUT.npy.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Folder of states: STATE.npy is loaded when present (zeros otherwise)
    /// and the updated states are written back after the run.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub(crate) fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::new_cuda(0)?),
        other => match other.strip_prefix("cuda:") {
            Some(n) => Ok(Device::new_cuda(n.parse().context("cuda device number")?)?),
            None => bail!("unknown device {other:?}: use cpu, cuda or cuda:N"),
        },
    }
}

fn read_inputs(specs: &[String]) -> Result<Vec<(String, Tensor)>> {
    specs
        .iter()
        .map(|s| {
            let (name, path) = s
                .split_once('=')
                .with_context(|| format!("--input {s:?}: expected NAME=PATH.npy"))?;
            let t = Tensor::read_npy(path)
                .with_context(|| format!("--input {name}: reading {path}"))?;
            Ok((name.to_string(), t))
        })
        .collect()
}

pub(crate) fn read_npz_inputs(path: &Path, model: &Model) -> Result<Vec<(String, Tensor)>> {
    let arrays = Tensor::read_npz(path)
        .with_context(|| format!("--inputs-npz: reading {}", path.display()))?;
    let wanted: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
    Ok(arrays
        .into_iter()
        .filter_map(|(key, t)| {
            let name = key.strip_prefix("input:").unwrap_or(&key).to_string();
            wanted.contains(&name.as_str()).then_some((name, t))
        })
        .collect())
}

pub(crate) fn main(args: Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    let mut builder = Model::builder().backend(args.backend.into()).device(device);
    if let Some(f) = &args.function {
        builder = builder.function(f);
    }
    let t0 = Instant::now();
    let model = builder.load(&args.model)?;
    let load = t0.elapsed();
    let mut inputs = match &args.inputs_npz {
        Some(p) => read_npz_inputs(p, &model)?,
        None => Vec::new(),
    };
    inputs.extend(read_inputs(&args.inputs)?);
    if inputs.is_empty() && !model.inputs().is_empty() {
        let names: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
        bail!("no inputs given; the model takes {names:?}: pass --input NAME=PATH.npy or --inputs-npz");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let t1 = Instant::now();
    let outputs = if model.states().is_empty() {
        model.predict(inputs)?
    } else {
        let mut state = model.make_state()?;
        if let Some(dir) = &args.state_dir {
            load_states(&mut state, dir)?;
        }
        let out = model.predict_with_state(inputs, &mut state)?;
        if let Some(dir) = &args.state_dir {
            save_states(&state, dir)?;
        }
        out
    };
    let predict = t1.elapsed();
    for (name, t) in outputs.iter() {
        let path = args.out.join(format!("{name}.npy"));
        t.write_npy(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "{name}: {:?} {:?} -> {}",
            t.dtype(),
            t.dims(),
            path.display()
        );
        if let Some(label) = string_label(&model, name, t) {
            eprintln!("{name} = {label:?}");
        }
    }
    eprintln!(
        "{} backend, function {}: load {:.1} ms, predict {:.1} ms",
        model.backend().name(),
        model.function_name(),
        load.as_secs_f64() * 1e3,
        predict.as_secs_f64() * 1e3
    );
    Ok(())
}

/// A classifier's string label: its label output holds an index into the labels.
fn string_label(model: &Model, name: &str, t: &Tensor) -> Option<String> {
    use candle_coreml::description::FeatureType;
    use candle_coreml::neuralnetwork::ClassLabels;
    let out = model.outputs().iter().find(|o| o.name == name)?;
    if !matches!(out.ty, FeatureType::String) {
        return None;
    }
    let Some(ClassLabels::Strings(labels)) = model.file()?.class_labels() else {
        return None;
    };
    let i = t
        .flatten_all()
        .ok()?
        .to_vec1::<i64>()
        .ok()?
        .first()
        .copied()?;
    labels.get(usize::try_from(i).ok()?).cloned()
}

fn load_states(state: &mut candle_coreml::State, dir: &Path) -> Result<()> {
    for name in state.names() {
        let path = dir.join(format!("{name}.npy"));
        if path.is_file() {
            let t = Tensor::read_npy(&path)
                .with_context(|| format!("reading state {}", path.display()))?;
            state
                .write(&name, &t)
                .with_context(|| format!("state {name} from {}", path.display()))?;
        }
    }
    Ok(())
}

fn save_states(state: &candle_coreml::State, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in state.names() {
        let path = dir.join(format!("{name}.npy"));
        state
            .read(&name)?
            .write_npy(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

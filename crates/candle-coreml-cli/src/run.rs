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
    /// Folder to write each output to as OUTPUT.npy.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Folder of states: STATE.npy is loaded when present (zeros otherwise)
    /// and the updated states are written back after the run.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn parse_device(s: &str) -> Result<Device> {
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

pub(crate) fn main(args: Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    let mut builder = Model::builder().backend(args.backend.into()).device(device);
    if let Some(f) = &args.function {
        builder = builder.function(f);
    }
    let t0 = Instant::now();
    let model = builder.load(&args.model)?;
    let load = t0.elapsed();
    let inputs = read_inputs(&args.inputs)?;
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

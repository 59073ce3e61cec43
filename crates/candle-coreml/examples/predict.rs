//! Load a Core ML model, describe it, and predict.
//!
//! ```sh
//! cargo run -p candle-coreml --example predict
//! cargo run -p candle-coreml --example predict -- path/to/model.mlpackage
//! ```
//!
//! Without an argument it runs the MLP fixture the repository ships, on the
//! inputs stored beside it, and compares with the outputs torch computed.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_coreml::{Backend, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| fixture.join("mlp_fp32.mlpackage"));

    let model = Model::builder().backend(Backend::Auto).load(&path)?;
    println!("{} on the {} backend", path.display(), model.backend());
    for input in model.inputs() {
        println!(
            "  input  {}: {:?} {:?}",
            input.name,
            input.ty.dtype(),
            input.ty.shape()
        );
    }
    for output in model.outputs() {
        println!(
            "  output {}: {:?} {:?}",
            output.name,
            output.ty.dtype(),
            output.ty.shape()
        );
    }

    // The shipped inputs and torch's outputs, as `input:NAME` / `output:NAME`.
    let npz = path.with_extension("npz");
    let inputs: Vec<(String, Tensor)> = if npz.is_file() {
        Tensor::read_npz(&npz)?
            .into_iter()
            .filter_map(|(k, t)| Some((k.strip_prefix("input:")?.to_string(), t)))
            .collect()
    } else {
        // Zeros of every fixed-shape input of any other model.
        model
            .inputs()
            .iter()
            .filter_map(|i| {
                let t = Tensor::zeros(i.ty.shape()?, DType::F32, &Device::Cpu).ok()?;
                Some((i.name.clone(), t))
            })
            .collect()
    };

    let outputs = model.predict(inputs.iter().map(|(k, t)| (k.as_str(), t)))?;
    for (name, t) in outputs.iter() {
        let head = t.flatten_all()?.narrow(0, 0, t.elem_count().min(8))?;
        println!(
            "{name} {:?}: {:?}",
            t.dims(),
            head.to_dtype(DType::F32)?.to_vec1::<f32>()?
        );
    }
    if npz.is_file() {
        for (k, want) in Tensor::read_npz(&npz)? {
            let Some(name) = k.strip_prefix("output:") else {
                continue;
            };
            let got = outputs
                .get(name)
                .ok_or("missing output")?
                .to_dtype(want.dtype())?;
            let diff = (got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?;
            println!(
                "{name}: max |ours - torch| = {:.2e}",
                diff.to_scalar::<f64>()?
            );
        }
    }
    Ok(())
}

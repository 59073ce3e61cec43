//! Checks a caller's inputs against a function's description, for every
//! backend: names, shapes (fixed, ranges, enumerated), dtypes.

use std::borrow::Borrow;
use std::collections::HashMap;

use candle_core::Tensor;

use super::dtype::{convert_dtype, io_dtype};
use crate::description::{FeatureDescription, FeatureType, FunctionDescription};
use crate::error::{Error, Result};

/// The inputs of one prediction, by name, each checked against `f` and
/// converted to the dtype the model exchanges it in.
pub(crate) fn check_inputs<I, K, V>(
    f: &FunctionDescription,
    inputs: I,
) -> Result<HashMap<String, Tensor>>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Borrow<Tensor>,
{
    let mut out = HashMap::new();
    for (k, v) in inputs {
        let name = k.as_ref();
        let feature =
            f.inputs
                .iter()
                .find(|i| i.name == name)
                .ok_or_else(|| Error::UnexpectedInput {
                    function: f.name.clone(),
                    input: name.to_string(),
                    expected: f.inputs.iter().map(|i| i.name.clone()).collect(),
                })?;
        out.insert(name.to_string(), convert_input(feature, v.borrow())?);
    }
    for i in &f.inputs {
        if !i.optional && !out.contains_key(&i.name) {
            return Err(Error::MissingInput {
                function: f.name.clone(),
                input: i.name.clone(),
            });
        }
    }
    Ok(out)
}

/// Checks an input tensor's shape against its feature and converts its dtype.
fn convert_input(feature: &FeatureDescription, t: &Tensor) -> Result<Tensor> {
    let name = &feature.name;
    match &feature.ty {
        FeatureType::MultiArray(a) if !a.accepts(t.dims()) => {
            let expected = match &a.flexibility {
                Some(f) => format!(
                    "{:?} or within {}",
                    a.shape,
                    serde_json::to_string(f).unwrap_or_default()
                ),
                None => format!("{:?}", a.shape),
            };
            return Err(Error::ShapeMismatch {
                input: name.clone(),
                expected,
                got: t.dims().to_vec(),
            });
        }
        FeatureType::Image(_) => {
            if let Some(shape) = feature.ty.shape() {
                if t.rank() != shape.len() {
                    return Err(Error::ShapeMismatch {
                        input: name.clone(),
                        expected: format!("{shape:?} (image as N, C, H, W)"),
                        got: t.dims().to_vec(),
                    });
                }
            }
        }
        _ => {}
    }
    let Some(want) = feature.ty.dtype().and_then(io_dtype) else {
        return Ok(t.clone());
    };
    let want = match &feature.ty {
        // Images are accepted in any float dtype or u8, as pixel values.
        FeatureType::Image(_) if t.dtype().is_float() => t.dtype(),
        _ => want,
    };
    convert_dtype(name, t, want)
}

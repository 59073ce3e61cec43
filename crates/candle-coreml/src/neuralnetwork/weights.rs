//! Decoding `WeightParams`: fp32, fp16, and quantized (linear or look-up
//! table, 1 to 8 bits, and the int8 values of dynamically quantized layers)
//! weights, all into f32 at load.
//!
//! Quantized values are unsigned `numberOfBits`-bit integers packed
//! most-significant-bit first (as NeuralNetwork.proto's writers pack them).
//! Linear quantization gives `w = q * scale + bias` with one scale and bias,
//! or one per output channel.

use coreml_proto::proto as pb;

use pb::quantization_params::QuantizationType as Q;

/// Where the output channels lie in a weight tensor, for per-channel scales:
/// the tensor is `[outer, channels, inner]` in row-major order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channels {
    /// Product of the dimensions before the channel axis.
    pub(crate) outer: usize,
    /// Number of output channels.
    pub(crate) count: usize,
}

impl Channels {
    /// Channels on the first axis of a tensor.
    pub(crate) fn first(count: usize) -> Self {
        Self { outer: 1, count }
    }
}

/// Decodes `wp`, which must hold `n` values; `channels` places per-channel
/// quantization scales (first axis when `None`). Errors are plain messages.
pub(crate) fn decode(
    wp: &pb::WeightParams,
    n: usize,
    channels: Option<Channels>,
) -> Result<Vec<f32>, String> {
    if !wp.float_value.is_empty() {
        return check(wp.float_value.clone(), n);
    }
    if !wp.float16_value.is_empty() {
        if wp.float16_value.len() != 2 * n {
            return Err(format!(
                "holds {} bytes of fp16 values, expected {} values",
                wp.float16_value.len(),
                n
            ));
        }
        return Ok(wp
            .float16_value
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect());
    }
    let Some(q) = &wp.quantization else {
        if n == 0 {
            return Ok(Vec::new());
        }
        return Err(format!("holds no values, expected {n}"));
    };
    let (raw, signed) = match (wp.raw_value.is_empty(), wp.int8_raw_value.is_empty()) {
        (false, true) => (&wp.raw_value, false),
        (true, false) => (&wp.int8_raw_value, true),
        (false, false) => return Err("sets both rawValue and int8RawValue".into()),
        (true, true) => return Err(format!("holds no values, expected {n}")),
    };
    let bits = q.number_of_bits;
    if signed && bits != 8 {
        return Err(format!("int8RawValue with numberOfBits {bits}, expected 8"));
    }
    let codes = unpack(raw, bits, n)?;
    match &q.quantization_type {
        Some(Q::LinearQuantization(l)) => {
            let ch = channels.unwrap_or(Channels::first(n.max(1)));
            linear(&codes, signed, l, n, ch)
        }
        Some(Q::LookupTableQuantization(l)) => {
            if l.float_value.len() != 1usize << bits {
                return Err(format!(
                    "look-up table of {} values for {bits}-bit indices (expected {})",
                    l.float_value.len(),
                    1usize << bits
                ));
            }
            Ok(codes
                .iter()
                .map(|&c| l.float_value[usize::from(c)])
                .collect())
        }
        None => Err("quantized values without a quantization type".into()),
    }
}

/// The number of values `wp` stores, when it stores them unquantized or as
/// fp16 (quantized weights need the layer's own count).
pub(crate) fn stored_len(wp: &pb::WeightParams) -> Option<usize> {
    if !wp.float_value.is_empty() {
        Some(wp.float_value.len())
    } else if !wp.float16_value.is_empty() {
        Some(wp.float16_value.len() / 2)
    } else if wp.quantization.is_none() {
        Some(0)
    } else {
        None
    }
}

fn check(v: Vec<f32>, n: usize) -> Result<Vec<f32>, String> {
    if v.len() != n {
        return Err(format!("holds {} values, expected {n}", v.len()));
    }
    Ok(v)
}

/// `n` unsigned `bits`-bit codes read MSB-first from `raw`.
fn unpack(raw: &[u8], bits: u64, n: usize) -> Result<Vec<u8>, String> {
    if !(1..=8).contains(&bits) {
        return Err(format!("numberOfBits {bits} (1 to 8 are supported)"));
    }
    let bits = bits as usize;
    let need = n
        .checked_mul(bits)
        .map(|b| b.div_ceil(8))
        .ok_or("too many values")?;
    if raw.len() < need {
        return Err(format!(
            "{} bytes of {bits}-bit values, expected {need} for {n} values",
            raw.len()
        ));
    }
    if bits == 8 {
        return Ok(raw[..n].to_vec());
    }
    Ok((0..n)
        .map(|i| {
            let mut v = 0u8;
            for b in 0..bits {
                let pos = i * bits + b;
                let bit = (raw[pos / 8] >> (7 - pos % 8)) & 1;
                v = (v << 1) | bit;
            }
            v
        })
        .collect())
}

fn linear(
    codes: &[u8],
    signed: bool,
    l: &pb::LinearQuantizationParams,
    n: usize,
    ch: Channels,
) -> Result<Vec<f32>, String> {
    let per = |v: &[f32], what: &str| -> Result<(), String> {
        if v.len() == 1 || v.len() == ch.count {
            Ok(())
        } else {
            Err(format!(
                "{} linear quantization {what} values for {} channels",
                v.len(),
                ch.count
            ))
        }
    };
    per(&l.scale, "scale")?;
    if !l.bias.is_empty() {
        per(&l.bias, "bias")?;
    }
    if ch.outer == 0 || ch.count == 0 || !n.is_multiple_of(ch.outer * ch.count) {
        return Err(format!(
            "{n} values do not split into {} channels",
            ch.count
        ));
    }
    let inner = n / (ch.outer * ch.count);
    let pick = |v: &[f32], c: usize| -> f32 {
        match v {
            [] => 0.0,
            [one] => *one,
            many => many[c],
        }
    };
    Ok(codes
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let c = (i / inner) % ch.count;
            let q = if signed {
                f32::from(q as i8)
            } else {
                f32::from(q)
            };
            q * pick(&l.scale, c) + pick(&l.bias, c)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantized(raw: Vec<u8>, bits: u64, t: Q) -> pb::WeightParams {
        pb::WeightParams {
            raw_value: raw,
            quantization: Some(pb::QuantizationParams {
                number_of_bits: bits,
                quantization_type: Some(t),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn bits_are_read_msb_first() {
        // 3-bit codes 5, 2, 7 -> 101 010 11|1 0000000.
        assert_eq!(
            unpack(&[0b1010_1011, 0b1000_0000], 3, 3).unwrap(),
            vec![5, 2, 7]
        );
        assert!(unpack(&[0], 3, 3).is_err());
        assert!(unpack(&[0], 9, 1).is_err());
    }

    #[test]
    fn linear_per_channel_on_an_inner_axis() {
        let l = pb::LinearQuantizationParams {
            scale: vec![1.0, 10.0],
            bias: vec![0.5, -1.0],
        };
        let wp = quantized(vec![1, 2, 3, 4], 8, Q::LinearQuantization(l));
        // [outer=2, channels=2, inner=1]: channels alternate.
        let ch = Channels { outer: 2, count: 2 };
        assert_eq!(
            decode(&wp, 4, Some(ch)).unwrap(),
            vec![1.5, 19.0, 3.5, 39.0]
        );
        assert!(decode(&wp, 3, Some(ch)).is_err());
    }

    #[test]
    fn lut_and_fp16() {
        let l = pb::LookUpTableQuantizationParams {
            float_value: vec![-1.0, 0.0, 0.5, 2.0],
        };
        let wp = quantized(vec![0b1100_0110], 2, Q::LookupTableQuantization(l));
        assert_eq!(decode(&wp, 4, None).unwrap(), vec![2.0, -1.0, 0.0, 0.5]);
        let h = pb::WeightParams {
            float16_value: [1.5f32, -2.0]
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            ..Default::default()
        };
        assert_eq!(decode(&h, 2, None).unwrap(), vec![1.5, -2.0]);
        assert!(decode(&h, 3, None).is_err());
    }
}

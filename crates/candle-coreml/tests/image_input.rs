//! An image input (coremltools `ImageType`, RGB with scale and bias) fed as a
//! u8 tensor and, with the `image` feature, as an `image::DynamicImage`;
//! expected features from torch (tools/gen_format_fixtures.py).

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_coreml::{Backend, Model};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn load() -> (Model, Tensor, Tensor) {
    let m = Model::builder()
        .backend(Backend::Portable)
        .load(fixture("models/image_input.mlpackage"))
        .unwrap();
    let data: std::collections::HashMap<String, Tensor> =
        Tensor::read_npz(fixture("models/image_input.npz"))
            .unwrap()
            .into_iter()
            .collect();
    (
        m,
        data["input:image"].clone(),
        data["output:features"].clone(),
    )
}

fn max_err(a: &Tensor, b: &Tensor) -> f32 {
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn image_as_u8_tensor() {
    let (m, img, want) = load();
    assert_eq!(img.dtype(), DType::U8);
    let out = m.predict([("image", &img)]).unwrap();
    assert!(max_err(&out["features"], &want) < 1e-4);
    // Pixels as floats work too.
    let out = m
        .predict([("image", img.to_dtype(DType::F32).unwrap())])
        .unwrap();
    assert!(max_err(&out["features"], &want) < 1e-4);
}

#[cfg(feature = "image")]
#[test]
fn image_as_dynamic_image() {
    let (m, img, want) = load();
    // Build the same picture as an RGB image (planes -> interleaved pixels).
    let hwc: Vec<u8> = img
        .squeeze(0)
        .unwrap()
        .permute((1, 2, 0))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let rgb = image::RgbImage::from_raw(8, 8, hwc).unwrap();
    let dynamic = image::DynamicImage::ImageRgb8(rgb);
    let t = candle_coreml::image_input::image_tensor(
        &m.inputs()[0],
        &dynamic,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let out = m.predict([("image", &t)]).unwrap();
    assert!(max_err(&out["features"], &want) < 1e-4);
    let small = image::DynamicImage::new_rgb8(4, 4);
    assert!(candle_coreml::image_input::image_tensor(
        &m.inputs()[0],
        &small,
        &candle_core::Device::Cpu
    )
    .is_err());
}

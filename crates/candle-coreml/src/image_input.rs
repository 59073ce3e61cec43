//! Images as model inputs (feature `image`): an [`image::DynamicImage`]
//! becomes the `[1, C, H, W]` u8 tensor of an image feature, in the model's
//! colour layout. Scale and bias are part of the ML Program itself, so the
//! model applies them.

use candle_core::{Device, Tensor};
use image::DynamicImage;

use crate::description::{ColorSpace, FeatureDescription, FeatureType, ImageFeature};
use crate::error::{Error, Result};

/// True when `(w, h)` is a size the image feature accepts.
fn accepts(f: &ImageFeature, w: usize, h: usize) -> bool {
    (w == f.width && h == f.height)
        || f.enumerated_sizes.contains(&(w, h))
        || f.size_range
            .is_some_and(|(rw, rh)| rw.contains(w) && rh.contains(h))
}

/// The tensor for image input `feature`: RGB, BGR or grayscale planes as
/// `[1, C, H, W]` u8. The image must already have an accepted size.
pub fn image_tensor(
    feature: &FeatureDescription,
    img: &DynamicImage,
    device: &Device,
) -> Result<Tensor> {
    let FeatureType::Image(f) = &feature.ty else {
        return Err(Error::FeatureKind {
            input: feature.name.clone(),
            expected: "image",
            got: feature.ty.kind(),
        });
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    if !accepts(f, w, h) {
        return Err(Error::ShapeMismatch {
            input: feature.name.clone(),
            expected: format!("an image of {}x{} (width x height)", f.width, f.height),
            got: vec![h, w],
        });
    }
    let (channels, data): (usize, Vec<u8>) = match f.color_space {
        ColorSpace::Grayscale | ColorSpace::GrayscaleFloat16 => (1, img.to_luma8().into_raw()),
        ColorSpace::Rgb => (3, img.to_rgb8().into_raw()),
        ColorSpace::Bgr => {
            let mut v = img.to_rgb8().into_raw();
            for px in v.chunks_exact_mut(3) {
                px.swap(0, 2);
            }
            (3, v)
        }
    };
    // HWC interleaved -> CHW planes.
    let hwc = Tensor::from_vec(data, (h, w, channels), device)?;
    let t = hwc.permute((2, 0, 1))?.unsqueeze(0)?.contiguous()?;
    match f.color_space {
        ColorSpace::GrayscaleFloat16 => Ok(t.to_dtype(candle_core::DType::F16)?),
        _ => Ok(t),
    }
}

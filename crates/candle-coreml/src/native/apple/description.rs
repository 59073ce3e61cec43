//! Core ML's `MLModelDescription` as our [`ModelDescription`].
//!
//! Core ML describes the one function it loaded; the other functions of a
//! multifunction model, the declaration order of features (Core ML hands out
//! dictionaries) and per-feature short descriptions come from our own reader
//! of the file when it could read it.

use std::collections::BTreeMap;
use std::path::Path;

use objc2_core_ml::{
    MLFeatureDescription, MLFeatureType, MLImageConstraint, MLImageSizeConstraintType, MLModel,
    MLModelAuthorKey, MLModelCreatorDefinedKey, MLModelDescriptionKey, MLModelLicenseKey,
    MLModelVersionStringKey, MLMultiArrayConstraint, MLMultiArrayDataType,
    MLMultiArrayShapeConstraintType,
};
use objc2_foundation::{NSArray, NSDictionary, NSNumber, NSRange, NSString};

use crate::description::{
    ArrayFeature, ColorSpace, DimRange, FeatureDescription, FeatureType, FunctionDescription,
    ImageFeature, Metadata, ModelDescription, ShapeFlexibility,
};
use crate::error::{Error, Result};
use crate::mil::DataType;

/// The description of `model`, which runs `function`, merged with what our
/// own reader found in the file (`file`).
pub(super) fn describe(
    model: &MLModel,
    function: &str,
    path: &Path,
    file: Option<ModelDescription>,
) -> Result<ModelDescription> {
    // SAFETY: modelDescription is a read-only property of a loaded model.
    let d = unsafe { model.modelDescription() };
    // SAFETY: the three dictionaries are read-only properties of the description.
    let (inputs, outputs, states) = unsafe {
        (
            features(&d.inputDescriptionsByName(), path)?,
            features(&d.outputDescriptionsByName(), path)?,
            if super::support::has_macos15_apis() {
                features(&d.stateDescriptionsByName(), path)?
            } else {
                Vec::new()
            },
        )
    };
    // SAFETY: metadata is a read-only property of the description.
    let metadata_dict = unsafe { d.metadata() };
    let metadata = metadata(&metadata_dict);

    let from_file = file.as_ref().and_then(|f| f.function(function));
    let native = FunctionDescription {
        name: function.to_string(),
        inputs: in_file_order(inputs, from_file.map(|f| f.inputs.as_slice())),
        outputs: in_file_order(outputs, from_file.map(|f| f.outputs.as_slice())),
        states: in_file_order(states, from_file.map(|f| f.states.as_slice())),
    };
    Ok(match file {
        Some(mut f) => {
            match f.functions.iter_mut().find(|x| x.name == function) {
                Some(slot) => *slot = native,
                None => f.functions.push(native),
            }
            f.metadata = merge_metadata(metadata, f.metadata);
            f
        }
        None => ModelDescription {
            functions: vec![native],
            default_function: function.to_string(),
            metadata,
        },
    })
}

/// Features in the file's declaration order (then Core ML's others, by name),
/// with the file's short descriptions.
fn in_file_order(
    mut native: Vec<FeatureDescription>,
    file: Option<&[FeatureDescription]>,
) -> Vec<FeatureDescription> {
    native.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(file) = file else { return native };
    let mut out = Vec::with_capacity(native.len());
    for f in file {
        if let Some(i) = native.iter().position(|n| n.name == f.name) {
            let mut n = native.remove(i);
            n.short_description.clone_from(&f.short_description);
            out.push(n);
        }
    }
    out.extend(native);
    out
}

/// Every feature of a `name -> MLFeatureDescription` dictionary.
fn features(
    dict: &NSDictionary<NSString, MLFeatureDescription>,
    path: &Path,
) -> Result<Vec<FeatureDescription>> {
    let (_, values) = dict.to_vecs();
    values.iter().map(|f| feature(f, path)).collect()
}

fn feature(f: &MLFeatureDescription, path: &Path) -> Result<FeatureDescription> {
    // SAFETY: name, type and isOptional are read-only properties.
    let (name, ty, optional) = unsafe { (f.name().to_string(), f.r#type(), f.isOptional()) };
    let bad = |what: &str| {
        Error::format(
            path,
            format!("Core ML describes feature {name:?} with {what}"),
        )
    };
    let ty = match ty {
        MLFeatureType::MultiArray => {
            // SAFETY: read-only property; present for multi-array features.
            let c = unsafe { f.multiArrayConstraint() }
                .ok_or_else(|| bad("no multi-array constraint"))?;
            FeatureType::MultiArray(array_feature(&c))
        }
        MLFeatureType::State => {
            // SAFETY: read-only property; present for state features (macOS 15+,
            // where states exist at all).
            let c = unsafe { f.stateConstraint() }.ok_or_else(|| bad("no state constraint"))?;
            // SAFETY: read-only properties of the constraint.
            let (shape, dtype) = unsafe { (dims(&c.bufferShape()), c.dataType()) };
            FeatureType::State(ArrayFeature {
                dtype: data_type(dtype),
                shape,
                flexibility: None,
            })
        }
        MLFeatureType::Image => {
            // SAFETY: read-only property; present for image features.
            let c = unsafe { f.imageConstraint() }.ok_or_else(|| bad("no image constraint"))?;
            FeatureType::Image(image_feature(&c))
        }
        MLFeatureType::Int64 => FeatureType::Int64,
        MLFeatureType::Double => FeatureType::Double,
        MLFeatureType::String => FeatureType::String,
        MLFeatureType::Dictionary => FeatureType::Dictionary,
        MLFeatureType::Sequence => FeatureType::Sequence,
        other => return Err(bad(&format!("unknown feature type {}", other.0))),
    };
    Ok(FeatureDescription {
        name,
        ty,
        short_description: String::new(),
        optional,
    })
}

fn array_feature(c: &MLMultiArrayConstraint) -> ArrayFeature {
    // SAFETY: read-only properties of the constraint.
    let (shape, dtype, flex) = unsafe { (dims(&c.shape()), c.dataType(), c.shapeConstraint()) };
    // SAFETY: read-only properties of the shape constraint.
    let flexibility = unsafe {
        match flex.r#type() {
            MLMultiArrayShapeConstraintType::Enumerated => Some(ShapeFlexibility::Enumerated(
                flex.enumeratedShapes().iter().map(|s| dims(&s)).collect(),
            )),
            MLMultiArrayShapeConstraintType::Range => Some(ShapeFlexibility::Ranges(
                flex.sizeRangeForDimension()
                    .iter()
                    .map(|v| {
                        v.get_range().map_or(
                            DimRange {
                                lower: 0,
                                upper: None,
                            },
                            dim_range,
                        )
                    })
                    .collect(),
            )),
            _ => None,
        }
    };
    ArrayFeature {
        dtype: data_type(dtype),
        shape,
        flexibility,
    }
}

fn image_feature(c: &MLImageConstraint) -> ImageFeature {
    // SAFETY: read-only properties of the constraint.
    let (width, height, format, size) = unsafe {
        (
            c.pixelsWide(),
            c.pixelsHigh(),
            c.pixelFormatType(),
            c.sizeConstraint(),
        )
    };
    let color_space = match format {
        // kCVPixelFormatType_OneComponent8 'L008'
        0x4C30_3038 => ColorSpace::Grayscale,
        // kCVPixelFormatType_OneComponent16Half 'L00h'
        0x4C30_3068 => ColorSpace::GrayscaleFloat16,
        // kCVPixelFormatType_32BGRA 'BGRA'
        0x4247_5241 => ColorSpace::Bgr,
        // kCVPixelFormatType_32ARGB (32) and anything else with colour
        _ => ColorSpace::Rgb,
    };
    let mut image = ImageFeature {
        width: usize::try_from(width).unwrap_or(0),
        height: usize::try_from(height).unwrap_or(0),
        color_space,
        enumerated_sizes: Vec::new(),
        size_range: None,
    };
    // SAFETY: read-only properties of the size constraint.
    unsafe {
        match size.r#type() {
            MLImageSizeConstraintType::Enumerated => {
                image.enumerated_sizes = size
                    .enumeratedImageSizes()
                    .iter()
                    .map(|s| {
                        (
                            usize::try_from(s.pixelsWide()).unwrap_or(0),
                            usize::try_from(s.pixelsHigh()).unwrap_or(0),
                        )
                    })
                    .collect();
            }
            MLImageSizeConstraintType::Range => {
                image.size_range = Some((
                    dim_range(size.pixelsWideRange()),
                    dim_range(size.pixelsHighRange()),
                ));
            }
            _ => {}
        }
    }
    image
}

/// An `NSRange` of sizes. Apple's header only says that a size "must fall
/// within" the range; whether `location + length` is itself allowed is not
/// documented, so we take the wider reading (the input check stays
/// permissive and Core ML has the last word). A huge length means unbounded.
fn dim_range(r: NSRange) -> DimRange {
    let upper = r
        .location
        .checked_add(r.length)
        .filter(|&u| u < (isize::MAX as usize) / 2);
    DimRange {
        lower: r.location,
        upper: upper.map(|u| u.max(r.location)),
    }
}

/// Dimensions from an `NSArray<NSNumber>`.
pub(super) fn dims(a: &NSArray<NSNumber>) -> Vec<usize> {
    a.iter().map(|n| n.as_usize()).collect()
}

/// Our data type for a Core ML multi-array data type.
pub(super) fn data_type(t: MLMultiArrayDataType) -> Option<DataType> {
    Some(match t {
        MLMultiArrayDataType::Float32 => DataType::Fp32,
        MLMultiArrayDataType::Float16 => DataType::Fp16,
        MLMultiArrayDataType::Float64 => DataType::Fp64,
        MLMultiArrayDataType::Int32 => DataType::Int32,
        MLMultiArrayDataType::Int8 => DataType::Int8,
        _ => return None,
    })
}

/// Author metadata from Core ML's metadata dictionary.
fn metadata(dict: &NSDictionary<NSString, objc2::runtime::AnyObject>) -> Metadata {
    let text = |key: Option<&NSString>| -> String {
        key.and_then(|k| dict.objectForKey(k))
            .and_then(|v| v.downcast_ref::<NSString>().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    // SAFETY: the metadata keys are immutable NSString constants exported by
    // the CoreML framework (None only if the symbol is missing).
    let (description, version, author, license, creator) = unsafe {
        (
            MLModelDescriptionKey,
            MLModelVersionStringKey,
            MLModelAuthorKey,
            MLModelLicenseKey,
            MLModelCreatorDefinedKey,
        )
    };
    let mut user_defined = BTreeMap::new();
    if let Some(obj) = creator.and_then(|k| dict.objectForKey(k)) {
        if let Some(d) = obj.downcast_ref::<NSDictionary>() {
            // SAFETY: the creator-defined dictionary maps strings to strings;
            // keys and values are only used after a checked downcast.
            let (keys, values) = unsafe { d.to_vecs_unchecked() };
            for (k, v) in keys.iter().zip(values) {
                if let (Some(k), Some(v)) =
                    (k.downcast_ref::<NSString>(), v.downcast_ref::<NSString>())
                {
                    user_defined.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    Metadata {
        short_description: text(description),
        version: text(version),
        author: text(author),
        license: text(license),
        user_defined,
    }
}

/// Core ML's metadata, with the file's filling what Core ML left empty.
fn merge_metadata(native: Metadata, file: Metadata) -> Metadata {
    let pick = |a: String, b: String| if a.is_empty() { b } else { a };
    let mut user_defined = file.user_defined;
    user_defined.extend(native.user_defined);
    Metadata {
        short_description: pick(native.short_description, file.short_description),
        version: pick(native.version, file.version),
        author: pick(native.author, file.author),
        license: pick(native.license, file.license),
        user_defined,
    }
}

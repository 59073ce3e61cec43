//! Feeds arbitrary bytes to the protobuf model reader (`.mlmodel`, and the
//! model file inside an `.mlpackage`): decoding and conversion into the
//! program and description must give Ok or Err, never panic or
//! over-allocate. Weight references are recorded, not opened.
#![no_main]

use std::path::Path;

use candle_coreml::format::blob::BlobResolver;
use candle_coreml::format::{proto, ModelFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/model.mlmodel");
    let Ok(model) = proto::decode_model(data, path) else {
        return;
    };
    let mut blobs = BlobResolver::deferred(Path::new("fuzz"));
    let _ = proto::convert_model(model, path, path, ModelFormat::MlModel, &mut blobs);
});

//! Feeds arbitrary bytes to the protobuf model reader (`.mlmodel`, and the
//! model file inside an `.mlpackage`): decoding and conversion into the
//! program and description must give Ok or Err, never panic or
//! over-allocate. Weight references are recorded, not opened. A model that
//! reads is then translated as the portable backend would (NeuralNetwork
//! layers to MIL, pipelines merged), which must not panic either.
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
    let Ok(file) = proto::convert_model(model, path, path, ModelFormat::MlModel, &mut blobs) else {
        return;
    };
    let _ = candle_coreml::neuralnetwork::pipeline::program_of(&file);
});

//! Feeds arbitrary text to the MIL text parser: it must return Ok or Err,
//! never panic. Weight references are recorded, not opened (the readers'
//! deferred resolver), so a program's `BLOBFILE` constants do not stop the
//! parse and the whole text is exercised.
#![no_main]

use std::path::Path;

use candle_coreml::format::blob::BlobResolver;
use candle_coreml::format::mil_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut blobs = BlobResolver::deferred(Path::new("fuzz"));
        let _ = mil_text::parse(text, Path::new("fuzz/model.mil"), &mut blobs);
    }
});

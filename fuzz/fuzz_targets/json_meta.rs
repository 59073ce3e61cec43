//! Feeds arbitrary bytes to the two JSON readers: an `.mlpackage`'s
//! `Manifest.json` (root entry lookup and its path checks) and an
//! `.mlmodelc`'s `metadata.json` (the description built from it). Both must
//! give Ok or Err, never panic.
#![no_main]

use std::path::Path;

use candle_coreml::format::{mlmodelc, mlpackage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mlpackage::manifest_root_entry(data, Path::new("fuzz/Manifest.json"));
    let _ = mlmodelc::describe_metadata(data, Path::new("fuzz/metadata.json"));
});

//! Reads blobs out of an arbitrary weight.bin: every blob request must give
//! Ok or Err, never panic or over-allocate.
#![no_main]

use candle_coreml::format::blob::WeightFile;
use candle_coreml::mil::DataType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the request; the rest is the file.
    if data.len() < 8 {
        return;
    }
    let (req, file) = data.split_at(8);
    let dir = std::env::temp_dir().join(format!("candle-coreml-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("weight.bin");
    if std::fs::write(&path, file).is_err() {
        return;
    }
    let Ok(wf) = WeightFile::open(&path) else { return };
    let offset = u64::from(u16::from_le_bytes([req[0], req[1]]));
    let dtype = DataType::ALL[usize::from(req[2]) % DataType::ALL.len()];
    let shape = [usize::from(req[3]), usize::from(req[4]) % 17];
    let _ = wf.metadata(offset);
    let _ = wf.tensor("weights/weight.bin", offset, dtype, &shape[..usize::from(req[5]) % 3]);
});

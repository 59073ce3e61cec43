//! weight.bin reader: files written here byte by byte per the MIL blob
//! storage v2 layout (FORMATS.md §3), read back through `BlobResolver`.

use std::path::Path;

use candle_coreml::format::blob::{BlobResolver, WeightFile};
use candle_coreml::mil::{DataType, TensorData};
use candle_coreml::Error;

const REF: &str = "@model_path/weights/weight.bin";

/// One blob to write: dtype code, data bytes, padding bits, and overrides
/// for corrupting the record.
struct Blob {
    code: u32,
    data: Vec<u8>,
    padding_bits: u64,
    sentinel: u32,
    size_override: Option<u64>,
    data_offset_override: Option<u64>,
}

impl Blob {
    fn new(code: u32, data: Vec<u8>) -> Self {
        Self {
            code,
            data,
            padding_bits: 0,
            sentinel: 0xDEAD_BEEF,
            size_override: None,
            data_offset_override: None,
        }
    }
}

/// Builds a weight.bin image: header, then each blob's 64-byte record at a
/// 64-aligned offset followed by its data padded to 64. Returns the bytes
/// and each record's offset.
fn weight_bin(version: u32, blobs: &[Blob]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    out.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.resize(64, 0);
    let mut offsets = Vec::new();
    for b in blobs {
        let record = out.len() as u64;
        offsets.push(record);
        let data_offset = record + 64;
        out.extend_from_slice(&b.sentinel.to_le_bytes());
        out.extend_from_slice(&b.code.to_le_bytes());
        out.extend_from_slice(&b.size_override.unwrap_or(b.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&b.data_offset_override.unwrap_or(data_offset).to_le_bytes());
        out.extend_from_slice(&b.padding_bits.to_le_bytes());
        out.resize(record as usize + 64, 0);
        out.extend_from_slice(&b.data);
        out.resize(out.len().div_ceil(64) * 64, 0);
    }
    (out, offsets)
}

/// A model folder holding `weights/weight.bin` with `bytes`.
fn model_dir(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("weights")).unwrap();
    std::fs::write(dir.path().join("weights/weight.bin"), bytes).unwrap();
    dir
}

fn blob_message(err: Error) -> (std::path::PathBuf, u64, String) {
    match err {
        Error::Blob {
            path,
            offset,
            message,
        } => (path, offset, message),
        other => panic!("expected Error::Blob, got {other:?}"),
    }
}

fn fp16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

#[test]
fn reads_fp16_and_fp32_blobs_without_copy() {
    let h = fp16_bytes(&[1.0, -2.5, 0.5, 8.0]);
    let f: Vec<u8> = [3.0f32, 4.0, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (bytes, offs) = weight_bin(2, &[Blob::new(1, h.clone()), Blob::new(2, f.clone())]);
    assert_eq!(offs, vec![64, 192], "first record at 64, data at 128");
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());

    let t = r.tensor(REF, 64, DataType::Fp16, &[2, 2]).unwrap();
    assert_eq!(t.dtype, DataType::Fp16);
    assert_eq!(t.shape, vec![2, 2]);
    let blob = t.blob.as_ref().unwrap();
    assert_eq!(blob.file, REF);
    assert_eq!(blob.offset, 64);
    match &t.data {
        TensorData::Bytes(v) => assert_eq!(v.as_slice(), h.as_slice()),
        other => panic!("expected bytes, got {other:?}"),
    }

    let t = r.tensor(REF, 192, DataType::Fp32, &[3]).unwrap();
    match &t.data {
        TensorData::Bytes(v) => assert_eq!(v.as_slice(), f.as_slice()),
        other => panic!("expected bytes, got {other:?}"),
    }

    let wf = WeightFile::open(&dir.path().join("weights/weight.bin")).unwrap();
    assert_eq!(wf.count(), 2);
    let meta = wf.metadata(64).unwrap();
    assert_eq!(meta.data_offset, 128);
    assert_eq!(meta.size_in_bytes, 8);
}

#[test]
fn reads_sub_byte_blob_with_padding() {
    // 5 uint3 values = 15 bits -> 2 bytes, 1 padding bit.
    let mut b = Blob::new(12, vec![0b1101_0001, 0b0101_1010]);
    b.padding_bits = 1;
    let (bytes, _) = weight_bin(2, &[b]);
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());
    let t = r.tensor(REF, 64, DataType::UInt3, &[5]).unwrap();
    match &t.data {
        TensorData::Bytes(v) => assert_eq!(v.len(), 2),
        other => panic!("expected bytes, got {other:?}"),
    }
    // Inconsistent padding is refused.
    let mut b = Blob::new(12, vec![0, 0]);
    b.padding_bits = 3;
    let (bytes, _) = weight_bin(2, &[b]);
    let dir = model_dir(&bytes);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::UInt3, &[5])
        .unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("paddingSizeInBits"), "{msg}");
}

#[test]
fn u8_blob_backs_uint8_and_packed_indices() {
    let (bytes, _) = weight_bin(2, &[Blob::new(3, vec![1, 2, 3, 4])]);
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());
    r.tensor(REF, 64, DataType::UInt8, &[4]).unwrap();
    // 8 uint4 values packed in 4 bytes.
    r.tensor(REF, 64, DataType::UInt4, &[8]).unwrap();
}

#[test]
fn one_mapping_per_file() {
    let (bytes, _) = weight_bin(2, &[Blob::new(3, vec![9; 4])]);
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());
    let a = r.tensor(REF, 64, DataType::UInt8, &[4]).unwrap();
    let b = r
        .tensor(
            "@model_path/./weights/weight.bin",
            64,
            DataType::UInt8,
            &[4],
        )
        .unwrap();
    let (TensorData::Bytes(a), TensorData::Bytes(b)) = (&a.data, &b.data) else {
        panic!("expected bytes");
    };
    assert_eq!(a.as_slice().as_ptr(), b.as_slice().as_ptr());
}

#[test]
fn truncated_header() {
    let dir = model_dir(&[2, 0, 0, 0, 2, 0, 0, 0]);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1])
        .unwrap_err();
    let (path, offset, msg) = blob_message(err);
    assert!(path.ends_with("weights/weight.bin"));
    assert_eq!(offset, 0);
    assert!(msg.contains("header"), "{msg}");
}

#[test]
fn empty_file() {
    let dir = model_dir(&[]);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1])
        .unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("header"), "{msg}");
}

#[test]
fn wrong_version() {
    let (bytes, _) = weight_bin(1, &[Blob::new(1, vec![0; 2])]);
    let dir = model_dir(&bytes);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1])
        .unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("version 1"), "{msg}");
}

#[test]
fn wrong_sentinel() {
    let mut b = Blob::new(1, vec![0; 2]);
    b.sentinel = 0xDEAD_BEEE;
    let (bytes, _) = weight_bin(2, &[b]);
    let dir = model_dir(&bytes);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1])
        .unwrap_err();
    let (_, offset, msg) = blob_message(err);
    assert_eq!(offset, 64);
    assert!(msg.contains("sentinel"), "{msg}");
}

#[test]
fn offset_past_end() {
    let (bytes, _) = weight_bin(2, &[Blob::new(1, vec![0; 2])]);
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());
    for offset in [
        bytes.len() as u64,
        bytes.len() as u64 - 32,
        u64::MAX - 10,
        0,
    ] {
        let err = r.tensor(REF, offset, DataType::Fp16, &[1]).unwrap_err();
        let (_, got, msg) = blob_message(err);
        assert_eq!(got, offset);
        assert!(msg.contains("does not lie inside"), "{msg}");
    }
}

#[test]
fn data_not_fitting_the_file() {
    let mut b = Blob::new(1, vec![0; 2]);
    b.size_override = Some(1 << 20);
    let (bytes, _) = weight_bin(2, &[b]);
    let dir = model_dir(&bytes);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1 << 19])
        .unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("does not fit"), "{msg}");

    // Data offset overflowing u64 together with the size.
    let mut b = Blob::new(1, vec![0; 2]);
    b.data_offset_override = Some(u64::MAX - 1);
    let (bytes, _) = weight_bin(2, &[b]);
    let dir = model_dir(&bytes);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1])
        .unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("does not fit"), "{msg}");
}

#[test]
fn size_not_matching_the_shape() {
    let (bytes, _) = weight_bin(2, &[Blob::new(1, vec![0; 8])]);
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());
    let err = r.tensor(REF, 64, DataType::Fp16, &[3]).unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("size mismatch"), "{msg}");
    // A shape whose element count overflows.
    let err = r
        .tensor(REF, 64, DataType::Fp16, &[usize::MAX, usize::MAX])
        .unwrap_err();
    blob_message(err);
}

#[test]
fn unknown_dtype_code() {
    let (bytes, _) = weight_bin(2, &[Blob::new(99, vec![0; 2])]);
    let dir = model_dir(&bytes);
    let err = BlobResolver::new(dir.path())
        .tensor(REF, 64, DataType::Fp16, &[1])
        .unwrap_err();
    let (_, _, msg) = blob_message(err);
    assert!(msg.contains("unknown blob dtype code 99"), "{msg}");
}

#[test]
fn dtype_mismatch() {
    let (bytes, _) = weight_bin(2, &[Blob::new(1, vec![0; 4])]);
    let dir = model_dir(&bytes);
    let mut r = BlobResolver::new(dir.path());
    for declared in [DataType::Fp32, DataType::Int16, DataType::String] {
        let err = r.tensor(REF, 64, declared, &[1]).unwrap_err();
        let (_, _, msg) = blob_message(err);
        assert!(msg.contains("dtype mismatch"), "{msg}");
    }
}

fn expect_escape(r: &mut BlobResolver, reference: &str) {
    match r.tensor(reference, 64, DataType::UInt8, &[4]) {
        Err(Error::PathEscape { reference: got, .. }) => assert_eq!(got, reference),
        other => panic!("{reference}: expected PathEscape, got {other:?}"),
    }
}

#[test]
fn path_escapes_are_refused() {
    let (bytes, _) = weight_bin(2, &[Blob::new(3, vec![1, 2, 3, 4])]);
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("weight.bin"), &bytes).unwrap();
    let model = outer.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let mut r = BlobResolver::new(&model);
    expect_escape(&mut r, "@model_path/../weight.bin");
    expect_escape(&mut r, "@model_path/weights/../../weight.bin");
    let absolute = outer.path().join("weight.bin");
    expect_escape(&mut r, absolute.to_str().unwrap());
    expect_escape(&mut r, "@model_path//etc/passwd");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outer.path().join("weight.bin"), model.join("link.bin"))
            .unwrap();
        expect_escape(&mut r, "@model_path/link.bin");
        // A symlink staying inside the root is fine.
        std::fs::write(model.join("real.bin"), &bytes).unwrap();
        std::os::unix::fs::symlink(model.join("real.bin"), model.join("inside.bin")).unwrap();
        r.tensor("@model_path/inside.bin", 64, DataType::UInt8, &[4])
            .unwrap();
    }
}

#[test]
fn missing_file_is_missing_weights_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    match BlobResolver::new(dir.path()).tensor(REF, 64, DataType::Fp16, &[1]) {
        Err(e @ Error::MissingWeights { .. }) => {
            let Error::MissingWeights { path, reference } = &e else {
                unreachable!()
            };
            assert!(path.ends_with(Path::new("weights/weight.bin")));
            assert_eq!(reference, REF);
            assert!(e.to_string().contains("weights/weight.bin"), "{e}");
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
}

//! weight.bin: the MIL blob storage file (version 2), memory-mapped.
//!
//! Layout (little-endian): a 64-byte header `u32 count; u32 version (= 2);
//! 56 reserved bytes`, then for each blob a 64-byte metadata record at a
//! 64-aligned offset (`u32 sentinel 0xDEADBEEF; u32 dtype; u64 sizeInBytes;
//! u64 dataOffset; u64 paddingSizeInBits; 32 reserved bytes`) and its data.
//! A program's `BLOBFILE` offset points at the metadata record.
//!
//! Every count, offset and size read from the file is checked against the
//! file's length before use; nothing here panics on a malformed file.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::mil::{BlobRef, ByteView, DataType, TensorData, TensorValue};

/// Size of the file header and of each blob metadata record, in bytes.
pub const RECORD_SIZE: u64 = 64;

/// The storage version this reader understands.
pub const STORAGE_VERSION: u32 = 2;

/// The first four bytes of every blob metadata record.
pub const BLOB_SENTINEL: u32 = 0xDEAD_BEEF;

/// The prefix programs use for the model's own folder.
pub const MODEL_PATH_PREFIX: &str = "@model_path";

/// The element type code of a blob metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobDataType {
    /// 1: IEEE half.
    Fp16,
    /// 2: IEEE single.
    Fp32,
    /// 3: unsigned byte.
    UInt8,
    /// 4: signed byte.
    Int8,
    /// 5: bfloat16.
    Bf16,
    /// 6: signed 16-bit.
    Int16,
    /// 7: unsigned 16-bit.
    UInt16,
    /// 8: signed 4-bit, packed.
    Int4,
    /// 9: unsigned 1-bit, packed.
    UInt1,
    /// 10: unsigned 2-bit, packed.
    UInt2,
    /// 11: unsigned 4-bit, packed.
    UInt4,
    /// 12: unsigned 3-bit, packed.
    UInt3,
    /// 13: unsigned 6-bit, packed.
    UInt6,
    /// 14: signed 32-bit.
    Int32,
    /// 15: unsigned 32-bit.
    UInt32,
    /// 16: 8-bit float, 4 exponent bits, 3 mantissa bits, finite.
    Fp8E4M3Fn,
    /// 17: 8-bit float, 5 exponent bits, 2 mantissa bits.
    Fp8E5M2,
}

impl BlobDataType {
    /// The blob type of a metadata record's dtype code; `None` if unknown.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::Fp16,
            2 => Self::Fp32,
            3 => Self::UInt8,
            4 => Self::Int8,
            5 => Self::Bf16,
            6 => Self::Int16,
            7 => Self::UInt16,
            8 => Self::Int4,
            9 => Self::UInt1,
            10 => Self::UInt2,
            11 => Self::UInt4,
            12 => Self::UInt3,
            13 => Self::UInt6,
            14 => Self::Int32,
            15 => Self::UInt32,
            16 => Self::Fp8E4M3Fn,
            17 => Self::Fp8E5M2,
            _ => return None,
        })
    }

    /// The MIL data type this blob type stores.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Fp16 => DataType::Fp16,
            Self::Fp32 => DataType::Fp32,
            Self::UInt8 => DataType::UInt8,
            Self::Int8 => DataType::Int8,
            Self::Bf16 => DataType::Bf16,
            Self::Int16 => DataType::Int16,
            Self::UInt16 => DataType::UInt16,
            Self::Int4 => DataType::Int4,
            Self::UInt1 => DataType::UInt1,
            Self::UInt2 => DataType::UInt2,
            Self::UInt4 => DataType::UInt4,
            Self::UInt3 => DataType::UInt3,
            Self::UInt6 => DataType::UInt6,
            Self::Int32 => DataType::Int32,
            Self::UInt32 => DataType::UInt32,
            Self::Fp8E4M3Fn => DataType::Fp8E4M3Fn,
            Self::Fp8E5M2 => DataType::Fp8E5M2,
        }
    }

    /// True when a blob of this type may back a tensor declared `declared`.
    ///
    /// Besides the exact match, coremltools writes every 2-byte float as an
    /// fp16 blob (so bf16 tensors may sit in one), and older (iOS16) packed
    /// sub-byte indices and bool bytes sit in u8 blobs.
    pub fn can_back(self, declared: DataType) -> bool {
        let own = self.data_type();
        own == declared
            || matches!(
                (self, declared),
                (Self::Fp16, DataType::Bf16)
                    | (Self::Bf16, DataType::Fp16)
                    | (Self::UInt8, DataType::Bool)
                    | (Self::UInt8, DataType::UInt1)
                    | (Self::UInt8, DataType::UInt2)
                    | (Self::UInt8, DataType::UInt3)
                    | (Self::UInt8, DataType::UInt4)
                    | (Self::UInt8, DataType::UInt6)
                    | (Self::UInt8, DataType::Int4)
            )
    }
}

/// One blob's metadata record, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMetadata {
    /// Element type of the stored data.
    pub dtype: BlobDataType,
    /// Length of the data in bytes.
    pub size_in_bytes: u64,
    /// Absolute offset of the data in the file.
    pub data_offset: u64,
    /// Unused bits at the end of sub-byte data.
    pub padding_size_in_bits: u64,
}

/// The memory map, shared by every tensor that views it.
struct MappedBytes(Mmap);

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A memory-mapped, header-checked weight.bin file.
#[derive(Clone)]
pub struct WeightFile {
    path: PathBuf,
    map: Arc<MappedBytes>,
    count: u32,
}

impl fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("count", &self.count)
            .finish()
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

impl WeightFile {
    /// Maps `path` read-only and checks its header.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < RECORD_SIZE {
            return Err(Error::Blob {
                path: path.to_path_buf(),
                offset: 0,
                message: format!(
                    "file of {len} bytes is shorter than the {RECORD_SIZE}-byte header"
                ),
            });
        }
        // SAFETY: the map is only ever read, never written, and the file is
        // opened read-only. Memory-mapping is unsound only if another process
        // truncates or rewrites the file while it is mapped (reads could then
        // fault or see changing bytes); model files are treated as read-only
        // inputs and this risk is accepted, as every mmap-based loader does.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header_error = |message: String| Error::Blob {
            path: path.to_path_buf(),
            offset: 0,
            message,
        };
        let (count, version) = match (read_u32(&map, 0), read_u32(&map, 4)) {
            (Some(c), Some(v)) => (c, v),
            _ => return Err(header_error("truncated header".into())),
        };
        if version != STORAGE_VERSION {
            return Err(header_error(format!(
                "storage version {version}, expected {STORAGE_VERSION}"
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map: Arc::new(MappedBytes(map)),
            count,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True when the file is empty (never, for a file that opened).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The blob count the header records.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        (*self.map).as_ref()
    }

    fn error(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::Blob {
            path: self.path.clone(),
            offset,
            message: message.into(),
        }
    }

    /// The metadata record at `offset`, checked: sentinel, known dtype, and
    /// data lying inside the file.
    pub fn metadata(&self, offset: u64) -> Result<BlobMetadata> {
        let len = self.len() as u64;
        let end = offset.checked_add(RECORD_SIZE);
        if offset < RECORD_SIZE || end.is_none_or(|e| e > len) {
            return Err(self.error(
                offset,
                format!("metadata record does not lie inside the {len}-byte file after its header"),
            ));
        }
        let at = usize::try_from(offset).map_err(|_| self.error(offset, "offset too large"))?;
        let bytes = self.bytes();
        let field32 = |rel: usize| read_u32(bytes, at + rel);
        let field64 = |rel: usize| read_u64(bytes, at + rel);
        let (Some(sentinel), Some(code), Some(size), Some(data_offset), Some(padding)) =
            (field32(0), field32(4), field64(8), field64(16), field64(24))
        else {
            return Err(self.error(offset, "truncated metadata record"));
        };
        if sentinel != BLOB_SENTINEL {
            return Err(self.error(
                offset,
                format!("wrong sentinel {sentinel:#010x}, expected {BLOB_SENTINEL:#010x}"),
            ));
        }
        let dtype = BlobDataType::from_code(code)
            .ok_or_else(|| self.error(offset, format!("unknown blob dtype code {code}")))?;
        let data_end = data_offset.checked_add(size);
        if data_end.is_none_or(|e| e > len) {
            return Err(self.error(
                offset,
                format!(
                    "data of {size} bytes at offset {data_offset} does not fit in the {len}-byte file"
                ),
            ));
        }
        Ok(BlobMetadata {
            dtype,
            size_in_bytes: size,
            data_offset,
            padding_size_in_bits: padding,
        })
    }

    /// The tensor of declared `dtype` and `shape` whose metadata record is
    /// at `offset`, viewing the mapped bytes without copying. `file` is the
    /// reference as the program wrote it, kept in [`TensorValue::blob`].
    pub fn tensor(
        &self,
        file: &str,
        offset: u64,
        dtype: DataType,
        shape: &[usize],
    ) -> Result<TensorValue> {
        let meta = self.metadata(offset)?;
        if !meta.dtype.can_back(dtype) {
            return Err(self.error(
                offset,
                format!(
                    "dtype mismatch: blob holds {} data, the program declares {dtype}",
                    meta.dtype.data_type()
                ),
            ));
        }
        let expected = packed_size(dtype, shape).ok_or_else(|| {
            self.error(
                offset,
                format!("a {dtype} tensor of shape {shape:?} cannot be stored in a blob"),
            )
        })?;
        if meta.size_in_bytes != expected.bytes {
            return Err(self.error(
                offset,
                format!(
                    "size mismatch: blob holds {} bytes, a {dtype} tensor of shape {shape:?} needs {}",
                    meta.size_in_bytes, expected.bytes
                ),
            ));
        }
        if meta.padding_size_in_bits != 0 && meta.padding_size_in_bits != expected.padding_bits {
            return Err(self.error(
                offset,
                format!(
                    "paddingSizeInBits is {}, expected {} for {} elements of {dtype}",
                    meta.padding_size_in_bits, expected.padding_bits, expected.elements
                ),
            ));
        }
        let range = usize::try_from(meta.data_offset)
            .ok()
            .zip(usize::try_from(meta.size_in_bytes).ok());
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = self.map.clone();
        let view = range
            .and_then(|(start, len)| ByteView::new(owner, start, len))
            .ok_or_else(|| self.error(offset, "data range does not fit in memory"))?;
        Ok(TensorValue {
            dtype,
            shape: shape.to_vec(),
            data: TensorData::Bytes(view),
            blob: Some(BlobRef {
                file: file.to_string(),
                offset,
            }),
        })
    }
}

/// How many bytes a packed tensor takes, and its unused tail bits.
struct PackedSize {
    elements: u64,
    bytes: u64,
    padding_bits: u64,
}

/// The packed size of `shape` elements of `dtype`; `None` for strings or on
/// overflow.
fn packed_size(dtype: DataType, shape: &[usize]) -> Option<PackedSize> {
    let bits = u64::from(dtype.bit_width()?);
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))?;
    let total_bits = elements.checked_mul(bits)?;
    let bytes = total_bits.div_ceil(8);
    let padding_bits = bytes.checked_mul(8)?.checked_sub(total_bits)?;
    Some(PackedSize {
        elements,
        bytes,
        padding_bits,
    })
}

/// Resolves `BLOBFILE(path, offset)` references of one model to constant
/// tensors backed by the memory-mapped weight file (no copy).
///
/// `@model_path` names the resolver's root; references may not leave it
/// (`..`, absolute paths and symlinks pointing outside are refused with
/// [`Error::PathEscape`]). Each file is mapped once and shared.
#[derive(Debug)]
pub struct BlobResolver {
    root: PathBuf,
    /// Record references without opening files ([`BlobResolver::deferred`]).
    deferred: bool,
    canonical_root: Option<PathBuf>,
    /// Checked paths by reference, so each reference is resolved once.
    resolved: HashMap<String, PathBuf>,
    files: HashMap<PathBuf, WeightFile>,
}

impl BlobResolver {
    /// A resolver for a model whose `@model_path` is `root`, mapping each
    /// weight file when a blob of it is first asked for.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            deferred: false,
            canonical_root: None,
            resolved: HashMap::new(),
            files: HashMap::new(),
        }
    }

    /// A resolver that never opens a file: [`BlobResolver::tensor`] checks
    /// the reference and the declared type and returns an unmapped constant
    /// ([`TensorData::Unmapped`]), to be mapped later with
    /// [`BlobResolver::map`]. Readers use it, so describing a model never
    /// touches (or needs) its weights.
    pub fn deferred(root: &Path) -> Self {
        Self {
            deferred: true,
            ..Self::new(root)
        }
    }

    /// The folder `@model_path` stands for.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn escape(&self, reference: &str) -> Error {
        Error::PathEscape {
            path: self.root.clone(),
            reference: reference.to_string(),
        }
    }

    /// The reference `file` relative to the root, checked lexically (no
    /// `..`, not absolute).
    fn relative<'f>(&self, file: &'f str) -> Result<&'f Path> {
        let relative = match file.strip_prefix(MODEL_PATH_PREFIX) {
            Some("") => "",
            Some(rest) => rest.strip_prefix('/').unwrap_or(file),
            None => file,
        };
        let rel = Path::new(relative);
        if relative.is_empty()
            || rel.has_root()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(self.escape(file));
        }
        Ok(rel)
    }

    /// The path inside the root that the program's reference `file` names,
    /// checked not to leave the root (symlinks included).
    pub fn resolve(&mut self, file: &str) -> Result<PathBuf> {
        if let Some(p) = self.resolved.get(file) {
            return Ok(p.clone());
        }
        let rel = self.relative(file)?;
        let root = match &self.canonical_root {
            Some(r) => r.clone(),
            None => {
                let r = self
                    .root
                    .canonicalize()
                    .map_err(|e| Error::io(&self.root, e))?;
                self.canonical_root = Some(r.clone());
                r
            }
        };
        let joined = root.join(rel);
        let real = joined.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingWeights {
                    path: joined.clone(),
                    reference: file.to_string(),
                }
            } else {
                Error::io(&joined, e)
            }
        })?;
        if !real.starts_with(&root) {
            return Err(self.escape(file));
        }
        self.resolved.insert(file.to_string(), real.clone());
        Ok(real)
    }

    /// The weight file that `file` names, mapped on first use.
    pub fn weight_file(&mut self, file: &str) -> Result<&WeightFile> {
        let path = self.resolve(file)?;
        if !self.files.contains_key(&path) {
            let opened = WeightFile::open(&path)?;
            self.files.insert(path.clone(), opened);
        }
        self.files
            .get(&path)
            .ok_or_else(|| Error::format(&path, "weight file vanished from the cache"))
    }

    /// The tensor of declared `dtype` and `shape` stored in `file` (as the
    /// program names it, e.g. `@model_path/weights/weight.bin`) whose blob
    /// metadata record is at `offset`.
    pub fn tensor(
        &mut self,
        file: &str,
        offset: u64,
        dtype: DataType,
        shape: &[usize],
    ) -> Result<TensorValue> {
        if !self.deferred {
            return self.weight_file(file)?.tensor(file, offset, dtype, shape);
        }
        self.relative(file)?;
        if packed_size(dtype, shape).is_none() {
            return Err(Error::Blob {
                path: self.root.join(file),
                offset,
                message: format!("a {dtype} tensor of shape {shape:?} cannot be stored in a blob"),
            });
        }
        Ok(TensorValue {
            dtype,
            shape: shape.to_vec(),
            data: TensorData::Unmapped,
            blob: Some(BlobRef {
                file: file.to_string(),
                offset,
            }),
        })
    }

    /// Maps `tv` when it is an unmapped blob (see [`BlobResolver::deferred`]):
    /// its data becomes a view of the weight file, checked against the
    /// declared dtype and shape. Other constants are left as they are.
    pub fn map(&mut self, tv: &mut TensorValue) -> Result<()> {
        if !matches!(tv.data, TensorData::Unmapped) {
            return Ok(());
        }
        let Some(BlobRef { file, offset }) = tv.blob.clone() else {
            return Err(Error::format(
                &self.root,
                "an unmapped constant without a weight-file reference",
            ));
        };
        *tv = self
            .weight_file(&file)?
            .tensor(&file, offset, tv.dtype, &tv.shape)?;
        Ok(())
    }
}

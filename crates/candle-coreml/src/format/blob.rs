//! weight.bin: the MIL blob storage file (version 2), memory-mapped.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mil::{DataType, TensorValue};

/// Resolves `BLOBFILE(path, offset)` references of one model to constant
/// tensors backed by the memory-mapped weight file (no copy).
#[derive(Debug)]
pub struct BlobResolver {
    root: PathBuf,
}

impl BlobResolver {
    /// A resolver for a model whose `@model_path` is `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
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
        let _ = (offset, dtype, shape);
        Err(Error::format(self.root.join(file), "blob reader not written yet"))
    }
}

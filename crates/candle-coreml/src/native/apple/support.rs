//! Small helpers every part of the native backend uses: `NSError` into
//! [`Error::Native`], the macOS 15 API check, `NSString`s.

use objc2::rc::Retained;
use objc2_foundation::{NSError, NSString};

use crate::error::Error;

/// An [`Error::Native`] from an `NSError`.
pub(super) fn native_error(what: &str, e: &NSError) -> Error {
    Error::Native {
        domain: e.domain().to_string(),
        code: e.code() as i64,
        message: format!("{what}: {}", e.localizedDescription()),
    }
}

/// True on systems with the macOS 15 / iOS 18 Core ML APIs (functions, states).
pub(super) fn has_macos15_apis() -> bool {
    objc2::available!(
        macos = 15.0,
        ios = 18.0,
        tvos = 18.0,
        visionos = 2.0,
        watchos = 11.0
    )
}

/// An `NSString` from a Rust string.
pub(super) fn ns(s: &str) -> Retained<NSString> {
    NSString::from_str(s)
}

//! Reading the photo out of a request: multipart or raw, bounded in size and time, sniffed.

pub mod extract;
pub mod sniff;

pub use extract::{Photo, PhotoBody, UploadLimits, read_photo};

//! Reading the photo out of a request: multipart or raw, bounded in size and time, sniffed, and its
//! JPEG structure checked.

pub mod body;
pub mod extract;
pub mod jpeg;
pub mod sniff;

pub use body::{BodyError, BodyHeaders, BodyStream};
pub use extract::{Photo, PhotoBody, UploadLimits, read_photo};

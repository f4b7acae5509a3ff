//! The request as the upload room sees it, without the web framework: the body as a stream of
//! the project's own type, and the few headers that say how to read it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// Why the body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body ended before all of it was received.
    Incomplete,
    /// More bytes than declared.
    Overflow,
    /// Anything else the server reported (the text is its description).
    Other(String),
}

/// A request body: chunks as the server delivers them. Not `Send`: it lives on the worker that
/// received the request.
pub struct BodyStream(Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>>>>);

impl BodyStream {
    /// Wraps any stream of chunks.
    pub fn new(stream: impl Stream<Item = Result<Bytes, BodyError>> + 'static) -> BodyStream {
        BodyStream(Box::pin(stream))
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// The headers that say how to read the body, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyHeaders<'a> {
    /// `Content-Type`, raw.
    pub content_type: Option<&'a [u8]>,
    /// `Content-Encoding`, raw.
    pub content_encoding: Option<&'a [u8]>,
    /// `Content-Length`, when present and a number.
    pub content_length: Option<usize>,
}

impl BodyHeaders<'_> {
    /// Parses a `Content-Length` value (surrounding white space allowed).
    pub fn parse_length(raw: &[u8]) -> Option<usize> {
        std::str::from_utf8(raw).ok()?.trim().parse().ok()
    }
}

use std::fmt;

/// Why a frame could not be decoded. Decoding never panics; every malformed input lands here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The text is not JSON (or has trailing garbage).
    Json(String),
    /// The JSON is not an array of at least five elements.
    NotAnArray,
    /// The array has fewer than five elements.
    TooShort,
    /// join_ref or ref is neither a string nor null.
    BadRef,
    /// topic or event is not a string.
    BadName,
    /// A `phx_reply` payload without a string `status` and a `response`.
    BadReply,
    /// The binary frame is empty or its kind byte is not one this side decodes.
    UnknownKind(u8),
    /// The binary frame is shorter than its header or its declared field sizes.
    Truncated,
    /// A binary header field is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "invalid JSON: {e}"),
            DecodeError::NotAnArray => f.write_str("frame is not a JSON array"),
            DecodeError::TooShort => f.write_str("frame array has fewer than 5 elements"),
            DecodeError::BadRef => f.write_str("join_ref/ref is neither a string nor null"),
            DecodeError::BadName => f.write_str("topic/event is not a string"),
            DecodeError::BadReply => f.write_str("reply payload lacks status/response"),
            DecodeError::UnknownKind(k) => write!(f, "unknown binary frame kind {k}"),
            DecodeError::Truncated => f.write_str("binary frame shorter than its header says"),
            DecodeError::InvalidUtf8 => f.write_str("binary frame field is not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A binary frame field (join_ref, ref, topic, event or status) is longer than 255 bytes.
    FieldTooLong,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FieldTooLong => f.write_str("binary frame field longer than 255 bytes"),
        }
    }
}

impl std::error::Error for EncodeError {}

//! The one module that knows how a checkpoint payload becomes bytes: bincode
//! 2 through serde, standard configuration (little-endian, variable-length
//! integers), decoded with a size limit. Swapping the codec means changing
//! this file and bumping the checkpoint format version.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest payload written or read: 1 GiB, about 268 million `f32`
/// parameters.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// Encodes `value`.
///
/// # Errors
/// A message when serde or bincode refuse the value, or when it exceeds
/// [`MAX_PAYLOAD`] (so that nothing is written that could not be read back).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())?;
    if bytes.len() > MAX_PAYLOAD {
        return Err(format!(
            "the payload would be {} bytes, more than the {MAX_PAYLOAD}-byte limit",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Decodes a `T` that must fill `bytes` exactly.
///
/// bincode checks every length prefix against the configured limit before
/// allocating for it, and the limit is a compile-time constant; so the
/// limit is picked from a few sizes as the smallest at or above
/// `bytes.len()`, and a forged length prefix can never make the decoder
/// allocate more than 16 times the size of the input.
///
/// # Errors
/// A message when the bytes do not decode, or leave bytes over.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.len() {
        n if n <= 1 << 16 => decode_limited::<T, { 1 << 16 }>(bytes),
        n if n <= 1 << 20 => decode_limited::<T, { 1 << 20 }>(bytes),
        n if n <= 1 << 24 => decode_limited::<T, { 1 << 24 }>(bytes),
        n if n <= 1 << 28 => decode_limited::<T, { 1 << 28 }>(bytes),
        n if n <= MAX_PAYLOAD => decode_limited::<T, MAX_PAYLOAD>(bytes),
        n => Err(format!("{n} bytes exceed the {MAX_PAYLOAD}-byte limit")),
    }
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, read) = bincode::serde::decode_from_slice(bytes, config).map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!("{} bytes left over after the last field", bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let value = (7u32, vec![1.5f32, -2.0], String::from("x"));
        let mut bytes = encode(&value).unwrap();
        assert_eq!(decode::<(u32, Vec<f32>, String)>(&bytes).unwrap(), value);
        bytes.push(0);
        let err = decode::<(u32, Vec<f32>, String)>(&bytes).unwrap_err();
        assert!(err.contains("1 bytes left over"), "{err}");
    }

    /// A string whose length prefix claims a gigabyte is refused by the
    /// limit instead of being allocated.
    #[test]
    fn forged_length_prefix_is_refused() {
        // Varint: 0xfc then a u32 little-endian length.
        let mut bytes = vec![0xfc];
        bytes.extend_from_slice(&(1u32 << 30).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(err.to_lowercase().contains("limit"), "{err}");
    }
}

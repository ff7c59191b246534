//! The one module that knows how a checkpoint payload becomes bytes: bincode
//! 2 through serde, standard configuration (little-endian, variable-length
//! integers), decoded with a size limit. Swapping the codec means changing
//! this file and bumping the checkpoint format version.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The decoder's limit on the bytes it may claim for strings and byte
/// strings (each is read straight from the input, so it is also bounded by
/// the payload's real length). A constant of the format, never derived from
/// a file's length (format 1's mistake: payloads just under a power of two
/// decoded to more than the length-derived limit and could not be read
/// back).
///
/// Containers are bounded elsewhere: the checkpoint's record types cap the
/// length of every list as it decodes (`checkpoint/bounded.rs`), and serde
/// pre-allocates at most 1 MiB per list, growing only as elements actually
/// arrive, so memory stays within a small multiple of the input's size.
const DECODE_LIMIT: usize = 1 << 33;

/// Encodes `value`.
///
/// # Errors
/// A message when serde or bincode refuse the value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Decodes a `T` that must fill `bytes` exactly, under [`DECODE_LIMIT`].
///
/// # Errors
/// A message when the bytes do not decode, or leave bytes over.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
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

    /// Length prefixes claiming a gigabyte, or more than the limit, are
    /// refused: by the limit, or when the input runs out.
    #[test]
    fn forged_length_prefix_is_refused() {
        for len in [1u64 << 30, 1 << 40] {
            // Varint: 0xfd then a u64 little-endian length.
            let mut bytes = vec![0xfd];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(b"abc");
            assert!(decode::<String>(&bytes).is_err());
            assert!(decode::<Vec<f32>>(&bytes).is_err());
        }
    }

    /// Payloads of every size around the powers of two where format 1's
    /// length-derived limit broke decode again.
    #[test]
    fn payloads_around_powers_of_two_round_trip() {
        for power in [16, 20] {
            for n in ((1usize << power) / 4 - 40)..((1usize << power) / 4 + 4) {
                let value = vec![1.5f32; n];
                let bytes = encode(&value).unwrap();
                assert_eq!(decode::<Vec<f32>>(&bytes).unwrap(), value, "{n} floats");
            }
        }
    }
}

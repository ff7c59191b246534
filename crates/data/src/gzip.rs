//! Decompressing gzip files of one or more members, optionally followed by
//! zero padding.
//!
//! `flate2`'s `MultiGzDecoder` reads concatenated members but rejects
//! anything after the last one, including the runs of zero bytes that tape
//! archives (`tar` pads to its record size) and some mirrors append. GNU gzip
//! ignores such padding ("decompression OK, trailing zero bytes ignored");
//! [`GzipMembers`] does the same, and still rejects any other trailing data.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// The first two bytes of every gzip member.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The decompressed content of every gzip member of `R`, one after the other.
///
/// After a member ends, what follows must be another member, the end of the
/// input, or zero bytes up to the end of the input; anything else is an
/// [`io::ErrorKind::InvalidData`] error. Damaged members fail as in `flate2`
/// (bad header, bad deflate data, CRC or length mismatch, cut short).
pub(crate) struct GzipMembers<R: BufRead> {
    /// The member being read; `None` once the input is used up.
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzipMembers<R> {
    /// Decompresses `input`, which starts with a gzip member.
    pub(crate) fn new(input: R) -> Self {
        Self {
            member: Some(GzDecoder::new(input)),
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(member) = &mut self.member else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The member ended, its CRC and length checked: see what follows.
            let Some(member) = self.member.take() else {
                return Ok(0);
            };
            let mut input = member.into_inner();
            let next = input.fill_buf()?;
            match next.first() {
                None => return Ok(0),
                Some(0) => {
                    skip_zero_padding(&mut input)?;
                    return Ok(0);
                }
                Some(_) => self.member = Some(GzDecoder::new(input)),
            }
        }
    }
}

/// Consumes `input` to its end, failing unless every byte is zero.
fn skip_zero_padding(input: &mut impl BufRead) -> io::Result<()> {
    let mut offset = 0u64;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        if let Some(at) = chunk.iter().position(|&b| b != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "byte {:#04x} after {} bytes of zero padding following the last gzip member: \
                     only zero bytes may follow it",
                    chunk[at],
                    offset + at as u64
                ),
            ));
        }
        let n = chunk.len();
        offset += n as u64;
        input.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn decompress(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        GzipMembers::new(data).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_are_concatenated_and_zero_padding_is_skipped() {
        let mut data = gzip(b"hello, ");
        data.extend_from_slice(&gzip(b"world"));
        assert_eq!(decompress(&data).unwrap(), b"hello, world");
        // Padded to a 10240-byte tar record.
        data.resize(10240, 0);
        assert_eq!(decompress(&data).unwrap(), b"hello, world");
        // A single zero byte is padding too.
        let mut one = gzip(b"x");
        one.push(0);
        assert_eq!(decompress(&one).unwrap(), b"x");
    }

    #[test]
    fn anything_but_zeros_after_the_last_member_is_rejected() {
        let good = gzip(b"data");
        for tail in [&[0xffu8][..], &[0, 0, 0, 7], b"garbage", &[0, 0x1f, 0x8b]] {
            let mut data = good.clone();
            data.extend_from_slice(tail);
            assert!(decompress(&data).is_err(), "{tail:?} was accepted");
        }
        // The offset of the first non-zero byte after the padding is reported.
        let mut data = good;
        data.extend_from_slice(&[0, 0, 0, 7]);
        let err = decompress(&data).unwrap_err();
        assert!(err.to_string().contains("0x07 after 3 bytes of zero padding"), "{err}");
    }
}

//! The part of crc-fast's API that aws-smithy-checksums uses: [`Digest`] over a [`CrcAlgorithm`]
//! and the one-shot [`checksum`], for the three algorithms S3 request checksums use. See
//! Cargo.toml for why this exists.

use crc::{CRC_32_ISCSI, CRC_32_ISO_HDLC, CRC_64_NVME, Crc};

static CRC32_ISO_HDLC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);
static CRC32_ISCSI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);
static CRC64_NVME: Crc<u64> = Crc::<u64>::new(&CRC_64_NVME);

/// The algorithms offered: those S3 request checksums use (crc-fast's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrcAlgorithm {
    /// CRC-32 as in zlib, gzip and PNG (S3's `CRC32`).
    Crc32IsoHdlc,
    /// CRC-32C, Castagnoli (S3's `CRC32C`).
    Crc32Iscsi,
    /// CRC-64/NVME (S3's `CRC64NVME`).
    Crc64Nvme,
}

/// An incremental checksum.
#[derive(Clone)]
pub struct Digest {
    algorithm: CrcAlgorithm,
    state: State,
}

#[derive(Clone)]
enum State {
    Crc32(crc::Digest<'static, u32>),
    Crc64(crc::Digest<'static, u64>),
}

impl Digest {
    pub fn new(algorithm: CrcAlgorithm) -> Self {
        let state = match algorithm {
            CrcAlgorithm::Crc32IsoHdlc => State::Crc32(CRC32_ISO_HDLC.digest()),
            CrcAlgorithm::Crc32Iscsi => State::Crc32(CRC32_ISCSI.digest()),
            CrcAlgorithm::Crc64Nvme => State::Crc64(CRC64_NVME.digest()),
        };
        Digest { algorithm, state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(d) => d.update(data),
            State::Crc64(d) => d.update(data),
        }
    }

    /// The checksum of everything given so far (the digest stays usable, as crc-fast's does).
    pub fn finalize(&self) -> u64 {
        match &self.state {
            State::Crc32(d) => u64::from(d.clone().finalize()),
            State::Crc64(d) => d.clone().finalize(),
        }
    }

    /// Starts over.
    pub fn reset(&mut self) {
        *self = Digest::new(self.algorithm);
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The checksum of `data` in one call.
pub fn checksum(algorithm: CrcAlgorithm, data: &[u8]) -> u64 {
    let mut digest = Digest::new(algorithm);
    digest.update(data);
    digest.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue's check values: the CRC of the ASCII string "123456789".
    #[test]
    fn check_values() {
        assert_eq!(
            checksum(CrcAlgorithm::Crc32IsoHdlc, b"123456789"),
            0xcbf4_3926
        );
        assert_eq!(
            checksum(CrcAlgorithm::Crc32Iscsi, b"123456789"),
            0xe306_9283
        );
        assert_eq!(
            checksum(CrcAlgorithm::Crc64Nvme, b"123456789"),
            0xae8b_1486_0a79_9888
        );
    }

    #[test]
    fn incremental_equals_one_shot_and_finalize_does_not_consume() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for algorithm in [
            CrcAlgorithm::Crc32IsoHdlc,
            CrcAlgorithm::Crc32Iscsi,
            CrcAlgorithm::Crc64Nvme,
        ] {
            let mut d = Digest::new(algorithm);
            for chunk in data.chunks(777) {
                d.update(chunk);
            }
            assert_eq!(d.finalize(), checksum(algorithm, &data), "{algorithm:?}");
            assert_eq!(
                d.finalize(),
                checksum(algorithm, &data),
                "{algorithm:?} twice"
            );
            d.reset();
            assert_eq!(
                d.finalize(),
                checksum(algorithm, b""),
                "{algorithm:?} reset"
            );
        }
    }
}

//! JSON kept in memory, LZ4-compressed against a dictionary of what such JSON usually says.
//!
//! The caches hold one JSON buffer per object, most of which is the same from object to
//! object: the keys, `"status":"True"`, the condition reasons, the managed-by label. Compressed
//! on its own an Authorization shrinks by a third; against a dictionary that already says all
//! of that, to under a third of its size (1,139 bytes to 333 for a typical Ready one). Only
//! what differs is kept: names, ids, hashes, times. Unpacking costs well under a microsecond.
//!
//! The dictionary lives as long as the process and is never written anywhere, so it may change
//! with any release: nothing compressed with one is read with another.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a kind of object usually says, to compress its JSON against.
pub struct Dictionary {
    bytes: Vec<u8>,
}

impl Dictionary {
    /// The dictionary of `samples`, each typed (so that its keys are spelled and ordered as
    /// serialization writes them) from JSON. A sample that does not read as `T` is left out:
    /// compression then finds less, and nothing else changes.
    pub fn of<T: DeserializeOwned + Serialize>(samples: &[serde_json::Value]) -> Self {
        let bytes = samples
            .iter()
            .filter_map(|sample| serde_json::from_value::<T>(sample.clone()).ok())
            .filter_map(|typed| serde_json::to_vec(&typed).ok())
            .collect::<Vec<_>>()
            .concat();
        Self { bytes }
    }

    /// `value` as compressed JSON.
    pub fn pack<T: Serialize>(&self, value: &T) -> Result<Box<[u8]>, serde_json::Error> {
        let json = serde_json::to_vec(value)?;
        Ok(lz4_flex::block::compress_prepend_size_with_dict(&json, &self.bytes).into_boxed_slice())
    }

    /// What [`Self::pack`] packed.
    pub fn unpack<T: DeserializeOwned>(&self, packed: &[u8]) -> Result<T, serde_json::Error> {
        let json = lz4_flex::block::decompress_size_prepended_with_dict(packed, &self.bytes)
            .map_err(<serde_json::Error as serde::de::Error>::custom)?;
        serde_json::from_slice(&json)
    }

    /// Its size in bytes.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        kind: String,
        message: String,
    }

    #[test]
    fn what_is_packed_unpacks_and_the_dictionary_shrinks_it() {
        let dictionary = Dictionary::of::<Sample>(&[json!({
            "kind": "Authorization",
            "message": "GHES authorization  matches the spec",
        })]);
        let value = Sample {
            kind: "Authorization".into(),
            message: "GHES authorization 4123 matches the spec".into(),
        };
        let packed = dictionary.pack(&value).expect("packs");
        assert_eq!(
            dictionary.unpack::<Sample>(&packed).expect("unpacks"),
            value
        );
        let json = serde_json::to_vec(&value).expect("json");
        let alone = Dictionary::of::<Sample>(&[]).pack(&value).expect("packs");
        assert!(
            packed.len() * 2 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
        assert!(packed.len() < alone.len());
    }

    #[test]
    fn a_sample_of_another_shape_is_left_out_and_garbage_is_an_error() {
        let dictionary = Dictionary::of::<Sample>(&[json!({"kind": 1})]);
        assert_eq!(dictionary.len(), 0);
        assert!(dictionary.unpack::<Sample>(b"\x05\0\0\0garbage").is_err());
        assert!(dictionary.unpack::<Sample>(b"").is_err());
    }
}

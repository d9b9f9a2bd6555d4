//! Serde for `Arc<[T]>` as a plain sequence (the encoding of `Vec<T>`), without serde's `rc`
//! feature.

use std::sync::Arc;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

pub fn serialize<T: Serialize, S: Serializer>(v: &Arc<[T]>, s: S) -> Result<S::Ok, S::Error> {
    v[..].serialize(s)
}

pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Arc<[T]>, D::Error> {
    Vec::<T>::deserialize(d).map(Arc::from)
}

//! The transformer's parts, one plain struct each: norms, rotary embedding, attention with
//! its key/value cache, MLP, and the block that chains them.

mod attention;
mod block;
mod kv_cache;
mod mlp;
mod norm;
mod rope;

pub(crate) use attention::{Attention, Segment};
pub(crate) use block::Block;
pub(crate) use kv_cache::KV_ELEMENT_BYTES;
pub use kv_cache::{KvCache, LayerKvCache};
pub(crate) use mlp::Mlp;
pub(crate) use norm::RmsNorm;
pub(crate) use rope::RotaryEmbedding;

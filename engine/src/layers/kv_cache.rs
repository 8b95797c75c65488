//! The keys and values a sequence has seen, per attention layer, in buffers grown in steps
//! of `GROWTH` positions so that appending a token usually copies only that token, or
//! allocated once at a reserved size (a scheduled sequence whose worst case was admitted
//! against the node's memory budget).

use std::ops::Range;

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Positions added when a buffer is full (~200 kB per SmolLM2 layer: f32 keys and values).
const GROWTH: usize = 128;

/// Keys and values of one sequence for a range of blocks.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Range<usize>,
    per_layer: Vec<LayerKvCache>,
}

impl KvCache {
    /// An empty cache for `layers`.
    pub fn new(layers: Range<usize>) -> Self {
        Self::with_capacity(layers, 0)
    }

    /// An empty cache for `layers` whose buffers, once first written, hold `positions`
    /// positions without growing.
    pub fn with_capacity(layers: Range<usize>, positions: usize) -> Self {
        let layer = LayerKvCache {
            reserved: positions,
            ..Default::default()
        };
        let per_layer = vec![layer; layers.len()];
        Self { layers, per_layer }
    }

    /// The blocks this cache serves.
    pub fn layers(&self) -> Range<usize> {
        self.layers.clone()
    }

    /// Positions cached (the position the next token will take).
    pub fn len(&self) -> usize {
        self.per_layer.first().map_or(0, LayerKvCache::len)
    }

    /// True when no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every position from `len` on, e.g. to replay a suffix on a replacement node.
    pub fn truncate(&mut self, len: usize) {
        self.per_layer
            .iter_mut()
            .for_each(|layer| layer.truncate(len));
    }

    /// Positions cached for block `layer` (which must be in `layers()`).
    pub(crate) fn layer_len(&self, layer: usize) -> usize {
        self.per_layer[layer - self.layers.start].len()
    }

    /// The cache of block `layer` (which must be in `layers()`).
    pub(crate) fn layer_mut(&mut self, layer: usize) -> &mut LayerKvCache {
        &mut self.per_layer[layer - self.layers.start]
    }
}

/// Cached keys and values of one layer: `[1, kv_heads, positions, head_dim]` each.
#[derive(Debug, Default, Clone)]
pub struct LayerKvCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    len: usize,
    /// Positions the first allocation holds at least.
    reserved: usize,
}

impl LayerKvCache {
    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Forgets every position from `len` on (the next append writes there).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends `keys`/`values` (`[1, kv_heads, seq, head_dim]`) and returns views of all
    /// positions cached so far.
    pub(crate) fn append(&mut self, keys: &Tensor, values: &Tensor) -> Result<(Tensor, Tensor)> {
        let added = keys.dim(2)?;
        let needed = self.len + added;
        let capacity = self.capacity();
        if needed > capacity {
            let new_capacity = needed.max(capacity + GROWTH).max(self.reserved);
            self.keys = Some(grow(self.keys.take(), keys, self.len, new_capacity)?);
            self.values = Some(grow(self.values.take(), values, self.len, new_capacity)?);
        }
        let (cached_keys, cached_values) = (
            self.keys.as_ref().expect("allocated"),
            self.values.as_ref().expect("allocated"),
        );
        cached_keys.slice_set(&keys.contiguous()?, 2, self.len)?;
        cached_values.slice_set(&values.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((
            cached_keys.narrow(2, 0, needed)?,
            cached_values.narrow(2, 0, needed)?,
        ))
    }
}

fn grow(old: Option<Tensor>, like: &Tensor, keep: usize, capacity: usize) -> Result<Tensor> {
    let (batch, heads, _, head_dim) = like.dims4()?;
    let fresh = Tensor::zeros((batch, heads, capacity, head_dim), DType::F32, &Device::Cpu)?;
    if let Some(old) = old {
        if keep > 0 {
            fresh.slice_set(&old.narrow(2, 0, keep)?.contiguous()?, 2, 0)?;
        }
    }
    Ok(fresh)
}

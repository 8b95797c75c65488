//! The keys and values a sequence has seen, per attention layer, as f16 (half the memory of
//! f32, as llama.cpp keeps them). Buffers grow in steps of `GROWTH` positions, so appending
//! a token usually copies only that token, or are allocated once at a reserved size (a
//! scheduled sequence whose worst case was admitted against the node's memory budget).

use std::ops::Range;

use half::f16;

/// Positions added when a buffer is full (~50 kB per SmolLM2 layer: f16 keys and values).
const GROWTH: usize = 128;

/// Bytes one cached key or value component takes.
pub(crate) const KV_ELEMENT_BYTES: usize = std::mem::size_of::<f16>();

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

/// Cached keys and values of one layer: position after position, each `width` values (every
/// key/value head's, head after head).
#[derive(Debug, Default, Clone)]
pub struct LayerKvCache {
    keys: Vec<f16>,
    values: Vec<f16>,
    width: usize,
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

    /// Forgets every position from `len` on (the next append writes there).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends one position's key and value (`width` values each, rounded to f16).
    pub(crate) fn push(&mut self, key: &[f32], value: &[f32]) {
        debug_assert_eq!(key.len(), value.len());
        if self.width != key.len() {
            assert!(self.len == 0, "key width changed in a non-empty cache");
            self.width = key.len();
        }
        let width = self.width;
        self.keys.truncate(self.len * width);
        self.values.truncate(self.len * width);
        let capacity = self.keys.capacity() / width.max(1);
        if self.len == capacity {
            let positions = (capacity + GROWTH).max(self.reserved);
            let more = positions * width - self.keys.len();
            self.keys.reserve_exact(more);
            self.values.reserve_exact(more);
        }
        self.keys.extend(key.iter().map(|&k| f16::from_f32(k)));
        self.values.extend(value.iter().map(|&v| f16::from_f32(v)));
        self.len += 1;
    }

    /// Values per position.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The cached keys and values of every position, `width` values per position.
    pub(crate) fn keys_values(&self) -> (&[f16], &[f16]) {
        let end = self.len * self.width;
        (&self.keys[..end], &self.values[..end])
    }
}

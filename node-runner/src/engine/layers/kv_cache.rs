//! The keys and values one attention layer has seen, grown by doubling so that appending a
//! token copies only that token.

use candle_core::{DType, Device, Tensor};

use crate::engine::error::Result;

/// Cached keys and values of one layer: `[1, kv_heads, positions, head_dim]` each.
#[derive(Debug, Default, Clone)]
pub struct LayerKvCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    len: usize,
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

    /// Appends `keys`/`values` (`[1, kv_heads, seq, head_dim]`) and returns views of all
    /// positions cached so far.
    pub(crate) fn append(&mut self, keys: &Tensor, values: &Tensor) -> Result<(Tensor, Tensor)> {
        let added = keys.dim(2)?;
        let needed = self.len + added;
        let capacity = self.keys.as_ref().map(|k| k.dim(2)).transpose()?.unwrap_or(0);
        if needed > capacity {
            let new_capacity = needed.max(capacity * 2).max(64);
            self.keys = Some(grow(self.keys.take(), keys, self.len, new_capacity)?);
            self.values = Some(grow(self.values.take(), values, self.len, new_capacity)?);
        }
        let (cached_keys, cached_values) =
            (self.keys.as_ref().expect("allocated"), self.values.as_ref().expect("allocated"));
        cached_keys.slice_set(&keys.contiguous()?, 2, self.len)?;
        cached_values.slice_set(&values.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((cached_keys.narrow(2, 0, needed)?, cached_values.narrow(2, 0, needed)?))
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

//! Causal self-attention with grouped-query heads (several query heads share one key/value
//! head) and rotary positions.

use candle_core::{Device, Tensor};

use super::{LayerKvCache, RotaryEmbedding};
use crate::error::Result;
use crate::linear::{Linear, StackedProjection};

#[derive(Debug)]
pub(crate) struct Attention {
    /// q, k and v, stacked.
    qkv: StackedProjection,
    output: Linear,
    head_count: usize,
    kv_head_count: usize,
    head_dim: usize,
}

impl Attention {
    pub(crate) fn new(
        qkv: StackedProjection,
        output: Linear,
        head_count: usize,
        kv_head_count: usize,
        head_dim: usize,
    ) -> Self {
        Self {
            qkv,
            output,
            head_count,
            kv_head_count,
            head_dim,
        }
    }

    /// `x`: `[1, rows, hidden]` (already normalised), the rows of several sequences stacked
    /// (`segments`, in order). The projections run over every row at once, so each weight
    /// matrix is read once per step however many sequences share it; attention runs per
    /// sequence against its own cache. Every operation is row by row or per sequence, so a
    /// sequence's values do not depend on what else is in the batch.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        segments: &mut [Segment<'_>],
        rope: &RotaryEmbedding,
    ) -> Result<Tensor> {
        let [q, k, v]: [Tensor; 3] = self
            .qkv
            .forward(x)?
            .try_into()
            .expect("q, k and v projections");
        let mut attended = Vec::with_capacity(segments.len());
        for segment in segments.iter_mut() {
            let (start, len) = (segment.rows.start, segment.rows.len());
            attended.push(self.attend(
                &q.narrow(1, start, len)?,
                &k.narrow(1, start, len)?,
                &v.narrow(1, start, len)?,
                segment.position,
                rope,
                segment.cache,
            )?);
        }
        let attended = if attended.len() == 1 {
            attended.pop().expect("one segment")
        } else {
            Tensor::cat(&attended, 1)?
        };
        self.output.forward(&attended)
    }

    /// Attention of one sequence's `seq` new rows (`q`, `k`, `v`: `[1, seq, width]`) whose first
    /// row sits at `position`; the cache holds exactly the positions before it.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        position: usize,
        rope: &RotaryEmbedding,
        cache: &mut LayerKvCache,
    ) -> Result<Tensor> {
        let (batch, seq_len, _) = q.dims3()?;
        let split_heads = |t: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, seq_len, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = rope.apply(&split_heads(q, self.head_count)?, position)?;
        let k = rope.apply(&split_heads(k, self.kv_head_count)?, position)?;
        let v = split_heads(v, self.kv_head_count)?;
        let (keys, values) = cache.append(&k, &v)?;

        // Query heads h = g * group + r share key/value head g: fold each group's heads into
        // the row dimension so one matmul per key/value head serves the whole group, without
        // copying keys and values `group` times.
        let group = self.head_count / self.kv_head_count;
        let rows = group * seq_len;
        let q = q.reshape((batch, self.kv_head_count, rows, self.head_dim))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&keys.t()?)? * scale)?;
        let scores = if seq_len > 1 {
            scores.broadcast_add(&causal_mask(group, seq_len, position, keys.dim(2)?)?)?
        } else {
            scores
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended = weights.matmul(&values)?;
        Ok(attended
            .reshape((batch, self.head_count, seq_len, self.head_dim))?
            .transpose(1, 2)?
            .reshape((batch, seq_len, self.head_count * self.head_dim))?)
    }
}

/// One sequence's rows in a step: rows `rows` of the stacked input, the first of them at
/// absolute position `position`, with the sequence's cache of the layer being run.
pub(crate) struct Segment<'a> {
    pub(crate) rows: std::ops::Range<usize>,
    pub(crate) position: usize,
    pub(crate) cache: &'a mut LayerKvCache,
}

/// Additive mask `[group * seq_len, total]`: row `r * seq_len + i` is query `i` (at absolute
/// position `position + i`), which may see keys `0..=position + i`.
fn causal_mask(group: usize, seq_len: usize, position: usize, total: usize) -> Result<Tensor> {
    let mut mask = vec![0f32; group * seq_len * total];
    for r in 0..group {
        for i in 0..seq_len {
            let row = (r * seq_len + i) * total;
            for j in (position + i + 1)..total {
                mask[row + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(
        mask,
        (group * seq_len, total),
        &Device::Cpu,
    )?)
}

//! A llama-family model split into the three steps a shard pipeline needs: `embed` (token
//! ids to hidden states), `forward_layers` over any contiguous range of blocks, and `head`
//! (hidden states to next-token logits). The weights are immutable, so one `Model` can serve
//! many sequences; each sequence keeps its own [`KvCache`].

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Tensor};

use super::config::ModelConfig;
use super::error::{EngineError, Result};
use super::layers::{
    Attention, Block, KvCache, Mlp, RmsNorm, RotaryEmbedding, Segment, KV_ELEMENT_BYTES,
};
use super::linear::Linear;
use super::qmatmul::Q8_0Matrix;
use super::weights::{GgufFile, WeightFormat};

/// Which parts of a GGUF file to load, and how.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The blocks to load; `None` loads all. Embedding and head are always loaded, so a
    /// client in split mode can load `0..0`.
    pub layers: Option<Range<usize>>,
    /// In-memory format of the quantized matrices.
    pub format: WeightFormat,
}

/// Hidden states of a sequence: `positions × hidden_size` f32 values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Hidden {
    values: Vec<f32>,
    width: usize,
}

impl Hidden {
    /// Wraps values received from another shard.
    pub fn from_vec(values: Vec<f32>, hidden_size: usize) -> Result<Self> {
        if hidden_size == 0 || !values.len().is_multiple_of(hidden_size) {
            return Err(EngineError::HiddenSize {
                got: values.len(),
                expected: hidden_size,
            });
        }
        Ok(Self {
            values,
            width: hidden_size,
        })
    }

    /// The values, row-major, to send to the next shard.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(self.values.clone())
    }

    /// The values, row-major, without a copy.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Number of positions (tokens) covered.
    pub fn positions(&self) -> usize {
        self.values.len() / self.width
    }

    /// Values per position.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows `start..start + len`.
    pub(crate) fn rows(&self, start: usize, len: usize) -> &[f32] {
        &self.values[start * self.width..(start + len) * self.width]
    }
}

/// A loaded model: embedding, the blocks of one layer range, final norm and LM head.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
    /// Token embedding `[vocab, hidden]`; also the LM head when the file ties them.
    embedding: Embedding,
    /// Blocks `first_layer..first_layer + blocks.len()`.
    blocks: Vec<Block>,
    first_layer: usize,
    final_norm: RmsNorm,
    lm_head: Linear,
    rope: RotaryEmbedding,
}

/// The token embedding: rows of the engine's own Q8_0 matrix (shared with a tied LM head, so
/// it is held once), or candle's for other storage types.
#[derive(Debug)]
enum Embedding {
    Candle(QMatMul),
    Q8_0(Arc<Q8_0Matrix>),
}

impl Model {
    /// Loads a llama-family GGUF file.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let mut file = GgufFile::open(path, options.format)?;
        let config = ModelConfig::from_gguf_metadata(&file.content.metadata)?;
        // The vocabulary and merges are megabytes of small strings: free them before the
        // weights arrive (the tokenizer reads them separately).
        file.content.metadata = Default::default();
        let layers = options.layers.clone().unwrap_or(0..config.layer_count);
        if layers.start > layers.end || layers.end > config.layer_count {
            return Err(EngineError::LayerRange {
                start: layers.start,
                end: layers.end,
                first: 0,
                loaded: config.layer_count,
            });
        }
        let tied = !file.has_tensor("output.weight");
        let mut names = vec![
            "token_embd.weight".to_string(),
            "output_norm.weight".to_string(),
        ];
        if !tied {
            names.push("output.weight".into());
        }
        for layer in layers.clone() {
            names.extend(
                BLOCK_TENSORS
                    .iter()
                    .map(|suffix| format!("blk.{layer}.{suffix}")),
            );
        }
        file.show_progress(&names);

        let (hidden, vocab) = (config.hidden_size, config.vocab_size);
        let embedding_tensor = file.qtensor("token_embd.weight")?;
        check_shape("token_embd.weight", &embedding_tensor, vocab, hidden)?;
        let own_q8_0 =
            embedding_tensor.dtype() == GgmlDType::Q8_0 && options.format == WeightFormat::AsStored;
        let (embedding, tied_head) = if own_q8_0 {
            let matrix = Arc::new(Q8_0Matrix::from_qtensor(&embedding_tensor)?);
            (Embedding::Q8_0(matrix.clone()), Linear::Q8_0(matrix))
        } else {
            let tensor = Arc::new(embedding_tensor);
            (
                Embedding::Candle(QMatMul::from_arc(tensor.clone())?),
                Linear::Candle(QMatMul::from_arc(tensor)?),
            )
        };
        let lm_head = if tied {
            tied_head
        } else {
            Linear::new(file.matrix("output.weight", vocab, hidden)?, options.format)?
        };
        let final_norm = RmsNorm::new(
            file.vector("output_norm.weight", hidden)?,
            config.rms_norm_eps,
        )?;
        let blocks = layers
            .clone()
            .map(|layer| load_block(&mut file, &config, layer))
            .collect::<Result<Vec<_>>>()?;
        file.finish_progress();
        drop(file);
        release_freed_memory();
        let rope = RotaryEmbedding::new(
            config.head_dim(),
            config.rope_freq_base,
            config.context_length,
        )?;
        Ok(Self {
            embedding,
            config,
            blocks,
            first_layer: layers.start,
            final_norm,
            lm_head,
            rope,
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The blocks this process holds.
    pub fn loaded_layers(&self) -> Range<usize> {
        self.first_layer..self.first_layer + self.blocks.len()
    }

    /// An empty cache for a sequence through `layers`.
    pub fn new_cache(&self, layers: Range<usize>) -> KvCache {
        KvCache::new(layers)
    }

    /// Bytes of key/value cache a generation over every layer may need at most: its prompt
    /// and every token it may generate, within the context.
    pub fn worst_case_kv_bytes(&self, prompt_tokens: usize, max_tokens: usize) -> usize {
        let positions = prompt_tokens
            .saturating_add(max_tokens)
            .min(self.config.context_length);
        positions * self.kv_bytes_per_position(self.config.layer_count)
    }

    /// Bytes of keys and values one position takes in a cache of `layers` blocks (f16 keys
    /// and values of every key/value head).
    pub fn kv_bytes_per_position(&self, layers: usize) -> usize {
        layers * 2 * self.config.kv_head_count * self.config.head_dim() * KV_ELEMENT_BYTES
    }

    /// Token ids to hidden states.
    pub fn embed(&self, tokens: &[u32]) -> Result<Hidden> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if let Some(&token) = tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            return Err(EngineError::TokenOutOfRange {
                token,
                vocab_size: self.config.vocab_size,
            });
        }
        let values = match &self.embedding {
            Embedding::Q8_0(matrix) => matrix.dequantize_rows(tokens),
            Embedding::Candle(embedding) => {
                let ids = Tensor::new(tokens, &Device::Cpu)?;
                embedding.embedding(&ids)?.flatten_all()?.to_vec1()?
            }
        };
        Hidden::from_vec(values, self.config.hidden_size)
    }

    /// Runs blocks `layers` over `hidden`, whose first row sits at `position`. The cache must
    /// cover `layers` and hold at least `position` positions; positions from `position` on
    /// are dropped first, so replaying a suffix is a call with an earlier position.
    pub fn forward_layers(
        &self,
        hidden: &Hidden,
        layers: Range<usize>,
        position: usize,
        cache: &mut KvCache,
    ) -> Result<Hidden> {
        self.check_forward(hidden, layers.clone(), position, cache)?;
        cache.truncate(position);
        // Long inputs go through in chunks: same result (each chunk attends to the cached
        // ones before it), but attention scores stay chunk × positions instead of positions².
        let mut outputs = Vec::with_capacity(hidden.values.len());
        let mut start = 0;
        while start < hidden.positions() {
            let len = PREFILL_CHUNK.min(hidden.positions() - start);
            let mut rows = [Rows {
                len,
                position: position + start,
                cache: &mut *cache,
            }];
            outputs.extend(self.forward_rows(
                hidden.rows(start, len).to_vec(),
                layers.clone(),
                &mut rows,
            )?);
            start += len;
        }
        Hidden::from_vec(outputs, hidden.width)
    }

    /// What [`Model::forward_layers`] checks before running anything.
    pub(crate) fn check_forward(
        &self,
        hidden: &Hidden,
        layers: Range<usize>,
        position: usize,
        cache: &KvCache,
    ) -> Result<()> {
        let loaded = self.loaded_layers();
        if layers.start > layers.end || layers.start < loaded.start || layers.end > loaded.end {
            return Err(EngineError::LayerRange {
                start: layers.start,
                end: layers.end,
                first: loaded.start,
                loaded: loaded.len(),
            });
        }
        let cached_layers = cache.layers();
        if layers.start < cached_layers.start || layers.end > cached_layers.end {
            return Err(EngineError::LayerRange {
                start: layers.start,
                end: layers.end,
                first: cached_layers.start,
                loaded: cached_layers.len(),
            });
        }
        if hidden.width() != self.config.hidden_size {
            return Err(EngineError::HiddenSize {
                got: hidden.width(),
                expected: self.config.hidden_size,
            });
        }
        let needed = position + hidden.positions();
        if needed > self.config.context_length {
            return Err(EngineError::ContextOverflow {
                needed,
                context_length: self.config.context_length,
            });
        }
        for layer in layers.clone() {
            let cached = cache.layer_len(layer);
            if cached < position {
                return Err(EngineError::CacheGap {
                    layer,
                    cached,
                    position,
                });
            }
        }
        Ok(())
    }

    /// Runs blocks `layers` over `x` (rows of the hidden width): the rows of the sequences in
    /// `sequences` stacked in order, each continuing its own cache. The caller has checked
    /// ranges, widths and positions.
    pub(crate) fn forward_rows(
        &self,
        mut x: Vec<f32>,
        layers: Range<usize>,
        sequences: &mut [Rows<'_>],
    ) -> Result<Vec<f32>> {
        for layer in layers {
            let mut start = 0;
            let mut segments: Vec<Segment<'_>> = sequences
                .iter_mut()
                .map(|sequence| {
                    let rows = start..start + sequence.len;
                    start = rows.end;
                    Segment {
                        rows,
                        position: sequence.position,
                        cache: sequence.cache.layer_mut(layer),
                    }
                })
                .collect();
            self.blocks[layer - self.first_layer].forward(&mut x, &mut segments, &self.rope)?;
        }
        Ok(x)
    }

    /// Final norm and LM head over every row of `x` (rows of the hidden width): logits per
    /// row.
    pub(crate) fn head_rows(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.config.vocab_size;
        let logits = self.lm_head.forward(&self.final_norm.forward(x))?;
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }

    /// Final norm and LM head: logits over the vocabulary for the last position.
    pub fn head(&self, hidden: &Hidden) -> Result<Vec<f32>> {
        if hidden.width() != self.config.hidden_size {
            return Err(EngineError::HiddenSize {
                got: hidden.width(),
                expected: self.config.hidden_size,
            });
        }
        if hidden.positions() == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        let last = hidden.rows(hidden.positions() - 1, 1);
        Ok(self.head_rows(last)?.pop().expect("one row"))
    }
}

/// One sequence's part of a step: `len` rows whose first sits at `position`, continuing
/// `cache`.
pub(crate) struct Rows<'a> {
    pub(crate) len: usize,
    pub(crate) position: usize,
    pub(crate) cache: &'a mut KvCache,
}

/// Most positions of one sequence run through the blocks at once. Chunks start at multiples
/// of it from the first position of an input, whatever else runs in the same step.
pub const PREFILL_CHUNK: usize = 128;

const BLOCK_TENSORS: [&str; 9] = [
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
];

fn load_block(file: &mut GgufFile, config: &ModelConfig, layer: usize) -> Result<Block> {
    let name = |suffix: &str| format!("blk.{layer}.{suffix}");
    let hidden = config.hidden_size;
    let kv_width = config.kv_head_count * config.head_dim();
    let qkv = file.stacked(
        &[
            (&name("attn_q.weight"), hidden),
            (&name("attn_k.weight"), kv_width),
            (&name("attn_v.weight"), kv_width),
        ],
        hidden,
    )?;
    let output = file.linear(&name("attn_output.weight"), hidden, hidden)?;
    let gate_up = file.stacked(
        &[
            (&name("ffn_gate.weight"), config.ffn_size),
            (&name("ffn_up.weight"), config.ffn_size),
        ],
        hidden,
    )?;
    let down = file.linear(&name("ffn_down.weight"), hidden, config.ffn_size)?;
    Ok(Block {
        attention_norm: RmsNorm::new(
            file.vector(&name("attn_norm.weight"), hidden)?,
            config.rms_norm_eps,
        )?,
        attention: Attention::new(
            qkv,
            output,
            config.head_count,
            config.kv_head_count,
            config.head_dim(),
        ),
        mlp_norm: RmsNorm::new(
            file.vector(&name("ffn_norm.weight"), hidden)?,
            config.rms_norm_eps,
        )?,
        mlp: Mlp::new(gate_up, down),
    })
}

/// Hands the allocator's free memory back to the system. Loading frees every tensor as read
/// from the file once its blocks are regrouped (and a tokenizer's GGUF metadata once read);
/// glibc keeps large freed blocks in its heap (its mmap threshold grows with them), so
/// without this a node keeps ~16 MB it never uses. A no-op on other allocators.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the kernel; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn check_shape(name: &str, tensor: &QTensor, rows: usize, cols: usize) -> Result<()> {
    if tensor.shape().dims() != [rows, cols] {
        return Err(EngineError::Tensor {
            name: name.into(),
            reason: format!(
                "expected shape [{rows}, {cols}], found {:?}",
                tensor.shape().dims()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{tiny_model_file, TinyModelSpec};

    fn tiny(layers: Option<Range<usize>>) -> Model {
        let path = tiny_model_file(&TinyModelSpec::default()).unwrap();
        Model::load(
            &path,
            &LoadOptions {
                layers,
                ..Default::default()
            },
        )
        .unwrap()
    }

    const PROMPT: [u32; 9] = [1, 40, 75, 250, 3, 99, 100, 2, 17];

    fn full_forward(model: &Model, tokens: &[u32]) -> Vec<f32> {
        let layers = model.loaded_layers();
        let mut cache = model.new_cache(layers.clone());
        let hidden = model
            .forward_layers(&model.embed(tokens).unwrap(), layers, 0, &mut cache)
            .unwrap();
        model.head(&hidden).unwrap()
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_model_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Model>();
        shareable::<crate::Tokenizer>();
    }

    #[test]
    fn shapes_follow_the_config() {
        let model = tiny(None);
        let config = model.config();
        assert_eq!(
            (
                config.layer_count,
                config.hidden_size,
                config.head_count,
                config.kv_head_count
            ),
            (4, 64, 4, 2)
        );
        let hidden = model.embed(&PROMPT).unwrap();
        assert_eq!((hidden.positions(), hidden.width()), (PROMPT.len(), 64));
        let logits = full_forward(&model, &PROMPT);
        assert_eq!(logits.len(), config.vocab_size);
        assert!(logits.iter().all(|l| l.is_finite()));
    }

    #[test]
    fn decoding_with_the_cache_gives_the_logits_of_a_full_recompute() {
        let model = tiny(None);
        let layers = model.loaded_layers();
        let mut cache = model.new_cache(layers.clone());
        // Prefill a prefix, then one token at a time; each step must match recomputing the
        // whole prefix without a cache.
        let prefix = 4;
        let mut hidden = model
            .forward_layers(
                &model.embed(&PROMPT[..prefix]).unwrap(),
                layers.clone(),
                0,
                &mut cache,
            )
            .unwrap();
        for end in prefix..=PROMPT.len() {
            let cached = model.head(&hidden).unwrap();
            let recomputed = full_forward(&model, &PROMPT[..end]);
            assert!(
                max_difference(&cached, &recomputed) < 1e-4,
                "position {end}"
            );
            if end < PROMPT.len() {
                hidden = model
                    .forward_layers(
                        &model.embed(&PROMPT[end..end + 1]).unwrap(),
                        layers.clone(),
                        end,
                        &mut cache,
                    )
                    .unwrap();
            }
        }
        assert_eq!(cache.len(), PROMPT.len());
    }

    #[test]
    fn the_cache_grows_past_its_first_allocation() {
        let model = tiny(None);
        let tokens: Vec<u32> = (0..150).map(|i| (i * 37 % 250) as u32 + 3).collect();
        let layers = model.loaded_layers();
        let mut cache = model.new_cache(layers.clone());
        let mut last = None;
        for (position, token) in tokens.iter().enumerate() {
            last = Some(
                model
                    .forward_layers(
                        &model.embed(&[*token]).unwrap(),
                        layers.clone(),
                        position,
                        &mut cache,
                    )
                    .unwrap(),
            );
        }
        // 150 positions: past the cache's first allocation, and prefill in two chunks.
        assert!(
            max_difference(
                &model.head(&last.unwrap()).unwrap(),
                &full_forward(&model, &tokens)
            ) < 1e-4
        );
    }

    #[test]
    fn running_layer_ranges_one_after_another_equals_the_whole_range() {
        let model = tiny(None);
        let whole = full_forward(&model, &PROMPT);
        for split in 0..=4 {
            let mut first = model.new_cache(0..split);
            let mut second = model.new_cache(split..4);
            let hidden = model.embed(&PROMPT).unwrap();
            let hidden = model
                .forward_layers(&hidden, 0..split, 0, &mut first)
                .unwrap();
            // Hidden states travel between shards as plain vectors.
            let hidden = Hidden::from_vec(hidden.to_vec().unwrap(), 64).unwrap();
            let hidden = model
                .forward_layers(&hidden, split..4, 0, &mut second)
                .unwrap();
            assert_eq!(model.head(&hidden).unwrap(), whole, "split at {split}");
        }
    }

    #[test]
    fn shards_loaded_in_separate_models_compose_to_the_whole_model() {
        let whole = tiny(None);
        let front = tiny(Some(0..1));
        let back = tiny(Some(1..4));
        let mut front_cache = front.new_cache(0..1);
        let mut back_cache = back.new_cache(1..4);
        let hidden = front
            .forward_layers(&front.embed(&PROMPT).unwrap(), 0..1, 0, &mut front_cache)
            .unwrap();
        let hidden = back
            .forward_layers(&hidden, 1..4, 0, &mut back_cache)
            .unwrap();
        assert_eq!(back.head(&hidden).unwrap(), full_forward(&whole, &PROMPT));
    }

    #[test]
    fn replaying_from_an_earlier_position_overwrites_the_cache() {
        let model = tiny(None);
        let layers = model.loaded_layers();
        let mut cache = model.new_cache(layers.clone());
        model
            .forward_layers(
                &model.embed(&PROMPT).unwrap(),
                layers.clone(),
                0,
                &mut cache,
            )
            .unwrap();
        let replayed = model
            .forward_layers(
                &model.embed(&[5, 6]).unwrap(),
                layers.clone(),
                3,
                &mut cache,
            )
            .unwrap();
        let mut tokens = PROMPT[..3].to_vec();
        tokens.extend([5, 6]);
        assert!(
            max_difference(
                &model.head(&replayed).unwrap(),
                &full_forward(&model, &tokens)
            ) < 1e-4
        );
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn bad_inputs_are_rejected_with_clear_errors() {
        let shard = tiny(Some(1..3));
        let mut cache = shard.new_cache(1..3);
        let hidden = shard.embed(&PROMPT).unwrap();
        assert!(matches!(
            shard.forward_layers(&hidden, 0..2, 0, &mut cache),
            Err(EngineError::LayerRange { .. })
        ));
        assert!(matches!(
            shard.forward_layers(&hidden, 1..3, 4, &mut cache),
            Err(EngineError::CacheGap { .. })
        ));
        assert!(matches!(shard.embed(&[]), Err(EngineError::EmptyPrompt)));
        assert!(matches!(
            shard.embed(&[100_000]),
            Err(EngineError::TokenOutOfRange { .. })
        ));
        let narrow = Hidden::from_vec(vec![0.0; 32], 32).unwrap();
        assert!(matches!(
            shard.forward_layers(&narrow, 1..3, 0, &mut cache),
            Err(EngineError::HiddenSize { .. })
        ));
        let path = tiny_model_file(&TinyModelSpec::default()).unwrap();
        let too_many = LoadOptions {
            layers: Some(2..9),
            ..Default::default()
        };
        assert!(matches!(
            Model::load(&path, &too_many),
            Err(EngineError::LayerRange { .. })
        ));
        assert!(matches!(
            Model::load(
                Path::new("/nonexistent/model.gguf"),
                &LoadOptions::default()
            ),
            Err(EngineError::ModelFile { .. })
        ));
    }

    #[test]
    fn requantizing_q4_1_to_q8_0_keeps_the_logits_close() {
        let spec = TinyModelSpec {
            weight_dtype: candle_core::quantized::GgmlDType::Q4_1,
            ..Default::default()
        };
        let path = tiny_model_file(&spec).unwrap();
        let stored = Model::load(&path, &LoadOptions::default()).unwrap();
        let requantized = Model::load(
            &path,
            &LoadOptions {
                format: WeightFormat::Q4_1ToQ8_0,
                ..Default::default()
            },
        )
        .unwrap();
        let (a, b) = (
            full_forward(&stored, &PROMPT),
            full_forward(&requantized, &PROMPT),
        );
        let scale = a.iter().map(|x| x.abs()).fold(0.0, f32::max);
        assert!(
            max_difference(&a, &b) < 0.05 * scale,
            "difference {} of {scale}",
            max_difference(&a, &b)
        );
        assert_eq!(crate::argmax(&a), crate::argmax(&b));
    }
}

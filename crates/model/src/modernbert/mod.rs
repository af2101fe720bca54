//! ModernBERT backbone (answerdotai/ModernBERT and derivatives such as ColBERT-Zero), built
//! only from differentiable candle ops.
//!
//! Contract: [`ModernBert::load`] reads the tensors of a Hugging Face `ModernBertModel`
//! checkpoint (`embeddings.tok_embeddings.weight`, `embeddings.norm.weight`,
//! `layers.{i}.attn_norm.weight` (absent in layer 0, which uses the identity),
//! `layers.{i}.attn.Wqkv.weight`, `layers.{i}.attn.Wo.weight`, `layers.{i}.mlp_norm.weight`,
//! `layers.{i}.mlp.Wi.weight`, `layers.{i}.mlp.Wo.weight`, `final_norm.weight`, plus `.bias`
//! tensors when the config's `attention_bias` / `mlp_bias` / `norm_bias` flags are set), with
//! or without the `model.` prefix of `ModernBertForMaskedLM`. Missing tensors and wrong shapes
//! are reported by name. A VarMap-backed builder creates any absent variable (for training).
//!
//! [`Backbone::forward_t`] reproduces transformers' eager `ModernBertModel` forward
//! (transformers 5.3): LayerNorm'd token embeddings, then per layer
//! `x += Wo(attn(attn_norm(x)))` and `x += mlp(mlp_norm(x))`, then `final_norm`. Full layers
//! use the global RoPE theta and attend to all unpadded keys; sliding layers use the local
//! theta and attend to unpadded keys with `|i - j| <= local_attention / 2`. Padded query
//! rows are computed like any other; a row without any allowed key (padding farther than
//! the half window from every real token) follows `cfg.attn_implementation`: zero attention
//! output as torch SDPA (the default, PyLate's default on CPU) or uniform weights over all
//! keys as eager. Dropouts (embedding, attention probabilities and output, MLP) apply only
//! when `ctx.train`. The embedding row of `pad_token_id` gets no gradient, as
//! `nn.Embedding(padding_idx=pad_token_id)` in PyTorch.

mod config;
mod layers;

pub use config::{Activation, AttentionImpl, LayerType, ModernBertConfig};

use crate::backbone::Backbone;
use crate::nn::{dropout, ForwardCtx};
use crate::{ModelError, Result};
use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};
use layers::{attention_masks, rope_tables, Attention, Lin, Mlp, Norm};
use std::path::PathBuf;

const EMBEDDINGS_KEY: &str = "embeddings.tok_embeddings.weight";

/// One pre-norm encoder layer.
#[derive(Clone, Debug)]
struct EncoderLayer {
    attn_norm: Option<Norm>,
    attn: Attention,
    mlp_norm: Norm,
    mlp: Mlp,
    kind: LayerType,
}

/// The ModernBERT encoder; see the module docs.
#[derive(Clone, Debug)]
pub struct ModernBert {
    cfg: ModernBertConfig,
    tok_embeddings: Tensor,
    emb_norm: Norm,
    layers: Vec<EncoderLayer>,
    final_norm: Norm,
}

/// Tensor fetcher that turns VarBuilder failures into named errors.
struct Loader<'a> {
    vb: VarBuilder<'a>,
    source: PathBuf,
}

impl Loader<'_> {
    fn full_name(&self, name: &str) -> String {
        let p = self.vb.prefix();
        if p.is_empty() {
            name.to_string()
        } else {
            format!("{p}.{name}")
        }
    }

    fn get(&self, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
        match self.vb.get_with_hints(shape, name, init) {
            Ok(t) => Ok(t),
            Err(err) => {
                if !self.vb.contains_tensor(name) {
                    return Err(ModelError::MissingTensor {
                        name: self.full_name(name),
                        path: self.source.clone(),
                    });
                }
                if let Ok(t) = self.vb.get_unchecked(name) {
                    if t.dims() != shape {
                        return Err(ModelError::TensorShape {
                            name: self.full_name(name),
                            expected: shape.to_vec(),
                            actual: t.dims().to_vec(),
                        });
                    }
                }
                Err(err.into())
            }
        }
    }

    fn norm(&self, prefix: &str, cfg: &ModernBertConfig) -> Result<Norm> {
        let h = cfg.hidden_size;
        let weight = self.get(&[h], &format!("{prefix}.weight"), Init::Const(1.0))?;
        let bias = if cfg.norm_bias {
            Some(self.get(&[h], &format!("{prefix}.bias"), Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Norm {
            weight,
            bias,
            eps: cfg.norm_eps,
        })
    }

    fn lin(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Lin> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let weight = self.get(&[out, inp], &format!("{prefix}.weight"), init)?;
        let bias = if bias {
            Some(self.get(&[out], &format!("{prefix}.bias"), Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Lin { weight, bias })
    }
}

impl ModernBert {
    /// Loads the encoder from `vb` (see the module docs for tensor names).
    pub fn load(vb: VarBuilder, cfg: &ModernBertConfig) -> Result<ModernBert> {
        Self::load_from(vb, cfg, PathBuf::from("the ModernBERT weights"))
    }

    /// Like [`ModernBert::load`], naming `source` (e.g. the safetensors file) in errors.
    pub fn load_from(
        vb: VarBuilder,
        cfg: &ModernBertConfig,
        source: PathBuf,
    ) -> Result<ModernBert> {
        let vb = if !vb.contains_tensor(EMBEDDINGS_KEY)
            && vb.contains_tensor(&format!("model.{EMBEDDINGS_KEY}"))
        {
            vb.pp("model")
        } else {
            vb
        };
        let ld = Loader { vb, source };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let tok_embeddings = ld.get(
            &[cfg.vocab_size, h],
            EMBEDDINGS_KEY,
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let emb_norm = ld.norm("embeddings.norm", cfg)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (l, kind) in cfg.layer_types.iter().enumerate() {
            let p = format!("layers.{l}");
            let attn_norm = if l == 0 {
                None
            } else {
                Some(ld.norm(&format!("{p}.attn_norm"), cfg)?)
            };
            let attn = Attention {
                wqkv: ld.lin(&format!("{p}.attn.Wqkv"), 3 * h, h, cfg.attention_bias)?,
                wo: ld.lin(&format!("{p}.attn.Wo"), h, h, cfg.attention_bias)?,
                heads: cfg.num_attention_heads,
                head_dim: cfg.head_dim(),
                dropout: cfg.attention_dropout,
            };
            let mlp = Mlp {
                wi: ld.lin(&format!("{p}.mlp.Wi"), 2 * i, h, cfg.mlp_bias)?,
                wo: ld.lin(&format!("{p}.mlp.Wo"), h, i, cfg.mlp_bias)?,
                act: cfg.hidden_activation,
                intermediate: i,
                dropout: cfg.mlp_dropout,
            };
            let mlp_norm = ld.norm(&format!("{p}.mlp_norm"), cfg)?;
            layers.push(EncoderLayer {
                attn_norm,
                attn,
                mlp_norm,
                mlp,
                kind: *kind,
            });
        }
        let final_norm = ld.norm("final_norm", cfg)?;
        Ok(ModernBert {
            cfg: cfg.clone(),
            tok_embeddings,
            emb_norm,
            layers,
            final_norm,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ModernBertConfig {
        &self.cfg
    }

    /// The token embedding matrix `[vocab, hidden]`.
    pub fn token_embeddings(&self) -> &Tensor {
        &self.tok_embeddings
    }

    /// Embedding lookup; the `pad_token_id` row is detached (no gradient), like PyTorch's
    /// `padding_idx`.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let x = self.tok_embeddings.index_select(&flat, 0)?;
        let x = match self.cfg.pad_token_id {
            Some(pad) if (pad as usize) < self.cfg.vocab_size => {
                let is_pad = flat.eq(pad)?.to_dtype(x.dtype())?.unsqueeze(1)?;
                let n_pad = is_pad.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                if n_pad > 0.0 {
                    let frozen = self.tok_embeddings.detach().index_select(&flat, 0)?;
                    let keep = is_pad.affine(-1.0, 1.0)?;
                    x.broadcast_mul(&keep)?
                        .add(&frozen.broadcast_mul(&is_pad)?)?
                } else {
                    x
                }
            }
            _ => x,
        };
        Ok(x.reshape((b, t, self.cfg.hidden_size))?)
    }

    fn check_inputs(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = ids.dims2().map_err(|_| {
            ModelError::Invalid(format!(
                "ModernBERT input_ids: expected [batch, seq], found {:?}",
                ids.dims()
            ))
        })?;
        if mask.dims() != [b, t] {
            return Err(ModelError::Invalid(format!(
                "ModernBERT attention_mask: expected shape [{b}, {t}] like input_ids, found {:?}",
                mask.dims()
            )));
        }
        let ids = ids.to_dtype(DType::U32)?;
        let mask = mask.to_dtype(DType::U32)?;
        if b * t > 0 {
            let max = ids.max_all()?.to_scalar::<u32>()?;
            if max as usize >= self.cfg.vocab_size {
                return Err(ModelError::Invalid(format!(
                    "ModernBERT input_ids: token id {max} is out of the vocabulary (vocab_size {})",
                    self.cfg.vocab_size
                )));
            }
        }
        Ok((ids, mask))
    }
}

impl Backbone for ModernBert {
    fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let (ids, mask) = self.check_inputs(input_ids, attention_mask)?;
        let (b, t) = ids.dims2()?;
        if b == 0 || t == 0 {
            return Ok(Tensor::zeros(
                (b, t, self.cfg.hidden_size),
                DType::F32,
                ids.device(),
            )?);
        }
        let dev = ids.device();
        let x = self.emb_norm.forward(&self.embed(&ids)?)?;
        let mut x = dropout(&x, self.cfg.embedding_dropout, ctx)?;
        let (full_mask, sliding_mask) = attention_masks(&mask, self.cfg.sliding_window())?;
        let zero_empty_rows = self.cfg.attn_implementation == AttentionImpl::Sdpa;
        let hd = self.cfg.head_dim();
        let (gcos, gsin) = rope_tables(self.cfg.global_rope_theta, hd, t, dev)?;
        let (lcos, lsin) = rope_tables(self.cfg.local_rope_theta, hd, t, dev)?;
        for layer in &self.layers {
            let (cos, sin, mask) = match layer.kind {
                LayerType::Full => (&gcos, &gsin, &full_mask),
                LayerType::Sliding => (&lcos, &lsin, &sliding_mask),
            };
            let h = match &layer.attn_norm {
                Some(n) => n.forward(&x)?,
                None => x.clone(),
            };
            x = x.add(
                &layer
                    .attn
                    .forward(&h, cos, sin, mask, zero_empty_rows, ctx)?,
            )?;
            let m = layer.mlp.forward(&layer.mlp_norm.forward(&x)?, ctx)?;
            x = x.add(&m)?;
        }
        Ok(self.final_norm.forward(&x)?.to_dtype(DType::F32)?)
    }

    fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }
}

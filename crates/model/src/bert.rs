//! BERT encoder (HF `BertModel` semantics) built only from differentiable ops.
//!
//! Contract: [`Bert::load`] reads the canonical (prefix-free) HF tensor names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.{i}.attention.self.query.weight`,
//! ...) from a `VarBuilder`; callers strip `bert.` prefixes and drop the int64
//! `embeddings.position_ids` buffer beforehand (see `checkpoint.rs`). The pooler is not
//! used. `forward_t` computes word + absolute position + token-type-0 embeddings,
//! LayerNorm, then `num_hidden_layers` post-norm blocks with eager attention (masked keys
//! get `finfo(f32).min` added to their scores, exactly as HF eager). Dropout
//! (`hidden_dropout_prob`, `attention_probs_dropout_prob`) is applied only when
//! `ctx.train`. The word-embedding row of `pad_token_id` gets no gradient (PyTorch
//! `padding_idx`).

use crate::config::{opt_f64, opt_str, opt_usize, req_usize};
use crate::nn::{attention, dropout, gelu, layer_norm, linear, ForwardCtx};
use crate::weights::get_checked;
use crate::{Backbone, ModelError, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Hidden activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HiddenAct {
    /// Exact (erf) GELU, HF `"gelu"`.
    Gelu,
    /// Tanh-approximated GELU, HF `"gelu_new"` / `"gelu_pytorch_tanh"`.
    GeluTanh,
    /// ReLU.
    Relu,
}

/// The fields of a BERT `config.json` that shape the network.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: HiddenAct,
    pub hidden_dropout_prob: f32,
    pub attention_probs_dropout_prob: f32,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// `padding_idx` of the word embeddings (HF default 0): that row gets no gradient.
    pub pad_token_id: Option<u32>,
}

impl BertConfig {
    /// Parses a BERT `config.json` value; `path` is used in error messages.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let act = opt_str(v, "hidden_act", path)?.unwrap_or_else(|| "gelu".into());
        let hidden_act = match act.as_str() {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => HiddenAct::GeluTanh,
            "relu" => HiddenAct::Relu,
            other => {
                return Err(ModelError::Unsupported(format!(
                    "{}: hidden_act `{other}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)",
                    path.display()
                )))
            }
        };
        if let Some(pe) = opt_str(v, "position_embedding_type", path)? {
            if pe != "absolute" {
                return Err(ModelError::Unsupported(format!(
                    "{}: position_embedding_type `{pe}` (only `absolute`)",
                    path.display()
                )));
            }
        }
        let cfg = Self {
            vocab_size: req_usize(v, "vocab_size", path)?,
            hidden_size: req_usize(v, "hidden_size", path)?,
            num_hidden_layers: req_usize(v, "num_hidden_layers", path)?,
            num_attention_heads: req_usize(v, "num_attention_heads", path)?,
            intermediate_size: req_usize(v, "intermediate_size", path)?,
            hidden_act,
            hidden_dropout_prob: opt_f64(v, "hidden_dropout_prob", path)?.unwrap_or(0.1) as f32,
            attention_probs_dropout_prob: opt_f64(v, "attention_probs_dropout_prob", path)?
                .unwrap_or(0.1) as f32,
            max_position_embeddings: opt_usize(v, "max_position_embeddings", path)?.unwrap_or(512),
            type_vocab_size: opt_usize(v, "type_vocab_size", path)?.unwrap_or(2),
            layer_norm_eps: opt_f64(v, "layer_norm_eps", path)?.unwrap_or(1e-12),
            pad_token_id: match v.get("pad_token_id") {
                Some(Value::Null) => None,
                Some(_) => opt_usize(v, "pad_token_id", path)?.map(|p| p as u32),
                None => Some(0),
            },
        };
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(ModelError::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    cfg.hidden_size, cfg.num_attention_heads
                ),
            });
        }
        Ok(cfg)
    }
}

#[derive(Debug)]
struct Lin {
    w: Tensor,
    b: Option<Tensor>,
}

impl Lin {
    fn load(vb: &VarBuilder, name: &str, out: usize, inp: usize, src: &Path) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self {
            w: get_checked(&vb, &[out, inp], "weight", src)?,
            b: Some(get_checked(&vb, &[out], "bias", src)?),
        })
    }
    fn fwd(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.w, self.b.as_ref())
    }
}

#[derive(Debug)]
struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl Norm {
    fn load(vb: &VarBuilder, name: &str, h: usize, eps: f64, src: &Path) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self {
            w: get_checked(&vb, &[h], "weight", src)?,
            b: get_checked(&vb, &[h], "bias", src)?,
            eps,
        })
    }
    fn fwd(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.w, Some(&self.b), self.eps)
    }
}

#[derive(Debug)]
struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    attn_out: Lin,
    attn_norm: Norm,
    inter: Lin,
    out: Lin,
    out_norm: Norm,
}

/// A BERT encoder; see the module docs.
#[derive(Debug)]
pub struct Bert {
    cfg: BertConfig,
    word: Tensor,
    pos: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Builds the encoder from prefix-free tensor names; `source` names the weights file
    /// in error messages.
    pub fn load(vb: VarBuilder, cfg: &BertConfig, source: &Path) -> Result<Self> {
        let src: PathBuf = source.to_path_buf();
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let e = vb.pp("embeddings");
        let word = get_checked(&e, &[cfg.vocab_size, h], "word_embeddings.weight", &src)?;
        let pos = get_checked(
            &e,
            &[cfg.max_position_embeddings, h],
            "position_embeddings.weight",
            &src,
        )?;
        let token_type = get_checked(
            &e,
            &[cfg.type_vocab_size, h],
            "token_type_embeddings.weight",
            &src,
        )?;
        let emb_norm = Norm::load(&e, "LayerNorm", h, cfg.layer_norm_eps, &src)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let lv = vb.pp(format!("encoder.layer.{l}"));
            let a = lv.pp("attention");
            layers.push(Layer {
                q: Lin::load(&a, "self.query", h, h, &src)?,
                k: Lin::load(&a, "self.key", h, h, &src)?,
                v: Lin::load(&a, "self.value", h, h, &src)?,
                attn_out: Lin::load(&a, "output.dense", h, h, &src)?,
                attn_norm: Norm::load(&a, "output.LayerNorm", h, cfg.layer_norm_eps, &src)?,
                inter: Lin::load(&lv, "intermediate.dense", i, h, &src)?,
                out: Lin::load(&lv, "output.dense", h, i, &src)?,
                out_norm: Norm::load(&lv, "output.LayerNorm", h, cfg.layer_norm_eps, &src)?,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            word,
            pos,
            token_type,
            emb_norm,
            layers,
        })
    }

    /// The configuration this encoder was built with.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Word-embedding lookup of flat ids; rows of `pad_token_id` come from a detached copy
    /// so that row gets no gradient, like PyTorch's `nn.Embedding(padding_idx=...)`.
    fn embed_words(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.word.index_select(ids, 0)?;
        let Some(pad) = self
            .cfg
            .pad_token_id
            .filter(|p| (*p as usize) < self.cfg.vocab_size)
        else {
            return Ok(x);
        };
        let is_pad = ids.eq(pad)?.to_dtype(x.dtype())?.unsqueeze(1)?;
        if is_pad.sum_all()?.to_scalar::<f32>()? == 0.0 {
            return Ok(x);
        }
        let frozen = self.word.detach().index_select(ids, 0)?;
        let keep = is_pad.affine(-1.0, 1.0)?;
        Ok(x.broadcast_mul(&keep)?
            .add(&frozen.broadcast_mul(&is_pad)?)?)
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.hidden_act {
            HiddenAct::Gelu => gelu(x)?,
            HiddenAct::GeluTanh => x.gelu()?,
            HiddenAct::Relu => x.relu()?,
        })
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        key_bias: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let q = layer.q.fwd(x)?;
        let k = layer.k.fwd(x)?;
        let v = layer.v.fwd(x)?;
        attention(
            &q,
            &k,
            &v,
            Some(key_bias),
            self.cfg.num_attention_heads,
            self.cfg.attention_probs_dropout_prob,
            ctx,
        )
    }
}

impl Backbone for Bert {
    fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if t > self.cfg.max_position_embeddings {
            return Err(ModelError::Invalid(format!(
                "sequence length {t} exceeds max_position_embeddings {}",
                self.cfg.max_position_embeddings
            )));
        }
        let h = self.cfg.hidden_size;
        let dev = input_ids.device();
        let ids = input_ids.to_dtype(DType::U32)?.flatten_all()?;
        let words = self.embed_words(&ids)?.reshape((b, t, h))?;
        let pos = self.pos.narrow(0, 0, t)?;
        let tt = self.token_type.narrow(0, 0, 1)?;
        let x = words.broadcast_add(&pos)?.broadcast_add(&tt)?;
        let x = self.emb_norm.fwd(&x)?;
        let mut x = dropout(&x, self.cfg.hidden_dropout_prob, ctx)?;
        // (1 - mask) * finfo(f32).min per key, shaped [b, t].
        let m = attention_mask.to_dtype(DType::F32)?.to_device(dev)?;
        let bias = m
            .affine(-(f32::MIN as f64), f32::MIN as f64)?
            .reshape((b, t))?;
        let p = self.cfg.hidden_dropout_prob;
        for layer in &self.layers {
            let a = self.attention(layer, &x, &bias, ctx)?;
            let a = dropout(&layer.attn_out.fwd(&a)?, p, ctx)?;
            let x1 = layer.attn_norm.fwd(&(a + &x)?)?;
            let f = self.act(&layer.inter.fwd(&x1)?)?;
            let f = dropout(&layer.out.fwd(&f)?, p, ctx)?;
            x = layer.out_norm.fwd(&(f + &x1)?)?;
        }
        Ok(x)
    }

    fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }
}

"""A Llama-family forward pass over a KV cache of independent slots, each at its own position.

transformers' static cache keeps one position for the whole batch, so a row that finishes early idles until the
longest row ends. Here every slot (one batch row of the cache) has its own position: a finished slot takes a new
prompt at once (``prefill``) while the others keep decoding (``decode``). The layers' own modules do the
projections, norms and MLP (so a LoRA injected by ``row_lora`` or a 4-bit layer works unchanged); only the cache
bookkeeping and the attention are written here, with the decode attention of ``decode_attention`` (each cached
key/value head read once per step).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Architectures whose decoder layer is Llama's (norm, attention with q/k/v/o projections, norm, MLP, RoPE).
SLOT_ARCHITECTURES = ("llama", "mistral", "qwen2")


def slot_support(model: nn.Module) -> str | None:
    """None when ``model`` can run on slots, else why not (in words)."""
    config = model.config
    kind = getattr(config, "model_type", "")
    if kind not in SLOT_ARCHITECTURES:
        return f"the batch engine supports {', '.join(SLOT_ARCHITECTURES)} models, not {kind or 'this one'}"
    if getattr(config, "use_sliding_window", False) or (kind == "mistral" and getattr(config, "sliding_window",
                                                                                      None)):
        return "the batch engine has no sliding-window attention"
    return None


def cache_bytes_per_slot(config: Any, length: int, dtype: torch.dtype) -> int:
    """Key and value memory of one slot of ``length`` positions."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * config.num_hidden_layers * config.num_key_value_heads * length * head_dim * element


class SlotModel:
    """``slots`` cache rows of ``length`` positions for one loaded causal LM."""

    def __init__(self, model: nn.Module, slots: int, length: int):
        why = slot_support(model)
        if why:
            raise ValueError(why)
        config = model.config
        inner = model.model
        self.model, self.layers, self.embed = model, inner.layers, inner.embed_tokens
        self.norm, self.rotary, self.lm_head = inner.norm, inner.rotary_emb, model.lm_head
        self.slots, self.length = slots, length
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.kv_heads, self.heads = config.num_key_value_heads, config.num_attention_heads
        param = next(p for p in model.parameters() if p.dtype.is_floating_point)
        self.dtype = model.lm_head.weight.dtype if model.lm_head.weight.dtype.is_floating_point else param.dtype
        self.device = model.lm_head.weight.device
        shape = (slots, self.kv_heads, length, self.head_dim)
        self.keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        for tensor in (*self.keys, *self.values):
            torch._dynamo.mark_static_address(tensor)  # a compiled step writes them in place, by address
        self.rows = torch.arange(slots, device=self.device)
        self.places = torch.arange(length, device=self.device)

    def _qkv(self, layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        attn = layer.self_attn
        rows, steps, _ = x.shape
        q = attn.q_proj(x).view(rows, steps, -1, self.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(rows, steps, -1, self.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(rows, steps, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return q, k, v

    def _finish_layer(self, layer: nn.Module, hidden: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        rows, steps = hidden.shape[:2]
        hidden = hidden + layer.self_attn.o_proj(attended.transpose(1, 2).reshape(rows, steps, -1))
        return hidden + layer.mlp(layer.post_attention_layernorm(hidden))

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One step for every slot: ``tokens[i]`` at ``positions[i]`` of slot i; returns float logits (slots, vocab).

        A slot attends to its own positions up to ``positions[i]``; what an idle slot computes is ignored.
        """
        hidden = self.embed(tokens[:, None])
        cos, sin = self.rotary(hidden, positions[:, None])
        visible = (self.places[None, :] <= positions[:, None])[:, None, None, :]  # (slots, 1, 1, length)
        group = self.heads // self.kv_heads
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, layer.input_layernorm(hidden), cos, sin)
            self.keys[i][self.rows, :, positions] = k[:, :, 0]
            self.values[i][self.rows, :, positions] = v[:, :, 0]
            # Query head h reads key/value head h // group: one matmul per group instead of a copied cache.
            grouped = q.reshape(self.slots, self.kv_heads, group, self.head_dim)
            scores = torch.matmul(grouped, self.keys[i].transpose(-1, -2)).float() * layer.self_attn.scaling
            probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).to(self.dtype)
            attended = torch.matmul(probs, self.values[i]).reshape(self.slots, self.heads, 1, self.head_dim)
            hidden = self._finish_layer(layer, hidden, attended)
        return self.lm_head(self.norm(hidden[:, -1])).float()

    def prefill(self, ids: torch.Tensor, lengths: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Write the prompts ``ids`` (rows right-padded to one length) into ``slots`` from position 0; returns the
        float logits after each prompt's last real token (rows, vocab).

        Padding sits after the real tokens, so causal attention never lets a real token see it; the cache
        positions it fills are overwritten by decoding before any query can see them.
        """
        rows, steps = ids.shape
        hidden = self.embed(ids)
        positions = self.places[:steps][None, :].expand(rows, steps)
        cos, sin = self.rotary(hidden, positions)
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, layer.input_layernorm(hidden), cos, sin)
            self.keys[i][slots, :, :steps] = k
            self.values[i][slots, :, :steps] = v
            attended = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True,
                                                                  scale=layer.self_attn.scaling)
            hidden = self._finish_layer(layer, hidden, attended)
        last = hidden[torch.arange(rows, device=hidden.device), lengths - 1]
        return self.lm_head(self.norm(last)).float()

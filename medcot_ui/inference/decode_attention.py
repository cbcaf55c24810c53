"""Attention for Compare's decode steps that reads each cached key/value head once.

Llama-family models share one key/value head between several query heads (8 KV heads for 32 query heads in an
8B). transformers' SDPA path cannot use the GPU kernels' grouped-query mode when a mask is passed, and a static
cache always passes one, so every decode step copies the whole cache four times over (``repeat_kv``) before
attending: for two rows over a 2,048-slot cache of an 8B that is about 2 GB of memory traffic per token, a
large part of a step that is otherwise bound by reading the weights once.

With one query token per row, the query heads of a group can be the rows of one matmul against their shared
key head instead: ``(rows, kv_heads, group, dim) @ (rows, kv_heads, dim, slots)``. Same arithmetic, no copy.
Prompts (more than one query token) still go through transformers' SDPA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

NAME = "medcot_grouped_decode"


def grouped_decode_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, scaling: float | None = None,
                             dropout: float = 0.0, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """An ``AttentionInterface`` function: grouped matmuls for one query token, SDPA otherwise."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows, heads, q_length, dim = query.shape
    if q_length != 1 or dropout:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    kv_heads = key.shape[1]
    grouped = query.reshape(rows, kv_heads, heads // kv_heads, dim)  # query head h reads KV head h // group
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * (dim**-0.5 if scaling is None else scaling)
    if attention_mask is not None:  # (rows, 1, 1, slots): True (or 0.0) where a slot may be attended
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # (rows, kv_heads, group, dim)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None


def use_grouped_decode_attention(model: Any) -> bool:
    """Switch a transformers model that attends with SDPA to this function; returns whether it was switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False  # eager / flash / a 4-bit kernel path chosen on purpose: left as it is
    AttentionInterface.register(NAME, grouped_decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the same boolean masks SDPA gets
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME

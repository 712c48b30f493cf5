"""What the explorer needs to know about a vision transformer: its token grid and its
attention. Read from timm's layout (``patch_embed.grid_size``, ``num_prefix_tokens``,
``blocks[i].attn`` with ``qkv``, ``num_heads``, ``scale``), duck-typed, so any model laid out
the same way is understood; anything else is "not a token transformer" (None)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TokenGrid:
    prefix: int                  # class / register tokens before the patch tokens
    grid: tuple[int, int]        # patch tokens as rows x columns
    pool: str                    # "token": the class token feeds the head; else e.g. "avg"
    blocks: tuple[str, ...]      # names of the transformer blocks, in order
    attentions: tuple[str, ...]  # names of their softmax-attention modules


def is_softmax_attention(module: nn.Module) -> bool:
    """timm-style self-attention (qkv projection, heads, softmax) or torch's own."""
    return isinstance(module, nn.MultiheadAttention) or (
        hasattr(module, "qkv") and hasattr(module, "num_heads") and hasattr(module, "scale"))


def token_grid(model: nn.Module) -> TokenGrid | None:
    """The token layout of a ViT-like model, None for anything else."""
    embed = getattr(model, "patch_embed", None)
    blocks = getattr(model, "blocks", None)
    grid = getattr(embed, "grid_size", None)
    if embed is None or blocks is None or grid is None or getattr(model, "dynamic_img_size", False):
        return None
    names = dict((m, n) for n, m in model.named_modules())
    block_names = tuple(names[b] for b in blocks)
    attentions = tuple(names[b.attn] for b in blocks
                       if hasattr(b, "attn") and is_softmax_attention(b.attn)
                       and not isinstance(b.attn, nn.MultiheadAttention))
    if not block_names or len(attentions) != len(block_names):
        return None
    return TokenGrid(int(getattr(model, "num_prefix_tokens", 1)), (int(grid[0]), int(grid[1])),
                     str(getattr(model, "global_pool", "token")), block_names, attentions)


def tokens_to_maps(tokens: torch.Tensor, layout: TokenGrid) -> torch.Tensor:
    """[N, T, D] tokens -> [N, D, rows, cols]: the patch tokens on their 2-D grid."""
    n, t, d = tokens.shape
    rows, cols = layout.grid
    if t != layout.prefix + rows * cols:
        raise ValueError(f"{t} tokens do not make {layout.prefix} prefix tokens and a "
                         f"{rows} x {cols} grid")
    return tokens[:, layout.prefix:].reshape(n, rows, cols, d).permute(0, 3, 1, 2)


def attention_probabilities(attn: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) [N, heads, T, T] of a timm-style attention module on its input
    tokens, recomputed from its own projections (whatever kernel its forward uses)."""
    n, t, _ = tokens.shape
    head_dim = getattr(attn, "head_dim", None) or attn.qkv.out_features // (3 * attn.num_heads)
    qkv = attn.qkv(tokens).reshape(n, t, 3, attn.num_heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    q = attn.q_norm(q) if hasattr(attn, "q_norm") else q
    k = attn.k_norm(k) if hasattr(attn, "k_norm") else k
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)

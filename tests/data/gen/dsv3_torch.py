"""An independent pure-PyTorch DeepSeek-V3 (naive MLA, DeepSeekMoE, one MTP chain) with the
training contract used by tests/data/gen/train_reference.py and bench/pytorch_train_step.py.

Written from the papers and the project's conventions, not from transformers' modeling code:
  * parameters carry the checkpoint names (model.layers.{l}.self_attn.q_a_proj.weight, per-expert
    model.layers.{l}.mlp.experts.{e}.gate_proj.weight, ...); the MTP modules sit at
    model.layers.{num_hidden_layers + k - 1} with enorm / hnorm / eh_proj / shared_head.norm;
    their shared_head.head and embed_tokens are the main lm_head / embed_tokens (one parameter);
  * RMSNorm: x * rsqrt(mean(x^2) + eps) * w;
  * RoPE on interleaved pairs (x[2j], x[2j+1]), cos/sin multiplied by the YaRN attention factor;
    softmax scale 1/sqrt(dn + dr) times mscale(factor, mscale_all_dim)^2;
  * routing (router.cpp): s = sigmoid(u e), biased = s + b, group score = sum of the top-2 biased,
    keep topk_group groups (others -inf), top-K on biased, gate = s / (sum_chosen s + 1e-20) * R;
    selection carries no gradient, the gate values do;
  * MTP module k: eh_proj([enorm(Emb(x_{t+k})); hnorm(h^{k-1}_t)]) -> block -> shared_head.norm
    -> shared lm_head, at positions 0..T-1-k; h^0 = main hidden after model.norm.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cfg:
    def __init__(self, raw):
        self.raw = raw
        g = raw.get
        self.vocab = raw["vocab_size"]
        self.d = raw["hidden_size"]
        self.inter = raw["intermediate_size"]
        self.moe_inter = raw["moe_intermediate_size"]
        self.L = raw["num_hidden_layers"]
        self.H = raw["num_attention_heads"]
        self.q_lora = g("q_lora_rank") or 0
        self.dc = raw["kv_lora_rank"]
        self.dn = raw["qk_nope_head_dim"]
        self.dr = raw["qk_rope_head_dim"]
        self.dv = raw["v_head_dim"]
        self.E = raw["n_routed_experts"]
        self.n_shared = g("n_shared_experts") or 0
        self.K = raw["num_experts_per_tok"]
        self.G = g("n_group", 1) or 1
        self.topk_group = g("topk_group", 1) or 1
        self.first_dense = g("first_k_dense_replace", 0)
        self.moe_freq = g("moe_layer_freq", 1)
        self.R = g("routed_scaling_factor", 1.0)
        self.norm_topk = g("norm_topk_prob", True)
        assert g("scoring_func", "sigmoid") == "sigmoid"
        assert g("topk_method", "noaux_tc") == "noaux_tc"
        self.eps = g("rms_norm_eps", 1e-6)
        self.theta = g("rope_theta", 10000.0)
        self.max_pos = g("max_position_embeddings", 4096)
        self.D = g("num_nextn_predict_layers", 0) or 0
        self.rope = g("rope_scaling") or g("rope_parameters")

    def is_moe(self, l):
        # MTP blocks (l >= L) are MoE blocks.
        return self.E > 0 and l >= self.first_dense and (l >= self.L or l % self.moe_freq == 0)

    @staticmethod
    def load(path):
        with open(path) as f:
            return Cfg(json.load(f))


def yarn_mscale(factor, m):
    return 1.0 if factor <= 1.0 else 0.1 * m * math.log(factor) + 1.0


def rope_tables(c, T, dtype):
    """cos, sin [T, dr/2] (already times the attention factor) and the softmax scale, float64."""
    dr = c.dr
    half = dr // 2
    j = torch.arange(half, dtype=torch.float64)
    pos_freq = c.theta ** (2 * j / dr)
    inv = 1.0 / pos_freq
    scale = 1.0 / math.sqrt(c.dn + dr)
    att = 1.0
    y = c.rope
    if y is not None and (y.get("rope_type") or y.get("type")) == "yarn":
        factor = y.get("factor", c.max_pos / y.get("original_max_position_embeddings", 4096))
        orig = y.get("original_max_position_embeddings", 4096)
        bf, bs = y.get("beta_fast", 32.0), y.get("beta_slow", 1.0)

        def corr_dim(rot):
            return dr * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(c.theta))

        low = max(math.floor(corr_dim(bf)), 0.0)
        high = min(math.ceil(corr_dim(bs)), float(dr - 1))
        if low == high:
            high += 0.001
        ramp = ((j - low) / (high - low)).clamp(0, 1)
        extrap = 1.0 - ramp
        inv = (1.0 / (factor * pos_freq)) * (1 - extrap) + (1.0 / pos_freq) * extrap
        m, mad = y.get("mscale", 0.0) or 0.0, y.get("mscale_all_dim", 0.0) or 0.0
        if y.get("attention_factor"):
            att = y["attention_factor"]
        elif m and mad:
            att = yarn_mscale(factor, m) / yarn_mscale(factor, mad)
        else:
            att = yarn_mscale(factor, 1.0)
        if mad and factor > 1.0:
            ms = 0.1 * mad * math.log(factor) + 1.0
            scale *= ms * ms
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return (torch.cos(ang) * att).to(dtype), (torch.sin(ang) * att).to(dtype), scale


def apply_rope(x, cos, sin):
    """x [..., T, heads, dr]; rotates interleaved pairs (x[2j], x[2j+1]) by position t."""
    xp = x.unflatten(-1, (-1, 2))
    re, im = xp[..., 0], xp[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]  # [T, 1, dr/2]
    return torch.stack((re * c - im * s, re * s + im * c), dim=-1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def linear(i, o):
    return nn.Linear(i, o, bias=False)


class MLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = linear(d, inter)
        self.up_proj = linear(d, inter)
        self.down_proj = linear(inter, d)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MLA(nn.Module):
    use_sdpa = False  # the benchmark switches to F.scaled_dot_product_attention

    def __init__(self, c):
        super().__init__()
        self.c = c
        H, dn, dr, dv, dc = c.H, c.dn, c.dr, c.dv, c.dc
        if c.q_lora:
            self.q_a_proj = linear(c.d, c.q_lora)
            self.q_a_layernorm = RMSNorm(c.q_lora, c.eps)
            self.q_b_proj = linear(c.q_lora, H * (dn + dr))
        else:
            self.q_proj = linear(c.d, H * (dn + dr))
        self.kv_a_proj_with_mqa = linear(c.d, dc + dr)
        self.kv_a_layernorm = RMSNorm(dc, c.eps)
        self.kv_b_proj = linear(dc, H * (dn + dv))
        self.o_proj = linear(H * dv, c.d)

    def forward(self, x, cos, sin, scale):
        c = self.c
        B, T, _ = x.shape
        H, dn, dr, dv, dc = c.H, c.dn, c.dr, c.dv, c.dc
        if c.q_lora:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        else:
            q = self.q_proj(x)
        q = q.view(B, T, H, dn + dr)
        q_nope, q_pe = q[..., :dn], apply_rope(q[..., dn:], cos, sin)
        kv = self.kv_a_proj_with_mqa(x)
        ckv = self.kv_a_layernorm(kv[..., :dc])
        k_pe = apply_rope(kv[..., dc:].unsqueeze(2), cos, sin)  # [B, T, 1, dr], shared by heads
        kvb = self.kv_b_proj(ckv).view(B, T, H, dn + dv)
        k_nope, v = kvb[..., :dn], kvb[..., dn:]
        qh = torch.cat([q_nope, q_pe], -1).transpose(1, 2)  # [B, H, T, dn+dr]
        kh = torch.cat([k_nope, k_pe.expand(B, T, H, dr)], -1).transpose(1, 2)
        vh = v.transpose(1, 2)  # [B, H, T, dv]
        if MLA.use_sdpa:
            o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
        else:
            s = (qh @ kh.transpose(-1, -2)) * scale
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            s = s.masked_fill(mask, float("-inf"))
            o = torch.softmax(s, dim=-1) @ vh
        return self.o_proj(o.transpose(1, 2).reshape(B, T, H * dv))


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c.E, c.d))
        self.register_buffer("e_score_correction_bias", torch.zeros(c.E))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.gate = Gate(c)
        self.experts = nn.ModuleList(MLP(c.d, c.moe_inter) for _ in range(c.E))
        if c.n_shared:
            self.shared_experts = MLP(c.d, c.moe_inter * c.n_shared)

    def route(self, s, use_bias, rec):
        """Selection only (no gradient): indices [N, K] of the chosen experts."""
        c = self.c
        with torch.no_grad():
            biased = s + self.gate.e_score_correction_bias.to(s.dtype) if use_bias else s
            sel = biased
            N = s.shape[0]
            if c.G > 1:
                gs = biased.view(N, c.G, -1).topk(2, dim=-1).values.sum(-1)  # [N, G]
                if rec is not None:
                    gv = gs.topk(c.topk_group + 1, dim=-1).values if c.topk_group < c.G else None
                    if gv is not None:
                        rec["group_gap"] = min(rec.get("group_gap", math.inf),
                                               (gv[:, c.topk_group - 1] - gv[:, c.topk_group]).min().item())
                gidx = gs.topk(c.topk_group, dim=-1).indices
                gmask = torch.zeros_like(gs, dtype=torch.bool).scatter_(1, gidx, True)
                emask = gmask.repeat_interleave(c.E // c.G, dim=1)
                sel = biased.masked_fill(~emask, float("-inf"))
            if rec is not None and c.K < c.E:
                ev = sel.topk(c.K + 1, dim=-1).values
                rec["expert_gap"] = min(rec.get("expert_gap", math.inf),
                                        (ev[:, c.K - 1] - ev[:, c.K]).min().item())
            return sel.topk(c.K, dim=-1).indices

    def forward(self, x, ctx):
        """x [B, T', d]. Appends (s [B, T', E], idx [B, T', K]) to ctx['moe'] for balance/counts."""
        c = self.c
        B, T, d = x.shape
        xf = x.reshape(B * T, d)
        s = torch.sigmoid(F.linear(xf, self.gate.weight))  # [N, E]
        idx = self.route(s, ctx["use_bias"], ctx.get("gaps"))
        w = s.gather(1, idx)
        if c.norm_topk:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * c.R
        y = self.shared_experts(xf) if c.n_shared else torch.zeros_like(xf)
        flat_idx = idx.reshape(-1)
        order = torch.argsort(flat_idx, stable=True)
        counts = torch.bincount(flat_idx, minlength=c.E)
        tok_sorted = order // c.K
        w_sorted = w.reshape(-1)[order]
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n == 0:
                continue
            tok = tok_sorted[start:start + n]
            ye = self.experts[e](xf.index_select(0, tok)) * w_sorted[start:start + n, None]
            y.index_add_(0, tok, ye)
            start += n
        ctx["moe"].append((self.layer_index, s.reshape(B, T, c.E), idx.reshape(B, T, c.K), counts))
        return y.view(B, T, d)


class Block(nn.Module):
    def __init__(self, c, l):
        super().__init__()
        self.self_attn = MLA(c)
        self.input_layernorm = RMSNorm(c.d, c.eps)
        self.post_attention_layernorm = RMSNorm(c.d, c.eps)
        if c.is_moe(l):
            self.mlp = MoE(c)
            self.mlp.layer_index = l
        else:
            self.mlp = MLP(c.d, c.inter)

    def forward(self, x, rope, ctx):
        h = x + self.self_attn(self.input_layernorm(x), *rope)
        f = self.post_attention_layernorm(h)
        return h + (self.mlp(f, ctx) if isinstance(self.mlp, MoE) else self.mlp(f))


class SharedHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = RMSNorm(c.d, c.eps)


class MTPBlock(Block):
    def __init__(self, c, l):
        super().__init__(c, l)
        self.enorm = RMSNorm(c.d, c.eps)
        self.hnorm = RMSNorm(c.d, c.eps)
        self.eh_proj = linear(2 * c.d, c.d)
        self.shared_head = SharedHead(c)


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.d)
        layers = [Block(c, l) for l in range(c.L)] + [MTPBlock(c, c.L + k) for k in range(c.D)]
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(c.d, c.eps)


class DSV3(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = linear(c.d, c.vocab)
        self._rope = {}

    # ---- checkpoint naming ----
    def shared_aliases(self):
        """Checkpoint names that are the same tensor as a main-model parameter."""
        a = {}
        for k in range(self.c.D):
            p = f"model.layers.{self.c.L + k}."
            a[p + "shared_head.head.weight"] = "lm_head.weight"
            a[p + "embed_tokens.weight"] = "model.embed_tokens.weight"
        return a

    def load_checkpoint(self, sd):
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        aliases = self.shared_aliases()
        seen = set()
        with torch.no_grad():
            for k, v in sd.items():
                if k in aliases:
                    assert torch.equal(v, sd[aliases[k]]), f"{k} differs from {aliases[k]}"
                    continue
                own[k].copy_(v.to(own[k].dtype))
                seen.add(k)
        missing = set(own) - seen
        assert not missing, f"missing in checkpoint: {sorted(missing)}"

    def rope(self, T, dtype):
        key = (T, dtype)
        if key not in self._rope:
            self._rope[key] = rope_tables(self.c, T, dtype)
        return self._rope[key]

    # ---- forward ----
    def forward(self, ids, use_bias=True, gaps=None):
        """ids [B, T]. Returns (logits_main [B,T,V], [logits_mtp_k [B,T-k,V]], ctx)."""
        c = self.c
        B, T = ids.shape
        ctx = {"use_bias": use_bias, "gaps": gaps, "moe": []}
        emb = self.model.embed_tokens(ids)
        dtype = emb.dtype
        h = emb
        rope = self.rope(T, dtype)
        for l in range(c.L):
            h = self.model.layers[l](h, rope, ctx)
        hn = self.model.norm(h)
        logits = self.lm_head(hn)
        mtp_logits = []
        prev = hn
        for k in range(1, c.D + 1):
            blk = self.model.layers[c.L + k - 1]
            Tk = T - k
            rk = self.rope(Tk, dtype)
            x = blk.eh_proj(torch.cat([blk.enorm(emb[:, k:]), blk.hnorm(prev[:, :Tk])], dim=-1))
            hk = blk(x, rk, ctx)
            mtp_logits.append(self.lm_head(blk.shared_head.norm(hk)))
            prev = hk  # module k+1 gets the block output before shared_head.norm
        return logits, mtp_logits, ctx


def losses(model, ids, lam, alpha, use_bias=True, gaps=None):
    """The training objective. Returns dict with total 'loss', 'main', 'mtp' [D], 'balance'
    (unweighted L_Bal), and 'counts' {layer: int64 [E]} over the whole batch."""
    c = model.c
    B, T = ids.shape
    logits, mtp_logits, ctx = model(ids, use_bias=use_bias, gaps=gaps)
    V = c.vocab
    main = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    mtp = []
    for k, lg in enumerate(mtp_logits, start=1):
        # position t of module k predicts x_{t+1+k}; valid for t = 0..T-2-k
        mtp.append(F.cross_entropy(lg[:, : T - 1 - k].reshape(-1, V), ids[:, 1 + k:].reshape(-1)))
    bal = torch.zeros((), dtype=logits.dtype)
    counts = {}
    for layer, s, idx, cnt in ctx["moe"]:
        Tp = s.shape[1]
        with torch.no_grad():
            sel = torch.zeros_like(s).scatter_(2, idx, 1.0)  # [B, T', E]
            f = sel.sum(1) * (c.E / (c.K * Tp))  # [B, E], constant
        sp = s / s.sum(-1, keepdim=True)
        P = sp.mean(1)  # [B, E]
        bal = bal + (f * P).sum(-1).mean()  # averaged over sequences, summed over layers
        counts[layer] = cnt
    loss = main
    if mtp:
        loss = loss + lam / len(mtp) * sum(mtp)
    loss = loss + alpha * bal
    return {"loss": loss, "main": main, "mtp": mtp, "balance": bal, "counts": counts}


def param_groups(model, weight_decay):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def update_bias(model, counts, gamma):
    """b_i <- b_i + gamma * sign(mean_j c_j - c_i) for every MoE layer."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, MoE):
                cnt = counts[m.layer_index].to(m.gate.e_score_correction_bias.dtype)
                m.gate.e_score_correction_bias.add_(gamma * torch.sign(cnt.mean() - cnt))


def moe_layers(model):
    return [m for m in model.modules() if isinstance(m, MoE)]

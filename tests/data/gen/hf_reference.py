"""Reference data from Hugging Face transformers' DeepseekV3 (float32), run on the GPU machine.

For each config in tests/data/gen/*.json it writes tests/data/<name>/:
  config.json         the config, as given
  model.safetensors   random weights in checkpoint naming (plus the MTP module at layer
                      num_hidden_layers when num_nextn_predict_layers > 0)
  golden.safetensors  input_ids, logits, hidden.{i}, gate.{l}.out0/out1/out2,
                      decode_logits_last3, and mtp.1.logits when an MTP module exists.

The MTP module is computed from the paper's equations (21-23) with the released-weight
conventions, independently of the C++ code: x_i = eh_proj([enorm(Emb(t_{i+1})); hnorm(h_i)]),
h_i the main model's hidden state after the final norm, one MoE decoder block at the same
positions, then shared_head.norm and the shared output head.
Usage: python3 tests/data/gen/hf_reference.py OUT_DIR CONFIG.json [CONFIG.json ...]
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda" if torch.cuda.is_available() else "cpu"


def make_config(raw, **overrides):
    raw = dict(raw, **overrides)
    rope = raw.pop("rope_scaling", None)
    cfg = DeepseekV3Config(**{k: v for k, v in raw.items() if k != "model_type"})
    if rope is not None:
        rope = dict(rope)
        rope["rope_type"] = rope.pop("type", rope.get("rope_type"))
        if hasattr(cfg, "rope_parameters"):
            rope["rope_theta"] = raw.get("rope_theta", 10000.0)
            cfg.rope_parameters = rope
        cfg.rope_scaling = rope
    cfg._attn_implementation = "eager"
    return cfg


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:  # [out, in] or fused experts [E, out, in]: N(0, 1/in)
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
            else:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn(b.shape, generator=gen))


def record_routing(model, store):
    """Records each MoE gate's (router_logits, topk_weights, topk_indices)."""
    for l, layer in enumerate(model.model.layers):
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(gate, "e_score_correction_bias"):
            continue

        def hook(_mod, _inp, out, _l=l):
            logits, w, idx = out
            store[f"gate.{_l}.out0"] = logits.detach().float().cpu().contiguous()
            store[f"gate.{_l}.out1"] = w.detach().float().cpu().contiguous()
            store[f"gate.{_l}.out2"] = idx.detach().long().cpu().contiguous()

        gate.register_forward_hook(hook)


def checkpoint_naming(sd):
    """transformers v5 stores fused experts; write the per-expert checkpoint naming instead."""
    out = {}
    for k, v in sd.items():
        v = v.detach().float().cpu().contiguous()
        if k.endswith("mlp.experts.gate_up_proj"):  # [E, 2*inter, d]: gate rows, then up rows
            p = k[: -len("gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{p}{e}.gate_proj.weight"] = v[e, :inter].contiguous()
                out[f"{p}{e}.up_proj.weight"] = v[e, inter:].contiguous()
        elif k.endswith("mlp.experts.down_proj"):  # [E, d, inter]
            p = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{p}{e}.down_proj.weight"] = v[e].contiguous()
        elif "rotary_emb" not in k:
            out[k] = v
    return out


def run(out_dir, path, seed=1234, T=40):
    raw = json.load(open(path))
    name = os.path.splitext(os.path.basename(path))[0]
    gen = torch.Generator().manual_seed(seed)
    cfg = make_config(raw)
    model = DeepseekV3ForCausalLM(cfg).float()
    randomize(model, gen)
    model = model.to(dev).eval()
    ids = torch.randint(3, raw["vocab_size"], (1, T), generator=gen).to(dev)
    store = {}
    record_routing(model, store)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, use_cache=False)
        golden = {"input_ids": ids[0].cpu().long(), "logits": out.logits[0].float().cpu()}
        for i, h in enumerate(out.hidden_states):
            golden[f"hidden.{i}"] = h[0].float().cpu()
        golden.update(store)
        # Decode the last three tokens one at a time through the cache.
        pre = model(ids[:, : T - 3], use_cache=True)
        cache = pre.past_key_values
        rows = []
        for i in range(T - 3, T):
            step = model(ids[:, i : i + 1], past_key_values=cache, use_cache=True)
            cache = step.past_key_values
            rows.append(step.logits[0, -1].float().cpu())
        golden["decode_logits_last3"] = torch.stack(rows)

    weights = checkpoint_naming(model.state_dict())
    L = raw["num_hidden_layers"]
    if raw.get("num_nextn_predict_layers", 0) > 0:
        # The MTP block is a MoE decoder layer; run it as a one-layer model fed with embeddings.
        mcfg = make_config(raw, num_hidden_layers=1, first_k_dense_replace=0)
        mtp = DeepseekV3ForCausalLM(mcfg).float()
        randomize(mtp, gen)
        mtp = mtp.to(dev).eval()
        d = raw["hidden_size"]
        enorm = (1 + 0.1 * torch.randn(d, generator=gen)).to(dev)
        hnorm = (1 + 0.1 * torch.randn(d, generator=gen)).to(dev)
        eh = (torch.randn(d, 2 * d, generator=gen) / (2 * d) ** 0.5).to(dev)
        with torch.no_grad():
            mtp.lm_head.weight.copy_(model.lm_head.weight)

            def rms(x, w):
                return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + raw["rms_norm_eps"]))

            h = out.hidden_states[-1][0]  # main hidden state after the final norm
            emb = model.model.embed_tokens(ids[0, 1:])
            x = torch.cat([rms(emb, enorm), rms(h[:-1], hnorm)], dim=-1) @ eh.T  # eq. (21)
            mo = mtp(inputs_embeds=x[None], use_cache=False)
            golden["mtp.1.logits"] = mo.logits[0].float().cpu()
        p = f"model.layers.{L}."
        for k, v in checkpoint_naming(mtp.state_dict()).items():
            if k.startswith("model.layers.0."):
                weights[p + k[len("model.layers.0."):]] = v
        weights[p + "enorm.weight"] = enorm.cpu()
        weights[p + "hnorm.weight"] = hnorm.cpu()
        weights[p + "eh_proj.weight"] = eh.cpu()
        weights[p + "shared_head.norm.weight"] = mtp.model.norm.weight.detach().float().cpu()
        weights[p + "shared_head.head.weight"] = model.lm_head.weight.detach().float().cpu()
        weights[p + "embed_tokens.weight"] = model.model.embed_tokens.weight.detach().float().cpu()

    od = os.path.join(out_dir, name)
    os.makedirs(od, exist_ok=True)
    json.dump(raw, open(os.path.join(od, "config.json"), "w"), indent=2)
    save_file(weights, os.path.join(od, "model.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in golden.items()}, os.path.join(od, "golden.safetensors"))
    print(name, "written:", sorted(golden.keys()))


if __name__ == "__main__":
    import transformers
    print("transformers", transformers.__version__, "torch", torch.__version__, "device", dev)
    for cfg_path in sys.argv[2:]:
        run(sys.argv[1], cfg_path)

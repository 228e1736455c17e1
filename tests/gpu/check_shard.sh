#!/usr/bin/env bash
# GPU machine (torch + transformers): the tiny GQA Llama (8 heads, 2 KV heads) sharded at tp 2
# and 4; a tensor-parallel forward built in torch from the rank files alone (vocab-parallel
# embedding and lm_head, per-rank heads with replicated KV heads at tp 4, row-parallel partial
# outputs summed as an all-reduce would) must give transformers' logits on the unsharded model.
set -euo pipefail
ckpt=${1:?usage: check_shard.sh path/to/ckpt testdata_dir}
td=${2:?}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for tp in 2 4; do "$ckpt" shard "$td/llama" "$scratch/tp$tp" --tp "$tp" -q; done
python3 - "$td/llama" "$scratch" <<'PY'
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

src, scratch = sys.argv[1], sys.argv[2]
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False
cfg = json.load(open(f"{src}/config.json"))
model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).to(dev).eval()
ids = torch.tensor([[1, 5, 17, 42, 3, 9, 28, 11, 250, 0, 7, 19, 33, 255, 4, 2]], device=dev)
with torch.no_grad():
    ref = model(ids).logits[0].float()

H, nh, nkv, d = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
V, eps = cfg["vocab_size"], cfg["rms_norm_eps"]

def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

def tp_forward(tp):
    ranks = []
    for r in range(tp):
        w = {k: v.to(dev, torch.float32) for k, v in load_file(f"{scratch}/tp{tp}/rank-{r}/model.safetensors").items()}
        b = json.load(open(f"{scratch}/tp{tp}/rank-{r}/config.json"))["ckpt_parallel"]
        assert (b["tp_size"], b["tp_rank"]) == (tp, r)
        ranks.append(w)
    T = ids.shape[1]
    pos = torch.arange(T, device=dev)[None]
    # Vocab-parallel embedding: each rank looks up the ids in its row block, the sum is the all-reduce.
    per = ranks[0]["model.embed_tokens.weight"].shape[0]
    x = torch.zeros(T, H, device=dev)
    for r, w in enumerate(ranks):
        local = ids[0] - r * per
        mask = (local >= 0) & (local < per)
        x[mask] += w["model.embed_tokens.weight"][local[mask]]
    cos, sin = model.model.rotary_emb(x[None], pos)
    causal = torch.full((T, T), float("-inf"), device=dev).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, ranks[0][p + "input_layernorm.weight"])
        attn = torch.zeros(T, H, device=dev)
        for w in ranks:
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, -1, d).transpose(0, 1)[None]
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, -1, d).transpose(0, 1)[None]
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, -1, d).transpose(0, 1)[None]
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            rep = q.shape[1] // k.shape[1]  # local query heads per local KV head
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            s = (q @ k.transpose(-1, -2)) / d**0.5 + causal
            o = (s.softmax(-1) @ v)[0].transpose(0, 1).reshape(T, -1)
            attn += o @ w[p + "self_attn.o_proj.weight"].T  # row-parallel partial: summed
        x = x + attn
        h = rms(x, ranks[0][p + "post_attention_layernorm.weight"])
        mlp = torch.zeros(T, H, device=dev)
        for w in ranks:
            g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
            mlp += g @ w[p + "mlp.down_proj.weight"].T
        x = x + mlp
    h = rms(x, ranks[0]["model.norm.weight"])
    logits = torch.cat([h @ w["lm_head.weight"].T for w in ranks], -1)  # vocab-parallel: gather
    return logits[:, :V]

worst = 0.0
for tp in (2, 4):
    with torch.no_grad():
        got = tp_forward(tp)
    diff = (got - ref).abs().max().item()
    top1 = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
    kl = torch.nn.functional.kl_div(got.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="batchmean").item()
    print(f"check_shard: tp {tp} on {dev}: max |logit diff| {diff:.3e} (logit scale {ref.abs().max().item():.3f}), "
          f"top-1 agreement {top1*100:.1f}%, KL {kl:.3e}")
    worst = max(worst, diff)
    assert top1 == 1.0 and diff < 1e-4, "tensor-parallel forward differs from transformers"
print("check_shard: OK")
PY

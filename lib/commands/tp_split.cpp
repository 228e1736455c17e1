#include "commands/tp_split.h"

#include <algorithm>
#include <stdexcept>

namespace ckpt {

namespace {

std::string num(uint64_t v) { return std::to_string(v); }

uint64_t total_parts(const std::vector<AxisPiece>& pieces) {
  uint64_t n = 0;
  for (const auto& p : pieces) n += p.parts;
  return n;
}

// How many parts (times tp) of a piece one rank holds: parts for an even split, heads when
// split by heads, and tp when a single head is replicated (tp > heads).
uint64_t rank_parts_times_tp(const AxisPiece& p, uint64_t tp) { return p.heads && tp > p.heads ? tp : p.parts; }

}  // namespace

std::vector<AxisPiece> plain_axis() { return {{1, 0, false, ""}}; }
std::vector<AxisPiece> q_heads_axis(uint64_t nh) { return {{nh, nh, false, "num_attention_heads"}}; }
std::vector<AxisPiece> kv_heads_axis(uint64_t nkv) { return {{nkv, nkv, true, "num_key_value_heads"}}; }
std::vector<AxisPiece> fused_qkv_axis(uint64_t nh, uint64_t nkv) {
  return {{nh, nh, false, "num_attention_heads"},
          {nkv, nkv, true, "num_key_value_heads"},
          {nkv, nkv, true, "num_key_value_heads"}};
}
std::vector<AxisPiece> fused_gate_up_axis() { return {{1, 0, false, ""}, {1, 0, false, ""}}; }

AxisSplit split_axis(uint64_t length, const std::vector<AxisPiece>& pieces, uint64_t tp, uint64_t rank,
                     uint64_t unit) {
  AxisSplit out;
  const uint64_t parts = total_parts(pieces);
  if (tp == 0 || rank >= tp || parts == 0) throw std::logic_error("split_axis: bad arguments");
  if (length % parts != 0) {
    out.refusal = "length " + num(length) + " is not " + num(parts) + " equal parts (heads or fused pieces)";
    return out;
  }
  const uint64_t u = length / parts;
  uint64_t start = 0;
  for (const auto& p : pieces) {
    const uint64_t plen = u * p.parts;
    AxisRange r;
    if (p.heads == 0) {
      if (plen % tp != 0) {
        out.refusal = (pieces.size() > 1 ? "a fused piece of " : "") + num(plen) + " is not divisible by --tp " + num(tp);
        return out;
      }
      r = {start + rank * (plen / tp), plen / tp};
    } else if (tp <= p.heads) {
      if (p.heads % tp != 0) {
        out.refusal = p.what + " " + num(p.heads) + " is not divisible by --tp " + num(tp);
        return out;
      }
      const uint64_t per = p.heads / tp;
      r = {start + rank * per * u, per * u};
    } else {
      if (!p.replicate) {
        out.refusal = p.what + " " + num(p.heads) + " is smaller than --tp " + num(tp);
        return out;
      }
      if (tp % p.heads != 0) {
        out.refusal = "--tp " + num(tp) + " is larger than " + p.what + " " + num(p.heads) + " but not a multiple of it";
        return out;
      }
      // Each head is replicated on tp/heads neighbouring ranks: rank r holds head r*heads/tp.
      r = {start + rank / (tp / p.heads) * u, u};
    }
    if (r.begin % unit != 0 || r.length % unit != 0) {
      out.refusal = "a rank's slice of " + num(r.length) + " at " + num(r.begin) +
                    " is not a multiple of the quantization unit " + num(unit);
      return out;
    }
    out.ranges.push_back(r);
    start += plen;
  }
  return out;
}

std::optional<uint64_t> unsplit_axis_length(uint64_t rank_length, const std::vector<AxisPiece>& pieces, uint64_t tp) {
  // rank_length * tp = u * Σ rank_parts_times_tp, and length = u * Σ parts.
  uint64_t per_rank = 0;
  for (const auto& p : pieces) per_rank += rank_parts_times_tp(p, tp);
  if (per_rank == 0 || (rank_length * tp) % per_rank != 0) return std::nullopt;
  return rank_length * tp / per_rank * total_parts(pieces);
}

AxisRange VocabSplit::real_rows(uint64_t rank, uint64_t vocab) const {
  const uint64_t begin = rank * per_rank;
  if (begin >= vocab) return {vocab, 0};
  return {begin, std::min(per_rank, vocab - begin)};
}

VocabSplit split_vocab(uint64_t vocab, uint64_t multiple, uint64_t tp) {
  VocabSplit s;
  if (multiple == 0) throw std::logic_error("split_vocab: multiple 0");
  s.padded = (vocab + multiple - 1) / multiple * multiple;
  if (s.padded % tp != 0) {
    s.refusal = "the vocab " + num(vocab) + " padded to a multiple of " + num(multiple) + " (" + num(s.padded) +
                ") is not divisible by --tp " + num(tp);
    return s;
  }
  s.per_rank = s.padded / tp;
  return s;
}

std::vector<AxisRange> pp_layer_partition(uint64_t layers, uint64_t pp) {
  std::vector<uint64_t> counts(pp, layers / pp);
  const uint64_t extra = layers % pp;
  for (uint64_t i = 0; i < extra; ++i) counts[pp - 2 - i] += 1;
  std::vector<AxisRange> out;
  uint64_t start = 0;
  for (uint64_t c : counts) {
    out.push_back({start, c});
    start += c;
  }
  return out;
}

AxisRange ep_experts(uint64_t experts, uint64_t ep, uint64_t rank) {
  const uint64_t base = experts / ep, extra = experts % ep;
  const uint64_t begin = rank * base + std::min(rank, extra);
  return {begin, base + (rank < extra ? 1 : 0)};
}

}  // namespace ckpt

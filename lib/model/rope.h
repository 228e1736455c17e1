// Rotary position embedding: the inverse frequencies of each rope type (transformers
// modeling_rope_utils.py: _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters,
// _compute_llama3_parameters) and the rotation itself (rotate_half / apply_rotary_pos_emb of
// modeling_llama.py; Phi-3's partial rotary rotates the first rotary_dim dimensions and passes the
// rest through). Computed in double; the CUDA runtime takes its cos/sin tables from here.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace ckpt::model {

// rotary_dim / 2 inverse frequencies.
std::vector<double> rope_inv_freq(const RopeConfig& rope);

// cos and sin of position * inv_freq[i] for positions [0, positions): [positions][rotary_dim/2].
struct RopeTable {
  uint64_t half = 0;
  std::vector<double> cos, sin;
};
RopeTable rope_table(const RopeConfig& rope, uint64_t positions);

// Rotates one head vector in place at `position`: for i < rotary_dim/2, (x[i], x[i + rotary_dim/2])
// turns by the angle position * inv_freq[i]; dimensions from rotary_dim on are left alone.
void apply_rope(double* head, uint64_t position, const RopeTable& table);

}  // namespace ckpt::model

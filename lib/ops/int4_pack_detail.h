// Internal to lib/ops: the layout transforms between K-packed words, GPTQ's qweight and AWQ's
// qweight, in scalar form (int4_pack.cpp) and AVX-512 form (int4_pack_avx512.cpp), and the
// dispatch used by int4_quant.cpp and marlin_layout.cpp.
#pragma once

#include <cstdint>

#include "ops/int4_quant.h"

namespace ckpt::ops::detail {

// out[c * os + r] = in[r * is + c] for r < rows, c < cols.
void transpose32_scalar(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols, uint32_t* out, uint64_t os);
// `stream`: whole 64-byte lines of `out` are written with non-temporal stores (no read of the line
// before it is overwritten), for output that is not read back soon; the caller then calls
// stream_fence() before the output is handed to another thread.
void transpose32_avx512(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols, uint32_t* out, uint64_t os,
                        bool stream = false);
void transpose32(const uint32_t* in, uint64_t is, uint64_t rows, uint64_t cols, uint32_t* out, uint64_t os,
                 bool stream = false);

// GPTQ-layout rows [0, nrows) (columns [0, n), n % 8 == 0) <-> AWQ rows [0, 8 nrows) (words [0, n/8)).
void gptq_to_awq_scalar(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n, uint32_t* awq, uint64_t as);
void gptq_to_awq_avx512(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n, uint32_t* awq, uint64_t as);
void gptq_to_awq(const uint32_t* g, uint64_t gs, uint64_t nrows, uint64_t n, uint32_t* awq, uint64_t as);
void awq_to_gptq_scalar(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n, uint32_t* g, uint64_t gs);
void awq_to_gptq_avx512(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n, uint32_t* g, uint64_t gs);
void awq_to_gptq(const uint32_t* awq, uint64_t as, uint64_t nrows, uint64_t n, uint32_t* g, uint64_t gs);

// K-packed words (rows [0, rows), rows % 8 == 0; words [0, ceil(ncols / 8))) straight to AWQ
// qweight rows [0, ncols) (words [0, rows / 8)): out[k * os + r / 8] nibble i = nibble k % 8 of
// words[(8 (r / 8) + kAwqOrder[i]) * ws + k / 8]. Rows k >= ncols of the last word are not written.
// The AVX-512 form works in tiles of 128 rows x 16 words through an L1 buffer and stores each
// 16-word run of an output row (a 64-byte line when `out` is) with one store.
void words_to_awq_scalar(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols, uint32_t* out,
                         uint64_t os);
void words_to_awq_avx512(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols, uint32_t* out,
                         uint64_t os, bool stream = false);
void words_to_awq(const uint32_t* words, uint64_t ws, uint64_t rows, uint64_t ncols, uint32_t* out, uint64_t os,
                  bool stream = false);

bool pack_avx512_on_this_cpu();
// Orders the non-temporal stores of the `stream` forms before later stores (sfence).
void stream_fence();

}  // namespace ckpt::ops::detail

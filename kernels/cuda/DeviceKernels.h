#pragma once
// The CUDA backend's kernels over GPU-resident data. Plain C++ header: every pointer argument is a
// device pointer, every launch goes to the current stream (Memory.h: the backend's own stream, the
// legacy default stream without one) and returns at once (check launchOk() or synchronize()).
// Activations are f32; weights f32 or bf16 (uint16 bits). Each kernel has a CPU reference in
// kernels/cpu with the same name; test/unit/cuda compares them.
#include <cstdint>

namespace kt::cuda {

// out[t] = table[ids[t]] as f32 (table f32 or bf16, [vocab, cols]).
void embedding(const int32_t* ids, int64_t tokens, const void* table, bool tableBf16, int64_t cols,
               float* out);

// y = x / sqrt(mean(x^2) + eps) * w for `rows` rows of `dim` (row strides in floats; in place ok).
void rmsNormRows(const float* x, int64_t xStride, int64_t rows, int64_t dim, const float* w,
                 float eps, float* y, int64_t yStride);

// Rotary embedding in place for `tokens` tokens of `heads` vectors: vector h of token t starts at
// x + t*tokenStride + h*headStride + offset and its first `dim` channels are rotated by the angle
// positions[t] * invFreq[i] (cos/sin scaled by attentionFactor), pairs (i, i+dim/2) or
// interleaved (2i, 2i+1) — kernels/cpu/Rope.
void rope(float* x, int64_t tokens, int heads, int64_t tokenStride, int64_t headStride,
          int64_t offset, const int32_t* positions, const float* invFreq, int dim,
          float attentionFactor, bool interleaved);

void add(const float* a, const float* b, float* out, int64_t n);
// out = silu(g) * u (out may alias g).
void swiglu(const float* g, const float* u, float* out, int64_t n);
// y[t, :] += bias for `rows` rows of `cols`.
void addBias(float* y, const float* bias, int64_t rows, int64_t cols);
void sigmoidInPlace(float* x, int64_t n);
void toBf16(const float* x, uint16_t* y, int64_t n);
// Weight-only int8 (kernels/cuda/QuantLinear.cu): y[T, n] = x[T, k] . (q * scale)^T with q int8
// [n, k] row-major and one f32 scale per row. gemvInt8 streams q once per kGemvMaxTokens tokens
// (decode); int8ToBf16 widens q exactly for the tensor-core path (prefill, Blas::linearInt8),
// which multiplies the unscaled q and then scales y's columns (scaleColumns: y[t, c] *= scale[c]).
constexpr int64_t kGemvMaxTokens = 8;
void gemvInt8(const float* x, int64_t tokens, const int8_t* q, const float* scale, int64_t n,
              int64_t k, float* y);
void int8ToBf16(const int8_t* q, int64_t n, uint16_t* out);
void scaleColumns(float* y, int64_t rows, int64_t cols, const float* scale);
// Weight-only int4 (kernels/cuda/QuantLinear.cu, format in Int4Format.h: packed nibbles
// [n][int4RowBytes(k)], f16 scales [n][int4Groups(k)], w = d * q): y[T, n] = x[T, k] . W^T.
// gemvInt4 streams the packed rows once per kGemvMaxTokens tokens (decode; any n and k, the last
// group partial); int4ToBf16 widens `rows` rows to bf16 with the group scales applied
// (bf16(d * q), row-major [rows, k]) for the tensor-core path (prefill, Blas::linearInt4).
void gemvInt4(const float* x, int64_t tokens, const uint8_t* data, const uint16_t* scales,
              int64_t n, int64_t k, float* y);
void int4ToBf16(const uint8_t* data, const uint16_t* scales, int64_t rows, int64_t cols,
                uint16_t* out);
// The same widening over a slot list of an expert stack (the grouped prefill MoE over int8/int4
// experts, runtime/exec/cuda/MoeGroupedQuant.h), one launch for all items: out item i (a
// row-major bf16 [n, k] at out + i * n * k) = slice slots[i] (a device int32 array; null: slice
// i) of the stack, for i < items. Slots may repeat and come in any order. int8: slices of
// sliceElems = n * k values; int4: data slices of n * int4RowBytes(k) bytes, scale slices of
// n * int4Groups(k). The very elements int8ToBf16 / int4ToBf16 write (QuantWiden.h; those two
// are this with one item).
void int8StackToBf16(const int8_t* q, const int32_t* slots, int64_t items, int64_t sliceElems,
                     uint16_t* out);
void int4StackToBf16(const uint8_t* data, const uint16_t* scales, const int32_t* slots,
                     int64_t items, int64_t n, int64_t k, uint16_t* out);
// scaleColumns per item of a stacked product y [totalRows, cols]: item i's rows get
// y[r, c] *= scales[slots[i] * cols + c] (slots null: i). Item i's rows: itemRow0[i] ..
// itemRow0[i + 1] (the last to totalRows) when itemRow0 (device) is given, else
// i * rowsPerItem .. (i + 1) * rowsPerItem. scaleColumns is this with one item.
void scaleColumnsStack(float* y, int64_t cols, int64_t items, int64_t rowsPerItem,
                       const int32_t* itemRow0, int64_t totalRows, const float* scales,
                       const int32_t* slots);
// out[i] = i for i < n (the identity slot list of a widened stack).
void fillSequence(int32_t* out, int64_t n);

// out[i, :] = x[rows[i], :] for i < n.
void gatherRows(const float* x, int64_t cols, const int32_t* rows, int64_t n, float* out);
// out[rows[i], :] += scale[i] * y[i, :] for i < n (rows distinct within one call); rows == nullptr
// means row i, scale == nullptr means 1.
void scatterAddRows(const float* y, int64_t cols, const int32_t* rows, const float* scale,
                    int64_t n, float* out);

// Where a sequence's KV rows live. Dense (pages null): position p's row of an array starts at
// base + p * pitch. Paged (runtime/exec/cuda/GpuKvPool): pages[i] is the device address of the
// block holding positions i * pageTokens .. (i + 1) * pageTokens - 1, and inside it an array's row
// of p starts `offset` floats in, plus (p % pageTokens) * pitch. One block serves every array of
// every layer (each at its own offset), so a sequence has one table for all layers; a position
// whose page address is 0 was never given a page.
struct KvPages {
  const uint64_t* pages = nullptr;
  int64_t pageTokens = 0;
};

// Causal softmax attention of `len` query tokens (positions pos0 .. pos0+len-1) over cached
// positions 0 .. pos0+t, one generic kernel for GQA and absorbed MLA:
//   score(t, h, p) = scale * (q1[t,h] . k1[p, kvh] + q2[t,h] . k2[p])   (kvh = h / (heads/kvHeads))
//   out[t, h] = sum_p softmax(score)_p * v[p, kvh]
// GQA: q1 = q, k1 = key cache, no q2/k2, v = value cache. MLA: q1 = absorbed query, k1 = v = the
// latent cache (kvHeads 1), q2/k2 = the rope parts.
struct AttentionArgs {
  const float* q1 = nullptr;
  int64_t q1Token = 0, q1Head = 0; // strides in floats
  int d1 = 0;
  const float* q2 = nullptr;
  int64_t q2Token = 0, q2Head = 0;
  int d2 = 0;
  const float* k1 = nullptr;
  int64_t k1Pos = 0, k1Head = 0;
  const float* k2 = nullptr;
  int64_t k2Pos = 0;
  const float* v = nullptr;
  int64_t vPos = 0, vHead = 0;
  int dv = 0;
  float* out = nullptr;
  int64_t outToken = 0, outHead = 0;
  int64_t len = 0, pos0 = 0;
  // When set, pos0 is read from this device int (CUDA graphs replay one launch at every position).
  const int32_t* pos0Dev = nullptr;
  int heads = 0, kvHeads = 1;
  float scale = 1.f;
  // Paged KV cache (usePages below): when kv.pages is set, position p's rows are read from its
  // page, k1/k2/v being unused: k1's row at page + k1Page + (p % pageTokens) * k1Pos (+ kvh *
  // k1Head), k2's and v's likewise. Null: the dense arrays k1/k2/v.
  KvPages kv;
  int64_t k1Page = 0, k2Page = 0, vPage = 0;
  // Decode split over the keys ("flash-decoding", Attention.cu): up to kAttentionSplitMaxTokens
  // query tokens, each (head, token)'s keys are divided among `splits` blocks whose partial
  // results a second kernel merges. maxKeys: positions the KV arrays (or the page table) have
  // room for (fixed between CUDA graph replays, unlike the context length; 0: pos0 + len).
  // partials: scratch of partialFloats floats (attentionPartialFloats; null: no split).
  // splits: 0 picks from maxKeys and the SM count (attentionSplits); > 0 forces (tests).
  int64_t maxKeys = 0;
  float* partials = nullptr;
  int64_t partialFloats = 0;
  int splits = 0;
};
// GQA over dense arrays: q and out [len][heads][hd], keys and values [positions][kvHeads][hd].
// Positions (pos0, pos0Dev), the KV capacity and the split scratch are the caller's.
inline AttentionArgs gqaAttentionArgs(const float* q, const float* k, const float* v, float* out,
                                      int heads, int kvHeads, int hd, int64_t len, float scale) {
  AttentionArgs a;
  a.q1 = q;
  a.q1Token = int64_t(heads) * hd;
  a.q1Head = hd;
  a.d1 = hd;
  a.k1 = k;
  a.k1Pos = int64_t(kvHeads) * hd;
  a.k1Head = hd;
  a.v = v;
  a.vPos = int64_t(kvHeads) * hd;
  a.vHead = hd;
  a.dv = hd;
  a.out = out;
  a.outToken = int64_t(heads) * hd;
  a.outHead = hd;
  a.len = len;
  a.heads = heads;
  a.kvHeads = kvHeads;
  a.scale = scale;
  return a;
}
// Absorbed MLA: qAbs and out [len][heads][latent], the rope queries qPe [len][heads] at
// `qPeHead` floats per head (a token's are `heads * qPeHead` apart), one shared latent [positions]
// [latent] that serves as keys and values, and the rope keys kPe [positions][rope].
inline AttentionArgs mlaAttentionArgs(const float* qAbs, const float* qPe, int64_t qPeHead,
                                      const float* latent, const float* kPe, float* out, int heads,
                                      int latentDim, int ropeDim, int64_t len, float scale) {
  AttentionArgs a;
  a.q1 = qAbs;
  a.q1Token = int64_t(heads) * latentDim;
  a.q1Head = latentDim;
  a.d1 = latentDim;
  a.q2 = qPe;
  a.q2Token = int64_t(heads) * qPeHead;
  a.q2Head = qPeHead;
  a.d2 = ropeDim;
  a.k1 = latent;
  a.k1Pos = latentDim;
  a.k2 = kPe;
  a.k2Pos = ropeDim;
  a.v = latent;
  a.vPos = latentDim;
  a.dv = latentDim;
  a.out = out;
  a.outToken = int64_t(heads) * latentDim;
  a.outHead = latentDim;
  a.len = len;
  a.heads = heads;
  a.kvHeads = 1;
  a.scale = scale;
  return a;
}
// Reads the KV rows through a page table instead: the cache's first array (GQA keys, MLA latent)
// at `firstOffset` floats into each page, the second (GQA values, MLA rope keys) at
// `secondOffset`; row pitches stay as gqaAttentionArgs / mlaAttentionArgs set them. maxPositions:
// the positions the table has room for (maxKeys).
inline void usePages(AttentionArgs& a, KvPages kv, int64_t firstOffset, int64_t secondOffset,
                     int64_t maxPositions) {
  const bool mla = a.d2 > 0; // MLA: k1 = v = the latent (first), k2 = the rope key (second)
  a.kv = kv;
  a.k1Page = firstOffset;
  a.vPage = mla ? firstOffset : secondOffset;
  a.k2Page = mla ? secondOffset : 0;
  a.k1 = a.k2 = a.v = nullptr;
  a.maxKeys = maxPositions;
}
// Query tokens up to which attention() may split over the keys.
constexpr int64_t kAttentionSplitMaxTokens = 8;
// The number of key splits attention(a) runs (1: one block per (head, token), no merge launch).
int attentionSplits(const AttentionArgs& a);
// Scratch floats for the partial results of the most splits attention() picks for `heads` heads,
// `len` query tokens and `dv` output floats per head, whatever the context (0: it never splits
// such a step). Independent of the context so that a captured graph never needs more.
int64_t attentionPartialFloats(int heads, int64_t len, int dv);
// One launch, or two when it splits (the partials, then their merge).
void attention(const AttentionArgs& a);

// KV-cache append: the cache's row of position p0 + r gets src[r * srcPitch + c] for r < rows,
// c < width, where p0 = *pos0Dev (or pos0 when pos0Dev is null). Dense cache: row p at
// cache + p * cachePitch; paged (kv.pages set; `cache` unused): row p at page + pageOffset +
// (p % pageTokens) * cachePitch, as AttentionArgs reads it. Rows at positions past `capacity`, or
// in a page never given (address 0), are dropped (the backend reserves them first). Replaces a
// strided copy whose destination would change with every decoded token.
void appendRows(float* cache, KvPages kv, int64_t pageOffset, int64_t cachePitch, int64_t capacity,
                const float* src, int64_t srcPitch, int64_t width, int64_t rows,
                const int32_t* pos0Dev, int64_t pos0);
// The dense form.
inline void appendRows(float* cache, int64_t cachePitch, int64_t capacity, const float* src,
                       int64_t srcPitch, int64_t width, int64_t rows, const int32_t* pos0Dev,
                       int64_t pos0) {
  appendRows(cache, KvPages{}, 0, cachePitch, capacity, src, srcPitch, width, rows, pos0Dev, pos0);
}

// MoE routing of `tokens` rows of router logits [tokens, numExperts] (bias: correction bias or
// nullptr) into topK (expert, weight) pairs per token — every variant of kernels/cpu/MoeRouting.
struct RoutingArgs {
  int numExperts = 0, topK = 0;
  bool sigmoid = false; // scoring: softmax or sigmoid
  int method = 0;       // 0 greedy, 1 group-limited greedy, 2 noaux_tc
  int nGroup = 1, topkGroup = 1;
  bool normTopkProb = false;
  double routedScalingFactor = 1.0;
};
constexpr int kMaxRoutedExperts = 512;
void moeRoute(const float* logits, const float* bias, int64_t tokens, const RoutingArgs& a,
              int32_t* experts, float* weights);

// Device-side MoE for decode (kernels/cuda/MoeDecode.cu): the routing choices never leave the GPU.
// An expert stack is `numExperts` experts of [rows, cols] (f32, bf16 bits, int8 with one f32
// scale per row: scales[slice * rows + row], or int4 in the Int4Format.h layout with its f16 group
// scales in groupScales); local[e] is expert e's slice, -1 where the GPU does
// not hold it (split layers), null for slice e = expert e. A pair p = (token p / topK, expert
// experts[p]) is skipped (its rows are zero) when the id is -1, out of range or not held.
enum class ExpertDType : int { F32 = 0, BF16 = 1, Int8 = 2, Int4 = 3 };
struct ExpertStack {
  const void* data = nullptr;
  int dtype = int(ExpertDType::F32);
  const float* scales = nullptr;         // int8
  const uint16_t* groupScales = nullptr; // int4
  int64_t rows = 0, cols = 0;
  const int32_t* local = nullptr;
  int numExperts = 1;
};
// Up to this many tokens the moe op runs the routed experts with these kernels; more tokens
// (prefill) group tokens by expert for tensor-core GEMMs.
constexpr int64_t kMoeDecodeMaxTokens = 8;
// act[p, :] = silu(x[t] . gate_e^T) * (x[t] . up_e^T) for every pair p < tokens * topK (one
// launch). experts == null: one pair per token on slice 0 (shared experts; topK must be 1).
void moeGateUpDecode(const float* x, int64_t tokens, int topK, const int32_t* experts,
                     const ExpertStack& gate, const ExpertStack& up, float* act);
// y[p, :] = act[p] . down_e^T for every pair (one launch; experts == null: slice 0).
void moeDownDecode(const float* act, int64_t pairs, const int32_t* experts, const ExpertStack& down,
                   float* y);
// out[t, :] = sum over k = 0..topK-1 (in order; skipped pairs add nothing) of
// weights[t*topK+k] * y[t*topK+k, :], plus sharedScale[t] (1 when null) * shared[t, :] when
// shared is given; y == null: only the shared part. local/numExperts as in ExpertStack.
void moeCombine(const float* y, const float* weights, const int32_t* experts, const int32_t* local,
                int numExperts, int64_t tokens, int topK, int64_t cols, const float* shared,
                const float* sharedScale, float* out);

// Prefill offload: `blob` is a CPU-packed [g.n, g.k] matrix (kernels/cpu/quant/Layout.h, header
// included, copied as it is; 64-byte aligned) and `out` receives it widened row-major, f32 or bf16
// bits (`bf16`): exactly quant::dequantizeRow's values, bf16 rounded to nearest even. The CPU
// reference is PackedWiden.h's widenPackedRows.
struct PackedGeom;
void widenPacked(const PackedGeom& g, const uint8_t* blob, bool bf16, void* out);

} // namespace kt::cuda

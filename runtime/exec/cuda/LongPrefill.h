#pragma once
// How a GPU attention op runs one sequence chunk's attention: chunks of at least
// cuda::kPrefillGemmMinTokens query tokens (prefills) through cuBLAS (kernels/cuda/
// PrefillAttention.h) after gathering the sequence's paged rows into dense scratch; shorter chunks
// (decode, captured in CUDA graphs) through the generic kernel. KT_CUDA_PREFILL_ATTENTION=kernel
// keeps every chunk on the generic kernel (for comparisons).
#include "kernels/cuda/DeviceKernels.h"

namespace kt {
struct OpContext;
}

namespace kt::cudaops {

void attendChunk(OpContext& c, cuda::AttentionArgs at);

} // namespace kt::cudaops

// Moves of activations between the host's pageable vectors and the GPU, as the CUDA backend makes
// them at a step that changes device. Large ones go through pinned staging: one DMA at the link's
// pinned rate, and the host-side copy spread over the pool's threads. A pageable cudaMemcpy of a
// 2048 x 2048 prefill activation ran at ~3.5 GB/s on the device machine, a sixteenth of the
// pinned DMA (docs/cost-model.md, tenth device run). kt-rt probe times these very functions.
#pragma once

#include <cstddef>
#include <string>

namespace kt {

class ThreadPool;

// Moves of at least this many bytes are staged by default (smaller ones, decode's, are not: a
// pool wake-up costs more than their copy). KT_CUDA_STAGED_MOVE_BYTES=N changes the threshold (0:
// every move, as the CUDA tests run it), KT_CUDA_PAGEABLE_MOVES=1 turns staging off.
constexpr size_t kStagedMoveBytes = size_t(1) << 20;
size_t stagedMoveThreshold();

// memcpy in 256 KiB blocks over the pool (a plain memcpy without one).
void copyOnPool(ThreadPool* pool, void* dst, const void* src, size_t bytes);

// Blocking copies on the current stream; `stage` is pinned host memory of at least `bytes`, or
// nullptr for the direct (pageable) copy.
bool moveToDevice(void* dst, const void* src, size_t bytes, void* stage, ThreadPool* pool,
                  std::string* err);
bool moveToHost(void* dst, const void* src, size_t bytes, void* stage, ThreadPool* pool,
                std::string* err);

} // namespace kt

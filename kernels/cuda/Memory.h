#pragma once
// GPU memory and synchronisation for the CUDA backend, as plain C++ (no CUDA headers) so that the
// runtime can use it from ordinary translation units. Every function reports failure through its
// return value and *err (which names the CUDA error); none aborts or throws.
#include <cstddef>
#include <string>

namespace kt::cuda {

bool setDevice(int device, std::string* err);
// nullptr (and *err) when the allocation fails.
void* allocate(size_t bytes, std::string* err);
void release(void* p);
bool toDevice(void* dst, const void* src, size_t bytes, std::string* err);
bool toHost(void* dst, const void* src, size_t bytes, std::string* err);
bool deviceCopy(void* dst, const void* src, size_t bytes, std::string* err);
// `rows` rows of `width` bytes, device to device, with the given row pitches (strided KV appends).
bool deviceCopy2D(void* dst, size_t dstPitch, const void* src, size_t srcPitch, size_t width,
                  size_t rows, std::string* err);
bool fillZero(void* p, size_t bytes, std::string* err);
// Waits for every kernel launched so far and reports the first failure among them.
bool synchronize(std::string* err);
// Reports a failed kernel launch (bad configuration) without waiting for the GPU.
bool launchOk(std::string* err);
bool memoryInfo(size_t* freeBytes, size_t* totalBytes, std::string* err);

} // namespace kt::cuda

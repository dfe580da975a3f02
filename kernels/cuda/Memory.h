#pragma once
// GPU memory and synchronisation for the CUDA backend, as plain C++ (no CUDA headers) so that the
// runtime can use it from ordinary translation units. Every function reports failure through its
// return value and *err (which names the CUDA error); none aborts or throws.
#include <cstddef>
#include <string>

namespace kt::cuda {

// The stream every kernel, copy and cuBLAS call of kernels/cuda goes to. The CUDA backend creates
// one non-blocking stream at load (createStream) and makes it current; without one (the kernel
// tests) work goes to the legacy default stream. A plain global, not thread-local: the backend's
// ops run on the executor's thread, its uploads on the loading thread.
void* currentStream();
void setCurrentStream(void* stream);
// A non-blocking stream (does not synchronise with the legacy default stream); nullptr and *err
// on failure.
void* createStream(std::string* err);
void destroyStream(void* stream);
// Waits for the current stream only (cheaper than synchronize(); not allowed while capturing).
bool synchronizeStream(std::string* err);

// Launches queued so far (kernels, async copies and memsets, cuBLAS calls) by this process's
// kernels/cuda wrappers: the backend reports launches per decoded token. countLaunches is called
// by each wrapper; a graph replay counts as one.
void countLaunches(int n = 1);
unsigned long long launchCount();

bool setDevice(int device, std::string* err);
// nullptr (and *err) when the allocation fails.
void* allocate(size_t bytes, std::string* err);
void release(void* p);
// Blocking copies: queued on the current stream (so they are ordered after the kernels queued
// before them), then the stream is synchronised.
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

// Page-locked host memory: copies from and to it run by DMA without a staging copy, and the async
// copies below return at once only when their host side is pinned.
void* allocatePinned(size_t bytes, std::string* err);
void releasePinned(void* p);
// Queued on the current stream after every earlier launch; return at once (pinned host memory).
bool toHostAsync(void* dst, const void* src, size_t bytes, std::string* err);
bool toDeviceAsync(void* dst, const void* src, size_t bytes, std::string* err);

// A GPU timestamp on the current stream (cudaEvent with timing). Events are created once and
// reused; elapsed() waits for `end`.
struct GpuEvent {
  void* handle = nullptr;
};
bool createEvent(GpuEvent* e, std::string* err);
void destroyEvent(GpuEvent* e);
bool recordEvent(const GpuEvent& e, std::string* err);
// True when the GPU has passed `e` (never waits).
bool eventDone(const GpuEvent& e);
// Milliseconds between two recorded events, after waiting for `end` to complete.
bool elapsedMs(const GpuEvent& start, const GpuEvent& end, float* ms, std::string* err);

// A second stream beside the current one (the CUDA backend's expert streaming copies weights on
// its own stream while the current stream computes): an async host-to-device copy queued on
// `stream`, an event recorded on `stream`, `stream` waiting (on the GPU) for an event recorded on
// another stream, and the host waiting for an event. A null `stream` is the current stream. An
// event never recorded counts as done (cudaEventSynchronize's rule).
bool toDeviceAsyncOn(void* stream, void* dst, const void* src, size_t bytes, std::string* err);
bool recordEventOn(const GpuEvent& e, void* stream, std::string* err);
bool streamWaitEvent(void* stream, const GpuEvent& e, std::string* err);
bool waitEvent(const GpuEvent& e, std::string* err);

} // namespace kt::cuda

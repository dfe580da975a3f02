#include "kernels/cuda/Memory.h"

#include "kernels/cuda/Stream.cuh"

#include <atomic>

namespace kt::cuda {

namespace {
void* gStream = nullptr;
std::atomic<unsigned long long> gLaunches{0};
} // namespace

void* currentStream() {
  return gStream;
}

void setCurrentStream(void* s) {
  gStream = s;
}

void countLaunches(int n) {
  gLaunches.fetch_add(static_cast<unsigned long long>(n), std::memory_order_relaxed);
}

unsigned long long launchCount() {
  return gLaunches.load(std::memory_order_relaxed);
}

bool setDevice(int device, std::string* err) {
  return cudaOk(cudaSetDevice(device), "cudaSetDevice", err);
}

void* createStream(std::string* err) {
  cudaStream_t s = nullptr;
  if (!cudaOk(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate", err))
    return nullptr;
  return s;
}

void destroyStream(void* s) {
  if (s)
    cudaStreamDestroy(static_cast<cudaStream_t>(s));
}

bool synchronizeStream(std::string* err) {
  return cudaOk(cudaStreamSynchronize(stream()), "GPU work", err);
}

void* allocate(size_t bytes, std::string* err) {
  void* p = nullptr;
  if (!cudaOk(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc", err)) {
    if (err)
      *err += " (asked for " + std::to_string(bytes) + " bytes)";
    return nullptr;
  }
  return p;
}

void release(void* p) {
  if (p)
    cudaFree(p);
}

// A plain cudaMemcpy runs on the legacy default stream, which does not wait for a non-blocking
// stream's kernels: the blocking copies go through the current stream and wait for it instead.
bool toDevice(void* dst, const void* src, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "copy to GPU",
                err) &&
         cudaOk(cudaStreamSynchronize(stream()), "copy to GPU", err);
}

bool toHost(void* dst, const void* src, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "copy from GPU",
                err) &&
         cudaOk(cudaStreamSynchronize(stream()), "copy from GPU", err);
}

bool deviceCopy(void* dst, const void* src, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "copy on GPU",
                err);
}

bool deviceCopy2D(void* dst, size_t dstPitch, const void* src, size_t srcPitch, size_t width,
                  size_t rows, std::string* err) {
  if (!rows)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpy2DAsync(dst, dstPitch, src, srcPitch, width, rows,
                                  cudaMemcpyDeviceToDevice, stream()),
                "strided copy on GPU", err);
}

bool fillZero(void* p, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemsetAsync(p, 0, bytes, stream()), "cudaMemset", err);
}

bool synchronize(std::string* err) {
  return cudaOk(cudaDeviceSynchronize(), "GPU work", err);
}

bool launchOk(std::string* err) {
  return cudaOk(cudaGetLastError(), "kernel launch", err);
}

bool memoryInfo(size_t* freeBytes, size_t* totalBytes, std::string* err) {
  return cudaOk(cudaMemGetInfo(freeBytes, totalBytes), "cudaMemGetInfo", err);
}

void* allocatePinned(size_t bytes, std::string* err) {
  void* p = nullptr;
  if (!cudaOk(cudaMallocHost(&p, bytes ? bytes : 1), "cudaMallocHost", err)) {
    if (err)
      *err += " (asked for " + std::to_string(bytes) + " bytes of pinned host memory)";
    return nullptr;
  }
  return p;
}

void releasePinned(void* p) {
  if (p)
    cudaFreeHost(p);
}

bool toHostAsync(void* dst, const void* src, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "copy from GPU",
                err);
}

bool toDeviceAsync(void* dst, const void* src, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "copy to GPU",
                err);
}

bool createEvent(GpuEvent* e, std::string* err) {
  cudaEvent_t ev = nullptr;
  if (!cudaOk(cudaEventCreate(&ev), "cudaEventCreate", err))
    return false;
  e->handle = ev;
  return true;
}

void destroyEvent(GpuEvent* e) {
  if (e->handle)
    cudaEventDestroy(static_cast<cudaEvent_t>(e->handle));
  e->handle = nullptr;
}

bool recordEvent(const GpuEvent& e, std::string* err) {
  return cudaOk(cudaEventRecord(static_cast<cudaEvent_t>(e.handle), stream()), "cudaEventRecord",
                err);
}

bool eventDone(const GpuEvent& e) {
  const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e.handle));
  if (r != cudaSuccess && r != cudaErrorNotReady)
    cudaGetLastError();
  return r == cudaSuccess;
}

bool elapsedMs(const GpuEvent& start, const GpuEvent& end, float* ms, std::string* err) {
  return cudaOk(cudaEventSynchronize(static_cast<cudaEvent_t>(end.handle)), "cudaEventSynchronize",
                err) &&
         cudaOk(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(start.handle),
                                     static_cast<cudaEvent_t>(end.handle)),
                "cudaEventElapsedTime", err);
}

bool toDeviceAsyncOn(void* s, void* dst, const void* src, size_t bytes, std::string* err) {
  if (!bytes)
    return true;
  countLaunches();
  return cudaOk(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                s ? static_cast<cudaStream_t>(s) : stream()),
                "copy to GPU", err);
}

bool recordEventOn(const GpuEvent& e, void* s, std::string* err) {
  return cudaOk(cudaEventRecord(static_cast<cudaEvent_t>(e.handle),
                                s ? static_cast<cudaStream_t>(s) : stream()),
                "cudaEventRecord", err);
}

bool streamWaitEvent(void* s, const GpuEvent& e, std::string* err) {
  return cudaOk(cudaStreamWaitEvent(s ? static_cast<cudaStream_t>(s) : stream(),
                                    static_cast<cudaEvent_t>(e.handle), 0),
                "cudaStreamWaitEvent", err);
}

bool waitEvent(const GpuEvent& e, std::string* err) {
  return cudaOk(cudaEventSynchronize(static_cast<cudaEvent_t>(e.handle)), "cudaEventSynchronize",
                err);
}

} // namespace kt::cuda

#include "kernels/cuda/Memory.h"

#include <cuda_runtime.h>

namespace kt::cuda {

namespace {
bool ok(cudaError_t e, const char* what, std::string* err) {
  if (e == cudaSuccess)
    return true;
  if (err)
    *err = std::string(what) + ": " + cudaGetErrorString(e);
  cudaGetLastError(); // clear a non-sticky error so the next call starts clean
  return false;
}
} // namespace

bool setDevice(int device, std::string* err) {
  return ok(cudaSetDevice(device), "cudaSetDevice", err);
}

void* allocate(size_t bytes, std::string* err) {
  void* p = nullptr;
  if (!ok(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc", err)) {
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

bool toDevice(void* dst, const void* src, size_t bytes, std::string* err) {
  return !bytes || ok(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to GPU", err);
}

bool toHost(void* dst, const void* src, size_t bytes, std::string* err) {
  return !bytes || ok(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy from GPU", err);
}

bool deviceCopy(void* dst, const void* src, size_t bytes, std::string* err) {
  return !bytes ||
         ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0), "copy on GPU", err);
}

bool deviceCopy2D(void* dst, size_t dstPitch, const void* src, size_t srcPitch, size_t width,
                  size_t rows, std::string* err) {
  return !rows || ok(cudaMemcpy2DAsync(dst, dstPitch, src, srcPitch, width, rows,
                                       cudaMemcpyDeviceToDevice, 0),
                     "strided copy on GPU", err);
}

bool fillZero(void* p, size_t bytes, std::string* err) {
  return !bytes || ok(cudaMemsetAsync(p, 0, bytes, 0), "cudaMemset", err);
}

bool synchronize(std::string* err) {
  return ok(cudaDeviceSynchronize(), "GPU work", err);
}

bool launchOk(std::string* err) {
  return ok(cudaGetLastError(), "kernel launch", err);
}

bool memoryInfo(size_t* freeBytes, size_t* totalBytes, std::string* err) {
  return ok(cudaMemGetInfo(freeBytes, totalBytes), "cudaMemGetInfo", err);
}

void* allocatePinned(size_t bytes, std::string* err) {
  void* p = nullptr;
  if (!ok(cudaMallocHost(&p, bytes ? bytes : 1), "cudaMallocHost", err)) {
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
  return !bytes ||
         ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, 0), "copy from GPU", err);
}

bool toDeviceAsync(void* dst, const void* src, size_t bytes, std::string* err) {
  return !bytes ||
         ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, 0), "copy to GPU", err);
}

bool createEvent(GpuEvent* e, std::string* err) {
  cudaEvent_t ev = nullptr;
  if (!ok(cudaEventCreate(&ev), "cudaEventCreate", err))
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
  return ok(cudaEventRecord(static_cast<cudaEvent_t>(e.handle), 0), "cudaEventRecord", err);
}

bool eventDone(const GpuEvent& e) {
  const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e.handle));
  if (r != cudaSuccess && r != cudaErrorNotReady)
    cudaGetLastError();
  return r == cudaSuccess;
}

bool elapsedMs(const GpuEvent& start, const GpuEvent& end, float* ms, std::string* err) {
  return ok(cudaEventSynchronize(static_cast<cudaEvent_t>(end.handle)), "cudaEventSynchronize",
            err) &&
         ok(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(start.handle),
                                 static_cast<cudaEvent_t>(end.handle)),
            "cudaEventElapsedTime", err);
}

} // namespace kt::cuda

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

} // namespace kt::cuda

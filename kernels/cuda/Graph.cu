#include "kernels/cuda/Graph.h"

#include "kernels/cuda/Stream.cuh"

namespace kt::cuda {

bool beginCapture(std::string* err) {
  if (!stream()) {
    if (err)
      *err = "the legacy default stream cannot be captured";
    return false;
  }
  return cudaOk(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal),
                "cudaStreamBeginCapture", err);
}

bool endCapture(void** exec, size_t* nodes, std::string* err) {
  *exec = nullptr;
  *nodes = 0;
  cudaGraph_t graph = nullptr;
  if (!cudaOk(cudaStreamEndCapture(stream(), &graph), "cudaStreamEndCapture", err)) {
    if (graph)
      cudaGraphDestroy(graph);
    return false;
  }
  if (!graph) {
    if (err)
      *err = "cudaStreamEndCapture returned no graph";
    return false;
  }
  size_t n = 0;
  cudaGraphExec_t e = nullptr;
  const bool good = cudaOk(cudaGraphGetNodes(graph, nullptr, &n), "cudaGraphGetNodes", err) &&
                    cudaOk(cudaGraphInstantiate(&e, graph, 0), "cudaGraphInstantiate", err);
  cudaGraphDestroy(graph); // the executable graph keeps what it needs
  if (!good)
    return false;
  *exec = e;
  *nodes = n;
  return true;
}

bool capturing() {
  cudaStreamCaptureStatus s = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(), &s) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return s != cudaStreamCaptureStatusNone;
}

bool launchGraph(void* exec, std::string* err) {
  countLaunches();
  return cudaOk(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), stream()), "cudaGraphLaunch",
                err);
}

void destroyGraph(void* exec) {
  if (exec)
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

} // namespace kt::cuda

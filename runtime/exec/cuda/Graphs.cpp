// CUDA graphs for the decode step of plans whose steps all run on the GPU (docs/cuda.md, "CUDA
// graphs"). A decode step of DeepSeek-V2-Lite queues hundreds of small launches whose CPU-side
// cost exceeds their GPU time; a graph replays them with one launch.
//
// Per token shape (sequence slots, chunk lengths, sampled rows) the first run is eager and sizes
// every buffer; the second is captured and every later one replays. What changes from token to
// token lives in device memory that the capture points to: the token ids and positions (the
// entry's input buffers, copied before the replay), each chunk's first position (the step
// parameters: KV appends and attention read it on the GPU), the KV cache's page table (its rows
// updated before every run, eager or replayed, by prepareKv; the pool grows without moving a
// page, so a sequence crossing into a new page or the pool growing changes no pointer). A freed
// device buffer (an activation or scratch buffer grew, cuBLAS's scratch grew, the page table
// gained slots) makes every graph stale; the shape is then captured again. Nothing inside a capture
// may allocate or synchronise: the backend refuses with an error, the capture is dropped, graphs
// are turned off with one line on stderr, and the step runs eagerly.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Graph.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"

#include <algorithm>
#include <cstdio>
#include <exception>

namespace kt::cudaops {

namespace {
void need(bool ok, const std::string& what, const std::string& err) {
  if (!ok)
    throw Error(what + ": " + err);
}
} // namespace

bool CudaBackend::capturable(const plan::EntryPoint& ep) {
  auto it = capturable_.find(&ep);
  if (it != capturable_.end())
    return it->second;
  const plan::Plan& p = plan_.root();
  bool ok = ep.name() && ep.name()->str() == "decode";
  for (const plan::Step* s : *ep.steps()) {
    if (!ok)
      break;
    if (p.devices()->Get(s->device())->kind() != plan::DeviceKind::GPU) {
      ok = false; // a host step synchronises
    } else if (s->op() == plan::OpKind::Moe) {
      // Routed experts on the CPU (all, or those of a split layer) make the step wait for the
      // host; the GPU-resident case never leaves the GPU at decode sizes.
      const int32_t gate = s->weights()->Get(uint32_t(plan::slots::Gate));
      ok = gate >= 0 && gpuWeights_[size_t(gate)].data && gpuWeights_[size_t(gate)].local.empty();
    }
  }
  capturable_[&ep] = ok;
  return ok;
}

std::string CudaBackend::graphKey(const plan::EntryPoint& ep, const Batch& batch) const {
  std::string k = ep.name()->str();
  for (const SequenceChunk& c : batch.chunks)
    k += " " + std::to_string(c.slot) + ":" + std::to_string(c.start) + "+" + std::to_string(c.len);
  k += " |";
  for (int64_t r : batch.outputRows)
    k += " " + std::to_string(r);
  return k;
}

// Each chunk's first position as device int32s (blocking copy: the stream is idle at the start
// of a run, the previous one ended by copying its logits back).
void CudaBackend::uploadStepParams(const Batch& batch) {
  std::vector<int32_t> pos0;
  for (const SequenceChunk& c : batch.chunks)
    pos0.push_back(int32_t(c.pos0));
  ensure(stepParamsBuf_, std::max<size_t>(pos0.size(), 64) * 4);
  stepParams_ = static_cast<int32_t*>(stepParamsBuf_.data);
  std::string err;
  need(cuda::toDevice(stepParams_, pos0.data(), pos0.size() * 4, &err),
       gpuName_ + ": step parameters", err);
}

// The entry's inputs (token ids, positions) into their GPU buffers before a capture or replay:
// inside the graph they are read from there.
void CudaBackend::uploadInputs(const plan::EntryPoint& ep, std::vector<Activation>& buffers) {
  for (uint32_t i : *ep.inputs())
    toGpu(i, buffers);
}

void CudaBackend::disableGraphs(const std::string& why) {
  graphsOn_ = false;
  std::fprintf(stderr, "[kt-rt] %s: CUDA graphs off, decoding with eager launches: %s\n",
               gpuName_.c_str(), why.c_str());
}

bool CudaBackend::capture(Captured& g, const plan::EntryPoint& ep, std::vector<Activation>& buffers,
                          const std::function<void()>& runSteps) {
  cuda::destroyGraph(g.exec);
  g.exec = nullptr;
  std::string err, why;
  if (!cuda::beginCapture(&err)) {
    disableGraphs(err);
    return false;
  }
  capturing_ = true;
  try {
    runSteps();
  } catch (const std::exception& e) { // the capture must end whatever went wrong
    why = e.what();
  }
  capturing_ = false;
  void* exec = nullptr;
  size_t nodes = 0;
  const bool ended = cuda::endCapture(&exec, &nodes, &err);
  if (!why.empty() || !ended) {
    cuda::destroyGraph(exec);
    disableGraphs(why.empty() ? err : why);
    return false;
  }
  g.exec = exec;
  g.nodes = nodes;
  g.generation = memoryGeneration();
  g.shapes.clear();
  for (const plan::Step* s : *ep.steps())
    for (uint32_t o : *s->outputs())
      g.shapes.push_back({o, {buffers[o].rows, buffers[o].cols}});
  return true;
}

void CudaBackend::replay(Captured& g, const plan::EntryPoint& ep,
                         std::vector<Activation>& buffers) {
  std::string err;
  need(cuda::launchGraph(g.exec, &err), gpuName_ + ": replaying the decode step", err);
  ++graphReplays_;
  graphNodes_ += int64_t(g.nodes);
  // What running the steps would have left: every output current on the GPU, with its shape.
  for (const auto& [index, shape] : g.shapes) {
    Activation& a = buffers[index];
    a.rows = shape.first;
    a.cols = shape.second;
    a.f.clear();
    a.i.clear();
    where_[index] = Where::Gpu;
  }
  (void)ep;
}

bool CudaBackend::runEntry(const plan::EntryPoint& ep, const Batch& batch, bool plain,
                           std::vector<Activation>& buffers,
                           const std::function<void()>& runSteps) {
  prepareKv(batch); // every chunk's KV pages, before anything of the run is queued
  uploadStepParams(batch);
  if (!graphsOn_ || !plain || batch.tokens() > cuda::kMoeDecodeMaxTokens || !capturable(ep))
    return false;
  Captured& g = graphs_[graphKey(ep, batch)];
  if (g.runs == 0) { // the first run of this shape sizes every buffer, eagerly
    ++g.runs;
    runSteps();
    return true;
  }
  uploadInputs(ep, buffers);
  if (g.exec && g.generation != memoryGeneration()) {
    cuda::destroyGraph(g.exec);
    g.exec = nullptr;
  }
  if (!g.exec && !capture(g, ep, buffers, runSteps)) {
    beginRun(buffers); // the failed capture ran nothing: start the step again, eagerly
    runSteps();
    return true;
  }
  replay(g, ep, buffers);
  return true;
}

} // namespace kt::cudaops

#pragma once
// CUDA graphs of the current stream (Memory.h), as plain C++: the backend captures a decode
// step's launches once and replays them. Every function reports failure through its return value
// and *err; none aborts or throws.
#include <cstddef>
#include <string>

namespace kt::cuda {

// Starts capturing the current stream (thread-local mode: this thread's calls that would
// synchronise fail instead of silently breaking the capture). The stream must not be the legacy
// default stream.
bool beginCapture(std::string* err);
// Ends the capture; on success *exec is an instantiated graph of *nodes nodes. Always ends the
// capture, also when it failed (then *exec is null and *err says why).
bool endCapture(void** exec, size_t* nodes, std::string* err);
// Whether the current stream is being captured.
bool capturing();
// Queues the graph on the current stream.
bool launchGraph(void* exec, std::string* err);
void destroyGraph(void* exec);

} // namespace kt::cuda

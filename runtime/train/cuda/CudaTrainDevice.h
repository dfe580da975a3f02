#pragma once
// The CUDA side of TrainExecutor (TrainDevice.h), compiled only when CUDA is: frozen base weights
// of the GPU steps uploaded once as f32 (widened on the host with MatrixView::rowToF32, exactly
// the CPU's values, in 64 MiB blocks), one device buffer per plan buffer (grow-only, kept across
// micro-batches), device copies of the adapters' A/B uploaded at the start of every micro-batch
// (after each optimizer update) and dA/dB accumulated on the GPU and added into the AdapterSet's
// host gradients at its end (AdamW stays on the host). Steps run with kernels/cuda/grad.
#include "runtime/train/TrainDevice.h"

#include <memory>
#include <string>

namespace kt::train {

// Throws kt::Error "<where>no GPU was found: <why>" when CUDA finds no usable GPU.
std::unique_ptr<TrainDevice> makeCudaTrainDevice(const LoadedPlan& plan, AdapterSet& adapters,
                                                 ThreadPool& pool, const std::string& where);

} // namespace kt::train

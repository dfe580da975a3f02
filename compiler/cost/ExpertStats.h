#pragma once
// Measured routed-expert heat: how often each expert of each MoE layer was chosen (counts or
// frequencies, e.g. from kt-tune over a calibration set). The partitioner uses it to put the
// hottest experts on the GPU; without it every expert is equally likely. Format:
//   {"tokens": 123456,                          (optional, informational)
//    "layers": {"1": [812, 95, 1203, ...],      (one number per expert; layer keys are the
//               "2": [...]},                     `layer` attribute of kt.moe)
//    "window_busiest_quarter": {"1": 0.32, ...}} (optional: per layer, the mean over the
//                                                 calibration's prefill windows of the share
//                                                 of a window's choices that its busiest
//                                                 quarter of experts took, in (0, 1])
// Values are relative: each layer is normalised so that its experts' probabilities sum to
// experts_per_token (every token picks k experts). Never throws (see HardwareProfile.h).
#include <map>
#include <string>
#include <vector>

namespace kt::cost {

struct ExpertStats {
  std::string origin; // file name, for error messages
  std::map<int, std::vector<double>> layers;
  std::map<int, double> windowBusiestQuarter; // layer -> share; absent: not measured
};

// The share of the sum of `weights` (an expert's probability or count each) that the busiest
// quarter of them (at least one) holds; 0 when empty or all zero. kt-tune measures it per layer
// and window, the cost model compares it with the probe's routings (grouped_moe_skew).
double busiestQuarterShare(std::vector<double> weights);

// The share of one prefill window's choices that `layer`'s busiest quarter of experts took
// (kt-tune's window_busiest_quarter), or 0 when `stats` is null or lacks it.
double windowBusiestQuarter(const ExpertStats* stats, int layer);

bool parseExpertStats(const std::string& jsonText, const std::string& origin, ExpertStats* out,
                      std::string* error);
bool loadExpertStats(const std::string& path, ExpertStats* out, std::string* error);

// The probability that one token activates each of the `numExperts` experts of `layer`
// (k * v_e / sum(v), capped at 1); uniform k/E when `stats` is null or lacks the layer.
// Fails when the layer's list does not have numExperts entries.
bool expertProbabilities(const ExpertStats* stats, int layer, int numExperts, int topK,
                         std::vector<double>* probs, std::string* error);

} // namespace kt::cost

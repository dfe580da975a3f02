#include "frontends/hf/HfModel.h"

#include "frontends/hf/HfCheckpoint.h"
#include "frontends/hf/HfTensors.h"
#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <climits>
#include <cstdlib>
#include <fstream>

namespace kt::hf {

namespace {

class Builder {
public:
  Builder(const HfCheckpoint& ckpt, ModelDesc& m) : ckpt_(ckpt), m_(m) {}

  int add(const std::string& symbol, const std::string& hfName, const std::vector<int64_t>& shape) {
    TensorRef t = ckpt_.require(hfName, shape);
    WeightDesc w{symbol, hfName, t.info->dtype, shape, {{t.file, t.info->offset, t.info->size}}};
    m_.weights.push_back(std::move(w));
    return int(m_.weights.size() - 1);
  }

  // One weight [experts, ...shape] whose slices are the per-expert tensors, left where they are.
  int addStacked(const std::string& symbol, const std::string& pattern, int experts,
                 const std::vector<int64_t>& shape) {
    WeightDesc w;
    w.symbol = symbol;
    w.hfName = pattern;
    w.shape = shape;
    w.shape.insert(w.shape.begin(), experts);
    for (int e = 0; e < experts; ++e) {
      std::string name = expertTensorName(pattern, e);
      TensorRef t = ckpt_.require(name, shape);
      if (e == 0)
        w.dtype = t.info->dtype;
      else if (t.info->dtype != w.dtype)
        throw Error(ckpt_.files()[size_t(t.file)]->path() + ": tensor '" + name + "' is " +
                    dtypeName(t.info->dtype) + " but expert 0 is " + dtypeName(w.dtype));
      w.segments.push_back({t.file, t.info->offset, t.info->size});
    }
    m_.weights.push_back(std::move(w));
    return int(m_.weights.size() - 1);
  }

private:
  const HfCheckpoint& ckpt_;
  ModelDesc& m_;
};

std::string absolutePath(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

} // namespace

ModelDesc describeModel(const std::string& dir) {
  ModelDesc m;
  m.dir = absolutePath(dir);
  m.config = parseConfig(dir);
  const ModelConfig& c = m.config;
  HfCheckpoint ckpt(dir);
  for (const auto& f : ckpt.files()) {
    m.files.push_back(absolutePath(f->path()));
    m.fileSizes.push_back(f->fileSize());
  }
  // Which tensors exist and their shapes come from one table (HfTensors), shared with kt-synth.
  Builder b(ckpt, m);
  m.layers.resize(size_t(c.numLayers));
  for (int l = 0; l < c.numLayers; ++l) {
    m.layers[size_t(l)].index = l;
    m.layers[size_t(l)].moe = c.layerIsMoe[size_t(l)];
  }
  for (const TensorSpec& s : tensorSpecs(c)) {
    int w = s.experts > 0 ? b.addStacked(s.symbol, s.hfName, s.experts, s.shape)
                          : b.add(s.symbol, s.hfName, s.shape);
    switch (s.slot) {
    case TensorSlot::Embed:
      m.embed = w;
      break;
    case TensorSlot::FinalNorm:
      m.finalNorm = w;
      break;
    case TensorSlot::LmHead:
      m.lmHead = w;
      break;
    case TensorSlot::InputNorm:
      m.layers[size_t(s.layer)].inputNorm = w;
      break;
    case TensorSlot::PostNorm:
      m.layers[size_t(s.layer)].postNorm = w;
      break;
    case TensorSlot::Attention:
      m.layers[size_t(s.layer)].attention[s.role] = w;
      break;
    case TensorSlot::Ffn:
      m.layers[size_t(s.layer)].ffn[s.role] = w;
      break;
    }
  }
  // Tied embeddings reuse the table; some tied checkpoints still carry a copy of lm_head.weight.
  if (c.tieEmbeddings)
    m.lmHead = m.embed;

  if (std::ifstream(dir + "/tokenizer.json").good()) {
    m.tokenizerJson = readTextFile(dir + "/tokenizer.json");
    if (std::ifstream(dir + "/tokenizer_config.json").good())
      m.tokenizerConfigJson = readTextFile(dir + "/tokenizer_config.json");
  }
  return m;
}

} // namespace kt::hf

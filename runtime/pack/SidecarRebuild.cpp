#include "runtime/pack/SidecarRebuild.h"

#include "runtime/io/MappedFile.h"
#include "runtime/pack/PackMatrix.h"
#include "runtime/pack/SourceSlices.h"
#include "runtime/support/DType.h"
#include "runtime/support/Error.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace kt::pack {

namespace {

// One packed matrix: where its source is and where its blob goes.
struct Job {
  const plan::Weight* weight;
  int64_t slice, slices, n, k;
  ByteRange src, dst;
};

std::string weightName(const plan::Weight& w) {
  return w.name() ? w.name()->str() : "?";
}

std::string sysError(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

// Every packed matrix of the plan, in plan order.
std::vector<Job> collectJobs(const LoadedPlan& plan) {
  std::vector<Job> jobs;
  const plan::Plan& p = plan.root();
  if (!p.weights())
    return jobs;
  for (const plan::Weight* w : *p.weights()) {
    if (w->layout() != plan::Layout::Packed)
      continue;
    const std::string what = plan.origin() + ": packed weight '" + weightName(*w) + "'";
    if (!w->source() || w->source()->size() == 0)
      throw Error(what + " records no source segments (the plan predates `kt-rt pack`; recompile "
                         "it with this release's kt-compile)");
    MatrixStack m;
    if (!matrixStack(std::vector<int64_t>(w->shape()->begin(), w->shape()->end()), &m))
      throw Error(what + " is not a matrix or a stack of matrices");
    std::vector<ByteRange> source, slices;
    for (const plan::Segment* s : *w->source())
      source.push_back({s->file(), s->offset(), s->size()});
    std::string why;
    if (!sourceSlices(m, dtypeSize(DType(w->dtype())), source, &slices, &why))
      throw Error(what + ": " + why);
    if (w->segments()->size() != slices.size())
      throw Error(what + " has " + std::to_string(w->segments()->size()) + " packed blobs for " +
                  std::to_string(slices.size()) + " matrices");
    for (size_t i = 0; i < slices.size(); ++i) {
      const plan::Segment* d = w->segments()->Get(uint32_t(i));
      jobs.push_back(
          {w, int64_t(i), m.slices, m.n, m.k, slices[i], {d->file(), d->offset(), d->size()}});
    }
  }
  return jobs;
}

// An output sidecar being written: PATH.tmp, sized up front (gaps stay zero), renamed at the end.
struct Sidecar {
  std::string path, tmp;
  uint64_t size = 0;
  int fd = -1;
};

void writeAll(int fd, const uint8_t* data, size_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, off_t(offset));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      throw Error(sysError("error writing", path));
    data += n;
    size -= size_t(n);
    offset += uint64_t(n);
  }
}

class Rebuild {
public:
  Rebuild(const LoadedPlan& plan, const RebuildOptions& opt) : plan_(plan), opt_(opt) {}

  RebuildReport run() {
    jobs_ = collectJobs(plan_);
    if (jobs_.empty())
      throw Error(plan_.origin() + ": has no packed weights, so no sidecar to build (plans "
                                   "compiled with --cpu-quant or --dtype bf16 on CPU have them)");
    openSources();
    try {
      openSidecars();
      packAll();
    } catch (...) {
      for (auto& [file, s] : sidecars_)
        if (s.fd >= 0) {
          ::close(s.fd);
          ::unlink(s.tmp.c_str());
        }
      throw;
    }
    // No fsync: the sidecar is derived data (rebuilt by running pack again), and the load-time
    // header check (WeightStore) refuses a torn one; forcing GBs to disk would only cost time.
    RebuildReport r;
    for (auto& [file, s] : sidecars_) {
      const bool ok = ::close(s.fd) == 0;
      s.fd = -1;
      if (!ok || std::rename(s.tmp.c_str(), s.path.c_str()) != 0) {
        ::unlink(s.tmp.c_str());
        throw Error(sysError("cannot finish", s.path));
      }
      r.sidecars.push_back(s.path);
    }
    r.matrices = jobs_.size();
    r.sourceBytes = readBytes_.load();
    r.packedBytes = writtenBytes_.load();
    r.threads = threads_;
    r.seconds = seconds_;
    return r;
  }

private:
  const plan::WeightFile& file(uint32_t i) const {
    const plan::Plan& p = plan_.root();
    return *p.weight_files()->Get(i);
  }
  std::string filePath(uint32_t i) const { return plan_.resolveWeightPath(file(i).path()->str()); }

  // Maps every checkpoint file the sources name, after checking it is the one compiled against.
  void openSources() {
    std::set<uint32_t> files;
    for (const Job& j : jobs_)
      files.insert(j.src.file);
    for (uint32_t f : files) {
      const std::string path = filePath(f);
      struct stat st;
      if (::stat(path.c_str(), &st) != 0)
        throw Error(plan_.origin() + ": checkpoint file '" + path +
                    "' (source of packed weights) " + "cannot be read: " + std::strerror(errno) +
                    " (recreate the checkpoint the plan was compiled from at that path)");
      if (uint64_t(st.st_size) != file(f).size())
        throw Error(plan_.origin() + ": checkpoint file '" + path + "' has " +
                    std::to_string(st.st_size) + " bytes but the plan was compiled against " +
                    std::to_string(file(f).size()) +
                    " (another checkpoint: regenerate it with the same config, dtype and seed)");
      sources_[f] = std::make_unique<MappedFile>(path);
    }
    for (const Job& j : jobs_)
      if (j.src.offset + j.src.size > file(j.src.file).size())
        throw Error(plan_.origin() + ": packed weight '" + weightName(*j.weight) +
                    "' has its source outside '" + filePath(j.src.file) + "'");
  }

  void openSidecars() {
    for (const Job& j : jobs_) {
      if (sources_.count(j.dst.file))
        throw Error(plan_.origin() + ": packed weight '" + weightName(*j.weight) +
                    "' would be written into its own checkpoint file '" + filePath(j.dst.file) +
                    "'");
      Sidecar& s = sidecars_[j.dst.file];
      if (s.path.empty()) {
        s.path = filePath(j.dst.file);
        s.tmp = s.path + ".tmp";
        s.size = file(j.dst.file).size();
      }
      if (j.dst.offset + j.dst.size > s.size || j.dst.offset % packedAlign() != 0)
        throw Error(plan_.origin() + ": packed weight '" + weightName(*j.weight) + "' lies at " +
                    std::to_string(j.dst.offset) + "+" + std::to_string(j.dst.size) +
                    ", not 64-byte aligned inside the " + std::to_string(s.size) + " bytes of '" +
                    s.path + "'");
    }
    for (auto& [f, s] : sidecars_) {
      if (!opt_.force && ::access(s.path.c_str(), F_OK) == 0)
        throw Error("'" + s.path + "' already exists (pass --force to rebuild it)");
      s.fd = ::open(s.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (s.fd < 0)
        throw Error(sysError("cannot create", s.tmp));
      if (::ftruncate(s.fd, off_t(s.size)) != 0)
        throw Error(sysError("cannot size", s.tmp)); // run() removes it
    }
  }

  void packOne(const Job& j, std::vector<uint8_t>& blob) {
    const size_t bytes = packedMatrixBytes(int(j.weight->packed_format()), j.n, j.k);
    if (bytes != j.dst.size)
      throw Error("packs to " + std::to_string(bytes) + " bytes but the plan records " +
                  std::to_string(j.dst.size) + " (compiled by another kt release?)");
    blob.resize(bytes);
    packMatrix(int(j.weight->packed_format()), DType(j.weight->dtype()),
               sources_.at(j.src.file)->data() + j.src.offset, j.n, j.k, blob.data());
    const Sidecar& s = sidecars_.at(j.dst.file);
    writeAll(s.fd, blob.data(), blob.size(), j.dst.offset, s.tmp);
    readBytes_ += j.src.size;
    writtenBytes_ += bytes;
  }

  void worker() {
    std::vector<uint8_t> blob;
    for (;;) {
      const size_t i = next_.fetch_add(1);
      if (i >= jobs_.size() || failed_.load())
        break;
      const Job& j = jobs_[i];
      try {
        packOne(j, blob);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!failed_.exchange(true)) {
          std::string where = "packed weight '" + weightName(*j.weight) + "'";
          if (j.slices > 1)
            where +=
                " (matrix " + std::to_string(j.slice) + " of " + std::to_string(j.slices) + ")";
          error_ = plan_.origin() + ": " + where + ": " + e.what();
        }
      }
      done_.fetch_add(1);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (--running_ == 0)
      cv_.notify_all();
  }

  void packAll() {
    int threads = opt_.threads > 0 ? opt_.threads : int(std::thread::hardware_concurrency());
    threads_ = std::max(1, std::min<int>(threads, int(jobs_.size())));
    uint64_t totalSource = 0;
    for (const Job& j : jobs_)
      totalSource += j.src.size;
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    running_ = threads_;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads_; ++t)
      pool.emplace_back([this] { worker(); });
    // Progress: a refreshed line on a terminal, one line every 10 s in a log.
    const bool tty = ::isatty(2) != 0;
    const double every = tty ? 0.5 : 10.0;
    bool printed = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::duration<double>(every),
                           [&] { return running_ == 0; })) {
        if (!opt_.progress)
          continue;
        const double s = elapsed(), mib = double(readBytes_.load()) / (1 << 20);
        std::fprintf(stderr, "%s[kt-rt pack] %zu/%zu matrices, %.0f/%.0f MiB read, %.0f MiB/s%s",
                     tty ? "\r" : "", done_.load(), jobs_.size(), mib,
                     double(totalSource) / (1 << 20), mib / s, tty ? "" : "\n");
        printed = true;
      }
    }
    for (std::thread& t : pool)
      t.join();
    seconds_ = elapsed();
    if (printed && tty)
      std::fprintf(stderr, "\n");
    if (failed_)
      throw Error(error_);
  }

  const LoadedPlan& plan_;
  RebuildOptions opt_;
  std::vector<Job> jobs_;
  std::map<uint32_t, std::unique_ptr<MappedFile>> sources_;
  std::map<uint32_t, Sidecar> sidecars_;
  std::atomic<size_t> next_{0}, done_{0};
  std::atomic<uint64_t> readBytes_{0}, writtenBytes_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0, threads_ = 1;
  std::string error_;
  double seconds_ = 0;
};

} // namespace

RebuildReport rebuildSidecars(const LoadedPlan& plan, const RebuildOptions& options) {
  return Rebuild(plan, options).run();
}

} // namespace kt::pack

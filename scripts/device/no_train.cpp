// The device build's kt-rt is inference only: runtime/train and the hardware probe are left out.
#include "tools/kt-rt/Commands.h"

#include <cstdio>

namespace kt::cli {

int cmdTrain(int, char**) {
  std::fprintf(stderr, "kt-rt train: not in this build (scripts/device: inference only)\n");
  return 2;
}

int cmdProbe(int, char**) {
  std::fprintf(stderr, "kt-rt probe: not in this build (scripts/device: inference only)\n");
  return 2;
}

} // namespace kt::cli

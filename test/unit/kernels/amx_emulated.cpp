// MatmulAmx.cpp compiled against the scalar AMX model (AmxEmulation.h) as matmulAmxEmulated, so
// the AMX kernel's tiling is tested on CPUs without AMX. Needs AVX-512 (the kernel's epilogue).
#define KT_AMX_EMULATE "test/unit/kernels/AmxEmulation.h"
#define matmulAmx matmulAmxEmulated
#include "kernels/cpu/quant/MatmulAmx.cpp"

# CUDA is optional: when nvcc exists (default /usr/local/cuda) kernels/cuda is compiled for sm_90 even
# on machines with no GPU, so CI proves it builds. At run time a missing GPU is reported, not a crash.
set(KT_HAVE_CUDA OFF)
if(NOT KT_ENABLE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    # A compiler probe that fails to report nvcc's implicit include directories (seen once here
    # on a loaded 2-core machine: the list came back empty) makes CMake pass
    # -isystem=/usr/include to nvcc, and <cmath>'s #include_next <math.h> then fails. The host
    # compiler always searches /usr/include: say so, whatever the probe reported.
    if(NOT "/usr/include" IN_LIST CMAKE_CUDA_IMPLICIT_INCLUDE_DIRECTORIES)
      list(APPEND CMAKE_CUDA_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
    endif()
    find_package(CUDAToolkit REQUIRED)
    set(KT_HAVE_CUDA ON)
    message(STATUS "CUDA: compiling kernels/cuda for sm_${CMAKE_CUDA_ARCHITECTURES}")
  elseif(KT_ENABLE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "KT_ENABLE_CUDA=ON but no CUDA compiler was found")
  else()
    message(STATUS "CUDA: nvcc not found, kernels/cuda skipped")
  endif()
endif()

# Third-party packages, all from Debian 12 (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(FlatBuffers 2.0.8 REQUIRED CONFIG)
find_package(nlohmann_json 3.10 REQUIRED CONFIG)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

find_program(FLATC_EXECUTABLE flatc REQUIRED)
execute_process(COMMAND ${FLATC_EXECUTABLE} --version OUTPUT_VARIABLE KT_FLATC_VERSION
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT KT_FLATC_VERSION MATCHES "2\\.0\\.8")
  message(FATAL_ERROR "flatc must be 2.0.8 to match the headers; found '${KT_FLATC_VERSION}'")
endif()

if(KT_BUILD_TESTS)
  find_package(GTest REQUIRED)
  find_package(benchmark QUIET)
endif()

if(KT_BUILD_COMPILER)
  find_package(MLIR 19.1 REQUIRED CONFIG HINTS /usr/lib/llvm-19/lib/cmake/mlir)
  message(STATUS "Using MLIR from ${MLIR_DIR}")
  list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
  # Link the single libMLIR.so dylib (static MLIR links take minutes on small machines).
  set(MLIR_LINK_COMPONENTS MLIR)
  include(TableGen)
  include(AddLLVM)
  include(AddMLIR)
  # CMP0116 (mlir-tblgen depfiles) is set OLD in the top-level CMakeLists.txt.
  include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
  add_definitions(${LLVM_DEFINITIONS})
endif()

# Warnings on everywhere; the project's own code should build warning-free.
add_compile_options(-Wall -Wextra -Wno-unused-parameter)
if(CMAKE_BUILD_TYPE STREQUAL "Release")
  add_compile_options(-O2)
endif()

# Plain (exception-enabled) targets vs LLVM-style targets: MLIR code is compiled with
# -fno-exceptions -fno-rtti like LLVM itself; code that must catch exceptions (JSON parsing,
# runtime) lives in plain targets. kt_llvm_style(target) marks the former.
function(kt_llvm_style target)
  target_compile_options(${target} PRIVATE -fno-exceptions -fno-rtti)
endfunction()

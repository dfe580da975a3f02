# Warnings on everywhere for C/C++ (not passed to nvcc); the project's own code builds warning-free.
add_compile_options($<$<COMPILE_LANGUAGE:CXX,C>:-Wall> $<$<COMPILE_LANGUAGE:CXX,C>:-Wextra>
                    $<$<COMPILE_LANGUAGE:CXX,C>:-Wno-unused-parameter>)

# Plain (exception-enabled) targets vs LLVM-style targets: MLIR code is compiled with
# -fno-exceptions -fno-rtti like LLVM itself; code that must catch exceptions (JSON parsing,
# runtime) lives in plain targets. kt_llvm_style(target) marks the former.
function(kt_llvm_style target)
  target_compile_options(${target} PRIVATE -fno-exceptions -fno-rtti)
endfunction()

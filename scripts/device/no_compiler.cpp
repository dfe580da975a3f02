// The device build has no compiler: plan_test.cpp reads plans compiled ahead ($KT_CUDA_PLANS).
#include <string>

std::string compileFixturePlan(const std::string&, const std::string&, const std::string&,
                               const std::string&) {
  return "";
}

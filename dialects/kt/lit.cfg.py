# -*- Python -*-
# lit suite of the kt dialect: every .mlir file under dialects/kt/ (IR/test,
# Transforms/test) is a test. Run it with ctest (test `kt_lit`), with
# `ninja check-kt-lit`, or by hand:
#   /usr/bin/python3 /usr/lib/llvm-19/build/utils/lit/lit.py -v \
#     --param kt_site_config=<build>/test/lit/lit.site.cfg.py dialects/kt/IR/test
# or by pointing lit at <build>/test/lit.
import os

import lit.formats

if not hasattr(config, "kt_opt_dir"):
    # lit found this file from a source directory: pull in the build's site
    # config (kt-opt's location), which only sets variables in that case.
    site = lit_config.params.get("kt_site_config") or os.environ.get("KT_LIT_SITE_CONFIG")
    if not site:
        lit_config.fatal(
            "kt lit tests need the build's site config: pass "
            "--param kt_site_config=<build>/test/lit/lit.site.cfg.py "
            "(ctest and `ninja check-kt-lit` do this)")
    config.kt_loading_site_config = True
    lit_config.load_config(config, site)

config.name = "KT"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.excludes = ["CMakeLists.txt", "lit.cfg.py"]

kt_opt = os.path.join(config.kt_opt_dir, "kt-opt")
if not os.access(kt_opt, os.X_OK):
    # Fail loudly: a missing kt-opt must never look like a passing suite.
    lit_config.fatal("kt-opt is not built (looked for %s); run `ninja kt-opt` first" % kt_opt)
for tool in ("FileCheck", "not"):
    if not os.access(os.path.join(config.llvm_tools_dir, tool), os.X_OK):
        lit_config.fatal("%s not found in %s" % (tool, config.llvm_tools_dir))

# The build's kt-opt and LLVM's FileCheck/not come first on PATH.
config.environment["PATH"] = os.pathsep.join(
    [config.kt_opt_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])

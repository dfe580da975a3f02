#pragma once
// kt-rt subcommands; each returns the process exit code and throws kt::Error on bad input.
namespace kt::cli {
int cmdInspect(int argc, char** argv);
int cmdScore(int argc, char** argv);
int cmdGenerate(int argc, char** argv);
int cmdDevices(int argc, char** argv);
int cmdTokenize(int argc, char** argv);
int cmdDetokenize(int argc, char** argv);
int cmdRun(int argc, char** argv);
int cmdChat(int argc, char** argv);
int cmdServe(int argc, char** argv);
int cmdPerplexity(int argc, char** argv);
int cmdBench(int argc, char** argv);
int cmdTrain(int argc, char** argv);
int cmdProbe(int argc, char** argv);
int cmdPack(int argc, char** argv);
} // namespace kt::cli

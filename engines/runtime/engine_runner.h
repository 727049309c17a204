// EngineRunner: loads a serialized TensorRT engine (and the plugin libraries it needs) and runs it on host
// arrays. Inputs are checked against the engine before the GPU is touched, outputs may have data-dependent
// shapes. bfloat16 engine tensors are fed from and returned as float32 arrays (numpy has no bfloat16).
#pragma once

#include "npy.h"

#include <NvInferRuntime.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace irexport
{

// Prints TensorRT's messages at or above a severity to stderr.
class Logger : public nvinfer1::ILogger
{
public:
    explicit Logger(Severity threshold) : mThreshold(threshold) {}
    void log(Severity severity, char const* msg) noexcept override;

private:
    Severity mThreshold;
};

struct TensorDesc
{
    std::string name;
    bool isInput;
    nvinfer1::DataType type;    // in the engine
    DType npyType;              // of the arrays that feed or receive it (float32 for a bfloat16 tensor)
    std::vector<int64_t> shape; // the engine's; -1 for a dynamic dimension
    std::vector<int64_t> min;   // inputs: the smallest and largest shapes optimization profile 0 accepts
    std::vector<int64_t> max;
};

char const* typeName(nvinfer1::DataType type); // "float32", "bfloat16", ...; "unsupported" for the others

class EngineRunner
{
public:
    // Throws InputError for a missing or unloadable engine or plugin library, std::runtime_error when CUDA or
    // TensorRT fail. allowHostCode lets version-compatible engines run the plugin code serialized into them:
    // only for trusted engine files.
    EngineRunner(std::string const& enginePath, std::vector<std::string> const& pluginLibraries,
        nvinfer1::ILogger::Severity severity = nvinfer1::ILogger::Severity::kWARNING, bool allowHostCode = false);

    std::vector<TensorDesc> const& tensors() const { return mTensors; }

    // One inference with optimization profile 0. Throws InputError when the inputs do not fit the engine
    // (checked before any GPU work), std::runtime_error when CUDA or TensorRT fail.
    std::map<std::string, NpyArray> run(std::map<std::string, NpyArray> const& inputs);

private:
    void validate(std::map<std::string, NpyArray> const& inputs) const;

    Logger mLogger; // declared first: TensorRT objects log until they are destroyed (in reverse order)
    std::unique_ptr<nvinfer1::IRuntime> mRuntime;
    std::unique_ptr<nvinfer1::ICudaEngine> mEngine;
    std::unique_ptr<nvinfer1::IExecutionContext> mContext;
    std::vector<TensorDesc> mTensors;
};

} // namespace irexport

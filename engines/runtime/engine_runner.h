// EngineRunner: loads a serialized TensorRT engine (and the plugin libraries it needs) once and runs it on host
// arrays with any of its optimization profiles (irexport's model.engine: 0 = prefill, 1 = decode), so one
// runner, with one copy of the weights on the GPU, serves a whole generation. Inputs are checked against the
// run's profile before the GPU is touched, outputs may have data-dependent shapes. bfloat16 engine tensors are
// fed from and returned as float32 arrays (numpy has no bfloat16).
#pragma once

#include "npy.h"

#include <NvInferRuntime.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace irexport {

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
    std::vector<int64_t> shape; // the engine's; -1 for a dynamic dimension (see EngineRunner::profileRange)
};

// The smallest and largest shapes an input accepts under one optimization profile (each dimension in between).
struct ShapeRange
{
    std::vector<int64_t> min;
    std::vector<int64_t> max;
};

// Frees device memory (cudaFree).
struct DeviceFree
{
    void operator()(void* p) const noexcept;
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
    EngineRunner(EngineRunner const&) = delete; // TensorRT holds the address of mLogger
    EngineRunner& operator=(EngineRunner const&) = delete;

    // The engine's inputs and outputs, in its order: the same under every profile.
    std::vector<TensorDesc> const& tensors() const { return mTensors; }
    int32_t profileCount() const { return static_cast<int32_t>(mContexts.size()); }
    // Throws InputError (one line naming the valid range) unless 0 <= profile < profileCount().
    void checkProfile(int32_t profile) const;
    // The shapes `input` accepts under `profile`. Throws InputError for a profile the engine does not have or
    // a name that is not one of its inputs.
    ShapeRange const& profileRange(std::string const& input, int32_t profile) const;

    // One inference with optimization profile `profile`. Throws InputError for a profile the engine does not
    // have and for inputs that do not fit that profile (both checked before any GPU work), std::runtime_error
    // when CUDA or TensorRT fail. Runs are serialized (a mutex): the profiles' execution contexts share one
    // block of activation memory.
    std::map<std::string, NpyArray> run(std::map<std::string, NpyArray> const& inputs, int32_t profile = 0);

private:
    void validate(std::map<std::string, NpyArray> const& inputs, int32_t profile) const;
    // The profile's execution context, created and switched to the profile (on `stream`) on first use.
    nvinfer1::IExecutionContext& context(int32_t profile, cudaStream_t stream);

    // Destroyed in reverse order: the contexts, then the memory they run in, then the engine; mLogger last, as
    // TensorRT objects log until they are destroyed.
    Logger mLogger;
    std::unique_ptr<nvinfer1::IRuntime> mRuntime;
    std::unique_ptr<nvinfer1::ICudaEngine> mEngine;
    std::unique_ptr<void, DeviceFree> mActivations;                      // the contexts' shared activation memory, with the first one
    std::vector<std::unique_ptr<nvinfer1::IExecutionContext>> mContexts; // one per profile; null until used
    std::vector<TensorDesc> mTensors;
    std::vector<std::vector<ShapeRange>> mRanges; // [tensor][profile]; inputs only
    std::mutex mRunMutex;
};

} // namespace irexport

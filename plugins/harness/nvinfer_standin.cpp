// A stand-in libnvinfer.so.<major> (built into standin/, never installed): the entry points a plugin
// library looks up in TensorRT, forwarding to the registry and logger the harness installs. The harness
// loads it RTLD_LOCAL, as Python's tensorrt loads the real one, so a library that finds TensorRT any
// other way than by soname fails here as it would in Polygraphy.
#include <NvInferRuntime.h>

namespace {
nvinfer1::IPluginRegistry* gRegistry = nullptr;
nvinfer1::ILogger* gLogger = nullptr;
} // namespace

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))

IRX_EXPORT void irexportStandinInstall(nvinfer1::IPluginRegistry* registry, nvinfer1::ILogger* logger)
{
    gRegistry = registry;
    gLogger = logger;
}

IRX_EXPORT nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return gRegistry;
}

IRX_EXPORT nvinfer1::ILogger* getLogger() noexcept
{
    return gLogger;
}

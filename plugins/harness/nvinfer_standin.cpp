// A stand-in libnvinfer.so.<major> (built into standin/, never installed): the two entry points a plugin
// library looks up in TensorRT, answered by the harness program (irexportHarnessRegistry / Logger). The
// harness loads it RTLD_LOCAL, as Python's tensorrt loads the real one, or lets the library under test load
// it by soname, so a library that finds TensorRT any other way fails here as it would in Polygraphy.
#include <NvInferRuntime.h>

#include <dlfcn.h>

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

template <typename T>
T* fromHarness(char const* symbol)
{
    auto get = reinterpret_cast<T* (*)()>(dlsym(RTLD_DEFAULT, symbol));
    return get ? get() : nullptr;
}

} // namespace

IRX_EXPORT nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return fromHarness<nvinfer1::IPluginRegistry>("irexportHarnessRegistry");
}

IRX_EXPORT nvinfer1::ILogger* getLogger() noexcept { return fromHarness<nvinfer1::ILogger>("irexportHarnessLogger"); }

// libirexport_plugins_register.so: for loaders that only dlopen a library (Polygraphy --plugins, which is
// ctypes.CDLL; trtexec --staticPlugins, formerly --plugins). Loading it registers the creators of libirexport_plugins.so with the
// registry of the TensorRT already in the process. Loaders that call IPluginRegistry::loadLibrary
// (irexport, the C++ runtime, trtexec --dynamicPlugins) take libirexport_plugins.so itself, which
// registers nothing on its own, so no registry call ever happens from inside loadLibrary.
//
// TensorRT is found by soname (libnvinfer.so.<major of the headers>): among the libraries already loaded,
// RTLD_LOCAL ones included (Python's tensorrt loads libnvinfer privately), else loaded by that soname
// (polygraphy run loads plugins before it imports tensorrt; a system install is found by the loader, a
// wheel's through LD_LIBRARY_PATH). So this library links no TensorRT, cannot bind to a TensorRT of another
// major (whose interfaces differ), and says so in one line on stderr when it finds none. The lean and
// dispatch runtimes (no libnvinfer.so.<major>) are not served: load libirexport_plugins.so with loadLibrary.
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdio>

using namespace nvinfer1;

// From libirexport_plugins.so (DT_NEEDED, found next to this library through its RUNPATH $ORIGIN).
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(ILoggerFinder* finder);

namespace {

#define IRX_STR2(x) #x
#define IRX_STR(x) IRX_STR2(x)
constexpr char const* kNvinfer = "libnvinfer.so." IRX_STR(NV_TENSORRT_MAJOR);

using GetRegistry = IPluginRegistry* (*)();
using GetLogger = ILogger* (*)();

GetLogger gGetLogger = nullptr;

// The process's TensorRT logger for the plugins' error messages.
class TensorRTLoggerFinder : public ILoggerFinder
{
public:
    ILogger* findLogger() noexcept override { return gGetLogger ? gGetLogger() : nullptr; }
};

__attribute__((constructor)) void registerCreators()
{
    // by soname only, never RTLD_DEFAULT, which could be another major's
    void* nvinfer = dlopen(kNvinfer, RTLD_LAZY | RTLD_NOLOAD);
    if (!nvinfer)
        nvinfer = dlopen(kNvinfer, RTLD_LAZY | RTLD_LOCAL);
    auto getRegistry = nvinfer ? reinterpret_cast<GetRegistry>(dlsym(nvinfer, "getPluginRegistry")) : nullptr;
    gGetLogger = nvinfer ? reinterpret_cast<GetLogger>(dlsym(nvinfer, "getLogger")) : nullptr;
    IPluginRegistry* registry = getRegistry ? getRegistry() : nullptr;
    if (registry == nullptr)
    {
        std::fprintf(stderr,
                "irexport plugins: %s %s; nothing registered (import TensorRT %d first, or put its library folder on "
                "LD_LIBRARY_PATH)\n",
                kNvinfer, nvinfer ? "has no plugin registry" : "cannot be found", NV_TENSORRT_MAJOR);
        return;
    }
    static TensorRTLoggerFinder finder;
    setLoggerFinder(&finder);
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    int32_t registered = 0;
    for (int32_t i = 0; i < n; ++i)
        registered += registry->registerCreator(*creators[i], "irexport");
    if (registered != n)
        std::fprintf(stderr, "irexport plugins: %d of %d creators registered (the others are registered already)\n", registered, n);
}

} // namespace

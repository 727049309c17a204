// libirexport_plugins_register.so: for loaders that only dlopen a library (Polygraphy --plugins, which is
// ctypes.CDLL; trtexec --plugins). Loading it registers the creators of libirexport_plugins.so with the
// registry of the TensorRT already in the process. Loaders that call IPluginRegistry::loadLibrary
// (irexport, the C++ runtime, trtexec --dynamicPlugins) take libirexport_plugins.so itself, which
// registers nothing on its own, so no registry call ever happens from inside loadLibrary.
//
// TensorRT is found by soname (libnvinfer.so.<major of the headers>) among the libraries already loaded,
// RTLD_LOCAL ones included (Python's tensorrt loads libnvinfer privately), so this library links no
// TensorRT, cannot bind to a TensorRT of another major (whose interfaces differ), and says so in one line
// on stderr when it finds none.
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

using GetRegistry = IPluginRegistry* (*) ();
using GetLogger = ILogger* (*) ();

GetLogger gGetLogger = nullptr;

// The process's TensorRT logger for the plugins' error messages.
class TensorRTLoggerFinder : public ILoggerFinder
{
public:
    ILogger* findLogger() noexcept override { return gGetLogger ? gGetLogger() : nullptr; }
};

__attribute__((constructor)) void registerCreators()
{
    // only if already loaded (takes a reference, never loads); not RTLD_DEFAULT, which could be another major's
    void* nvinfer = dlopen(kNvinfer, RTLD_LAZY | RTLD_NOLOAD);
    auto getRegistry = nvinfer ? reinterpret_cast<GetRegistry>(dlsym(nvinfer, "getPluginRegistry")) : nullptr;
    gGetLogger = nvinfer ? reinterpret_cast<GetLogger>(dlsym(nvinfer, "getLogger")) : nullptr;
    IPluginRegistry* registry = getRegistry ? getRegistry() : nullptr;
    if (registry == nullptr)
    {
        std::fprintf(stderr, "irexport plugins: no %s in this process (load TensorRT %d first); nothing registered\n",
            kNvinfer, NV_TENSORRT_MAJOR);
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

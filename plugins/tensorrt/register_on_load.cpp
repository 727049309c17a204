// libirexport_plugins_register.so: for loaders that only dlopen a library (Polygraphy --plugins, which is
// ctypes.CDLL; trtexec --plugins). Loading it registers the creators of libirexport_plugins.so with
// TensorRT's global registry. Loaders that call IPluginRegistry::loadLibrary (irexport, the C++ runtime,
// trtexec --dynamicPlugins) take libirexport_plugins.so itself, which registers nothing on its own, so
// no loader ever registers a creator twice or calls into the registry from inside loadLibrary.
//
// Linked to libnvinfer (DT_NEEDED) when the build finds it, so that getPluginRegistry resolves to the
// process's TensorRT even when Python loaded libnvinfer with RTLD_LOCAL.
#include <NvInferRuntime.h>

using namespace nvinfer1;

// From libirexport_plugins.so (DT_NEEDED, found next to this library through its RUNPATH $ORIGIN).
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(ILoggerFinder* finder);

namespace {

// TensorRT's own logger for the plugins' error messages (the registry-loaded path gets one from TensorRT).
class TensorRTLoggerFinder : public ILoggerFinder
{
public:
    ILogger* findLogger() noexcept override { return getLogger(); }
};

__attribute__((constructor)) void registerCreators()
{
    static TensorRTLoggerFinder finder;
    IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr)
        return;
    setLoggerFinder(&finder);
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    for (int32_t i = 0; i < n; ++i)
        registry->registerCreator(*creators[i], "irexport");
}

} // namespace

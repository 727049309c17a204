// irexport-plugin-harness: plays TensorRT's role toward libirexport_plugins.so, through the public
// TensorRT headers only, so that the plugin contract runs on machines without TensorRT or a GPU.
//
//   irexport-plugin-harness contract PLUGIN_LIB CASES   every custom node of CASES, as TensorRT's ONNX parser
//                                                      and builder would call the plugin (irexport.ops.plugin_cases
//                                                      writes CASES from real exports)
//   irexport-plugin-harness loaders PLUGIN_LIB REGISTER_LIB NVINFER_STANDIN
//                                                      registration under each loader style (NVINFER_STANDIN:
//                                                      standin/libnvinfer.so.<major>, built with the harness)
//   irexport-plugin-harness register-first REGISTER_LIB   the register library loaded before TensorRT (Polygraphy's
//                                                      order); LD_LIBRARY_PATH must reach standin/
//   irexport-plugin-harness enqueue PLUGIN_LIB CASES DATA_DIR
//                                                      (GPU) each case's plugin run on inputs from DATA_DIR (enqueue.cpp)
//
// Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or input.
#include "enqueue.h"
#include "node_case.h"
#include "trt_standin.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <set>

using namespace nvinfer1;
using namespace irexport::harness;
using namespace irexport::standin;

namespace {

// ---- the contract of one node -------------------------------------------------------------------

// Symbols (batch, sequence, ...) take distinct small values at the profile's min / opt / max.
SymbolValues symbolValues(Case const& c, Point point)
{
    SymbolValues values;
    int64_t i = 0;
    for (auto const* ports : {&c.inputs, &c.outputs})
        for (auto const& p : *ports)
            for (auto const& d : p.dims)
                if (!isInteger(d) && d != "?" && !values.count(d))
                {
                    values[d] = point == Point::kMin ? 1 : point == Point::kOpt ? 3 + i : 8 + 2 * i;
                    ++i;
                }
    return values;
}

Dims dimsAt(DimsExprs const& e, SymbolValues const& values, Point point)
{
    Dims d{};
    d.nbDims = e.nbDims;
    for (int32_t k = 0; k < e.nbDims; ++k)
        d.d[k] = static_cast<Expr const*>(e.d[k])->evaluate(values, point);
    return d;
}

// The symbols' values at the profile's min / opt / max.
struct Profile
{
    SymbolValues min, opt, max;
    explicit Profile(Case const& c)
        : min(symbolValues(c, Point::kMin)), opt(symbolValues(c, Point::kOpt)), max(symbolValues(c, Point::kMax))
    {}
};

// Build time: symbolic dimensions are -1 in desc.dims, with their min / opt / max beside.
DynamicPluginTensorDesc dynamicDesc(DimsExprs const& e, DataType type, Profile const& profile)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = TensorFormat::kLINEAR;
    d.desc.scale = 1.f;
    d.min = dimsAt(e, profile.min, Point::kMin);
    d.opt = dimsAt(e, profile.opt, Point::kOpt);
    d.max = dimsAt(e, profile.max, Point::kMax);
    d.desc.dims = d.opt;
    for (int32_t k = 0; k < e.nbDims; ++k)
        if (!e.d[k]->isConstant())
            d.desc.dims.d[k] = -1;
    return d;
}

std::vector<std::string> checkCase(Case const& c)
{
    std::vector<std::string> fails;
    for (auto const* ports : {&c.inputs, &c.outputs})
        for (auto const& p : *ports)
            if (!p.name.empty() && (p.dtype == "BOOL" || p.dtype == "UINT8"))
                fails.push_back("'" + p.name + "' is " + p.dtype + ": TensorRT plugins take no bool or uint8 inputs or outputs");
    if (!fails.empty())
        return fails;

    NodePlugin node;
    if (std::string const error = makeNodePlugin(c, node, fails); !error.empty())
        return {error};
    IPluginV3OneCore* core = node.core;
    IPluginV3OneBuild* build = node.build;
    if (c.op != core->getPluginName() || c.version != core->getPluginVersion() || c.ns != core->getPluginNamespace())
        fails.push_back("the plugin's name / version / namespace differ from its creator's");

    // onnx-tensorrt maps every output of the plugin layer to a non-empty output name of the node
    std::vector<Port> named;
    for (auto const& p : c.outputs)
        if (!p.name.empty())
            named.push_back(p);
    int32_t const nIn = static_cast<int32_t>(c.inputs.size());
    int32_t const nOut = build->getNbOutputs();
    if (nOut != static_cast<int32_t>(named.size()))
        return {"the plugin has " + std::to_string(nOut) + " outputs, the node names " + std::to_string(named.size()) +
                " (the ONNX parser fails: 'Node has more output tensors than TRT expected')"};

    std::vector<DataType> inTypes(nIn), outTypes(nOut);
    for (int32_t i = 0; i < nIn; ++i)
        if (!dataType(c.inputs[i].dtype, inTypes[i]))
            return {"input '" + c.inputs[i].name + "' has element type " + c.inputs[i].dtype + ", unknown to this harness"};
    if (build->getOutputDataTypes(outTypes.data(), nOut, inTypes.data(), nIn) != 0)
        return {"getOutputDataTypes failed"};
    for (int32_t j = 0; j < nOut; ++j)
    {
        DataType want{};
        if (!dataType(named[j].dtype, want) || want != outTypes[j])
            fails.push_back(
                    "output '" + named[j].name + "': the plugin gives " + typeName(outTypes[j]) + ", the node declares " + named[j].dtype);
    }

    // shapes, symbolically: an output dimension the node shares with an input is the same expression;
    // a dimension no input has (data-dependent) is a size tensor that the node names as an output
    ExprBuilder exprs;
    std::set<std::string> inputSymbols;
    std::vector<DimsExprs> in(nIn), out(nOut);
    for (int32_t i = 0; i < nIn; ++i)
    {
        if (!c.inputs[i].rankKnown)
            return {"input '" + c.inputs[i].name + "' has no shape in the ONNX file"};
        in[i].nbDims = static_cast<int32_t>(c.inputs[i].dims.size());
        for (int32_t k = 0; k < in[i].nbDims; ++k)
        {
            std::string const& d = c.inputs[i].dims[k];
            in[i].d[k] = isInteger(d) ? exprs.constantExpr(std::stoll(d)) : exprs.symbol(d);
            inputSymbols.insert(d);
        }
    }
    for (auto& o : out)
        o.nbDims = -1;
    if (build->getOutputShapes(in.data(), nIn, nullptr, 0, out.data(), nOut, exprs) != 0)
        return {"getOutputShapes failed"};
    for (auto const& e : exprs.errors())
        fails.push_back(e);
    for (auto const& [index, expr] : exprs.sizeTensors())
    {
        if (index < 0 || index >= nOut)
            fails.push_back("declareSizeTensor names output " + std::to_string(index) + ", which does not exist");
        else if (out[index].nbDims != 0)
            fails.push_back("size tensor output '" + named[index].name + "' is not 0-D");
        else if (outTypes[index] != DataType::kINT32 && outTypes[index] != DataType::kINT64)
            fails.push_back("size tensor output '" + named[index].name + "' is not int32 or int64");
    }
    for (int32_t j = 0; j < nOut; ++j)
    {
        if (out[j].nbDims < 0)
        {
            fails.push_back("getOutputShapes left output '" + named[j].name + "' unset");
            continue;
        }
        if (named[j].rankKnown && out[j].nbDims != static_cast<int32_t>(named[j].dims.size()))
        {
            fails.push_back("output '" + named[j].name + "' has rank " + std::to_string(out[j].nbDims) + ", the node declares " +
                            std::to_string(named[j].dims.size()));
            continue;
        }
        for (int32_t k = 0; named[j].rankKnown && k < out[j].nbDims; ++k)
        {
            auto const* e = static_cast<Expr const*>(out[j].d[k]);
            std::string const& want = named[j].dims[k];
            std::string const where = "output '" + named[j].name + "' dimension " + std::to_string(k);
            if (!e)
                fails.push_back(where + " is null");
            else if (isInteger(want)            ? !(e->isConstant() && e->getConstantValue() == std::stoll(want))
                     : inputSymbols.count(want) ? e->text() != want
                                                : !e->isSizeTensor())
                fails.push_back(where + " is " + e->text() + ", the node declares " + want +
                                (isInteger(want) || inputSymbols.count(want) ? "" : " (data-dependent: it must be a size tensor)"));
        }
    }
    if (!fails.empty())
        return fails;

    // formats, in TensorRT's order: position p is asked with positions < p already fixed
    Profile const profile(c);
    std::vector<DynamicPluginTensorDesc> io;
    for (int32_t i = 0; i < nIn; ++i)
        io.push_back(dynamicDesc(in[i], inTypes[i], profile));
    for (int32_t j = 0; j < nOut; ++j)
        io.push_back(dynamicDesc(out[j], outTypes[j], profile));
    for (int32_t pos = 0; pos < nIn + nOut; ++pos)
        if (!build->supportsFormatCombination(pos, io.data(), nIn, nOut))
            fails.push_back(
                    "supportsFormatCombination rejects position " + std::to_string(pos) + " (" + typeName(io[pos].desc.type) + ", linear)");
    if (!fails.empty())
        return fails;
    if (build->configurePlugin(io.data(), nIn, io.data() + nIn, nOut) != 0)
        return {"configurePlugin failed"};
    (void)build->getWorkspaceSize(io.data(), nIn, io.data() + nIn, nOut);

    // serialization: the fields TensorRT stores rebuild the same plugin at runtime
    EnginePlugin engine;
    if (std::string const error = makeEnginePlugin(node, c.label, engine); !error.empty())
        return {error};
    if (!(Fields(engine.restoredRuntime->getFieldsToSerialize()) == engine.serialized))
        fails.push_back("the plugin rebuilt from its serialized fields serializes differently");
    std::unique_ptr<IPluginV3> cloned(node.plugin->clone());
    auto* clonedCore = capability<IPluginV3OneCore>(cloned.get(), PluginCapabilityType::kCORE);
    if (!clonedCore || c.op != clonedCore->getPluginName())
        fails.push_back("clone() failed");
    // runtime shapes: every dimension concrete (the size tensor's at its opt value)
    std::vector<PluginTensorDesc> concrete;
    for (auto const& d : io)
    {
        PluginTensorDesc p = d.desc;
        p.dims = d.opt;
        concrete.push_back(p);
    }
    if (engine.runtime->onShapeChange(concrete.data(), nIn, concrete.data() + nIn, nOut) != 0)
        fails.push_back("onShapeChange failed");
    return fails;
}

int runContract(char const* library, char const* casesPath)
{
    std::vector<Case> cases;
    if (!readCasesAndLoad(library, casesPath, cases))
        return 2;
    int failed = 0;
    for (auto const& problem : registry().problems())
    {
        std::cout << "FAIL loadLibrary: " << problem << "\n";
        ++failed;
    }
    for (auto const& c : cases)
    {
        std::vector<std::string> fails;
        try
        {
            fails = checkCase(c);
        }
        catch (std::exception const& e) // a malformed number in the case
        {
            fails = {std::string("malformed case: ") + e.what()};
        }
        for (auto const& e : logger().takeErrors())
            fails.push_back("the plugin logged an error: " + e);
        std::cout << (fails.empty() ? "ok   " : "FAIL ") << c.label << " (" << c.op << ")";
        for (size_t i = 0; i < fails.size(); ++i)
            std::cout << (i ? "; " : ": ") << fails[i];
        std::cout << "\n";
        failed += !fails.empty();
    }
    std::cout << "plugin contract: " << cases.size() - std::min<size_t>(failed, cases.size()) << " of " << cases.size()
              << " node signatures conform\n";
    return failed ? 1 : 0;
}

// ---- loaders -----------------------------------------------------------------------------------

int runLoaders(char const* library, char const* registerLibrary, char const* nvinferStandin)
{
    int failed = 0;
    auto check = [&](bool ok, std::string const& what) {
        std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
        failed += !ok;
    };
    Registry& reg = registry();

    // TensorRT as Python's tensorrt loads it: privately (RTLD_LOCAL), found by others only by its soname
    void* nvinfer = dlopen(nvinferStandin, RTLD_NOW | RTLD_LOCAL);
    auto getRegistry = nvinfer ? reinterpret_cast<IPluginRegistry* (*)()>(dlsym(nvinfer, "getPluginRegistry")) : nullptr;
    if (!getRegistry || getRegistry() != &reg)
    {
        std::cerr << "irexport-plugin-harness: error: " << nvinferStandin << ": not the harness's stand-in libnvinfer\n";
        return 2;
    }

    // a plain dlopen of the plugin library registers nothing (no load-time side effects)
    void* plain = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!plain)
    {
        std::cerr << "irexport-plugin-harness: error: " << library << ": " << dlerror() << "\n";
        return 2;
    }
    check(reg.registerCalls() == 0 && reg.entries().empty(), "dlopen of the plugin library registers nothing by itself");
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(plain, "getCreators"));
    check(getCreators != nullptr && dlsym(plain, "setLoggerFinder") != nullptr, "exports getCreators and setLoggerFinder");
    auto major = reinterpret_cast<int32_t (*)()>(dlsym(plain, "irexportPluginTensorRTMajor"));
    check(major && major() == NV_TENSORRT_MAJOR, "says it was built for TensorRT " + std::to_string(NV_TENSORRT_MAJOR));
    if (!getCreators)
        return 1;
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    std::set<IPluginCreatorInterface*> expected(creators, creators + n);
    check(n > 0 && expected.size() == static_cast<size_t>(n), "getCreators returns " + std::to_string(n) + " distinct creators");

    // IPluginRegistry::loadLibrary (irexport build, the C++ runtime, trtexec --dynamicPlugins)
    void* handle = reg.loadLibrary(library);
    check(handle != nullptr, "loadLibrary loads it" + (handle ? std::string() : ": " + reg.lastLoadError()));
    check(reg.problems().empty(),
            "no registry call from inside loadLibrary" + (reg.problems().empty() ? std::string() : ": " + reg.problems().front()));
    check(reg.entries().size() == static_cast<size_t>(n),
            "loadLibrary registers each creator once (" + std::to_string(reg.entries().size()) + ")");
    bool namespaced = true;
    for (auto const& e : reg.entries())
        namespaced &= e.ns == "irexport" && expected.count(e.creator);
    check(namespaced, "every creator is registered under the namespace 'irexport'");
    check(reg.loadLibrary(library) == nullptr && reg.entries().size() == static_cast<size_t>(n),
            "a second loadLibrary is refused and leaves the first one's creators registered");
    reg.deregisterLibrary(handle);
    check(reg.entries().empty(), "deregisterLibrary removes them all (a --no-plugins build sees none)");

    // plain dlopen loaders (Polygraphy --plugins, trtexec --plugins) load the register library
    int32_t const callsBefore = reg.registerCalls();
    void* registering = dlopen(registerLibrary, RTLD_NOW | RTLD_LOCAL);
    check(registering != nullptr, std::string("dlopen of the register library") + (registering ? "" : std::string(": ") + dlerror()));
    if (registering)
    {
        bool same = reg.entries().size() == static_cast<size_t>(n);
        for (auto const& e : reg.entries())
            same &= expected.count(e.creator) && e.ns == "irexport";
        check(same && reg.registerCalls() - callsBefore == n,
                "loading it registers the plugin library's creators once each, in TensorRT found by soname (" +
                        std::to_string(reg.registerCalls() - callsBefore) + " calls)");
        int32_t found = 0;
        for (auto const& e : reg.entries())
            found += reg.getCreator(e.name.c_str(), e.version.c_str(), "irexport") == e.creator;
        check(found == n, "each is found by (name, version, namespace)");
        check(reg.loadLibrary(library) == nullptr, "loadLibrary then refuses the same creators (registered already), as TensorRT does");
    }
    check(logger().takeErrors().empty(), "nothing was logged as an error");
    std::cout << "plugin loaders: " << (failed ? "FAILED" : "every check passed") << "\n";
    return failed ? 1 : 0;
}

// Polygraphy's order: the register library is loaded before anything has loaded TensorRT; it must load
// libnvinfer.so.<major> by soname itself (the caller puts the stand-in's folder on LD_LIBRARY_PATH).
int runRegisterFirst(char const* registerLibrary)
{
    std::string const soname = "libnvinfer.so." + std::to_string(NV_TENSORRT_MAJOR);
    if (dlopen(soname.c_str(), RTLD_LAZY | RTLD_NOLOAD))
    {
        std::cerr << "irexport-plugin-harness: error: " << soname << " is loaded already\n";
        return 2;
    }
    void* registering = dlopen(registerLibrary, RTLD_NOW | RTLD_LOCAL);
    bool const loaded = registering && dlopen(soname.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    size_t const registered = registry().entries().size();
    std::cout << (registering && loaded && registered > 0 ? "ok   " : "FAIL ") << "the register library, loaded first, loads " << soname
              << " by soname and registers " << registered << " creators" << (registering ? "" : std::string(": ") + dlerror()) << "\n";
    return registering && loaded && registered > 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    std::string const usage =
            "usage: irexport-plugin-harness contract PLUGIN_LIB CASES | loaders PLUGIN_LIB REGISTER_LIB NVINFER_STANDIN | "
            "register-first REGISTER_LIB | enqueue PLUGIN_LIB CASES DATA_DIR";
    if (argc == 4 && std::strcmp(argv[1], "contract") == 0)
        return runContract(argv[2], argv[3]);
    if (argc == 5 && std::strcmp(argv[1], "loaders") == 0)
        return runLoaders(argv[2], argv[3], argv[4]);
    if (argc == 3 && std::strcmp(argv[1], "register-first") == 0)
        return runRegisterFirst(argv[2]);
    if (argc == 5 && std::strcmp(argv[1], "enqueue") == 0)
        return runEnqueue(argv[2], argv[3], argv[4]);
    std::cerr << usage << "\n";
    return 2;
}

// irexport-plugin-harness: plays TensorRT's role toward libirexport_plugins.so, through the public
// TensorRT headers only, so that the plugin contract runs on machines without TensorRT or a GPU.
//
//   irexport-plugin-harness contract PLUGIN_LIB CASES   every custom node of CASES, as TensorRT's ONNX parser
//                                                      and builder would call the plugin (irexport.ops.plugin_cases
//                                                      writes CASES from real exports)
//   irexport-plugin-harness loaders PLUGIN_LIB REGISTER_LIB
//                                                      registration under each loader style
//
// Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or input.
#include "trt_standin.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

using namespace nvinfer1;
using namespace irexport::standin;

namespace {

// ---- cases: one custom ONNX node each -----------------------------------------------------------
//   case <TAB> label <TAB> op_type <TAB> plugin_version <TAB> plugin_namespace
//   attr <TAB> name <TAB> FLOAT|INT|STRING|FLOATS|INTS <TAB> value (lists comma-separated)
//   input|output <TAB> name (empty: an omitted output) <TAB> ONNX element type <TAB> dims (comma-separated
//                 ints or symbols; empty for 0-d; ? for an unknown rank)
//   end

struct Port
{
    std::string name, dtype;
    bool rankKnown{true};
    std::vector<std::string> dims;
};

struct Attr
{
    std::string name, type, value;
};

struct Case
{
    std::string label, op, version, ns;
    std::vector<Attr> attrs;
    std::vector<Port> inputs, outputs;
};

std::vector<std::string> split(std::string const& s, char sep)
{
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(s);
    while (std::getline(in, item, sep))
        out.push_back(item);
    if (!s.empty() && s.back() == sep)
        out.emplace_back();
    return out;
}

bool isInteger(std::string const& s)
{
    if (s.empty())
        return false;
    size_t i = s[0] == '-' ? 1 : 0;
    return i < s.size() && s.find_first_not_of("0123456789", i) == std::string::npos;
}

std::vector<Case> readCases(std::string const& path)
{
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error(path + ": cannot read");
    std::vector<Case> cases;
    Case* cur = nullptr;
    std::string line;
    int lineNo = 0;
    while (std::getline(in, line))
    {
        ++lineNo;
        if (line.empty())
            continue;
        auto f = split(line, '\t');
        auto bad = [&](char const* why) { return std::runtime_error(path + ":" + std::to_string(lineNo) + ": " + why); };
        if (f[0] == "case")
        {
            if (f.size() != 5)
                throw bad("a case line has 5 fields");
            cases.push_back(Case{f[1], f[2], f[3], f[4], {}, {}, {}});
            cur = &cases.back();
        }
        else if (f[0] == "end")
            cur = nullptr;
        else if (!cur)
            throw bad("line outside a case");
        else if (f[0] == "attr" && f.size() == 4)
            cur->attrs.push_back(Attr{f[1], f[2], f[3]});
        else if ((f[0] == "input" || f[0] == "output") && f.size() == 4)
        {
            Port p{f[1], f[2], f[3] != "?", {}};
            if (p.rankKnown && !f[3].empty())
                p.dims = split(f[3], ',');
            (f[0] == "input" ? cur->inputs : cur->outputs).push_back(p);
        }
        else
            throw bad("unknown or malformed line");
    }
    if (cur)
        throw std::runtime_error(path + ": the last case has no end line");
    return cases;
}

bool dataType(std::string const& onnx, DataType& out)
{
    static std::map<std::string, DataType> const types{{"FLOAT", DataType::kFLOAT}, {"FLOAT16", DataType::kHALF},
        {"BFLOAT16", DataType::kBF16}, {"INT8", DataType::kINT8}, {"INT32", DataType::kINT32}, {"INT64", DataType::kINT64},
        {"BOOL", DataType::kBOOL}, {"UINT8", DataType::kUINT8}};
    auto it = types.find(onnx);
    if (it == types.end())
        return false;
    out = it->second;
    return true;
}

char const* typeName(DataType t)
{
    switch (t)
    {
    case DataType::kFLOAT: return "FLOAT";
    case DataType::kHALF: return "FLOAT16";
    case DataType::kBF16: return "BFLOAT16";
    case DataType::kINT8: return "INT8";
    case DataType::kINT32: return "INT32";
    case DataType::kINT64: return "INT64";
    case DataType::kBOOL: return "BOOL";
    case DataType::kUINT8: return "UINT8";
    default: return "other";
    }
}

// ---- plugin fields, exactly as onnx-tensorrt's plugin importer builds them ----------------------
// Only the creator's getFieldNames() are looked up on the node; FLOAT -> kFLOAT32 x1, INT -> kINT32 x1,
// STRING -> kCHAR with its terminating NUL, FLOATS / INTS -> kFLOAT32 / kINT32 x n. Other attributes
// (plugin_version, plugin_namespace) are not passed.

struct Fields
{
    std::vector<std::string> names;
    std::vector<std::vector<char>> data;
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};

    void add(std::string name, void const* bytes, size_t size)
    {
        names.push_back(std::move(name));
        data.emplace_back(static_cast<char const*>(bytes), static_cast<char const*>(bytes) + size);
    }
    void finish(std::vector<std::pair<PluginFieldType, int32_t>> const& kinds)
    {
        fields.clear();
        for (size_t i = 0; i < names.size(); ++i)
            fields.emplace_back(names[i].c_str(), data[i].data(), kinds[i].first, kinds[i].second);
        collection.nbFields = static_cast<int32_t>(fields.size());
        collection.fields = fields.data();
    }
};

size_t fieldElementSize(PluginFieldType t)
{
    switch (t)
    {
    case PluginFieldType::kFLOAT16: return 2;
    case PluginFieldType::kFLOAT32: return 4;
    case PluginFieldType::kFLOAT64: return 8;
    case PluginFieldType::kINT8: return 1;
    case PluginFieldType::kINT16: return 2;
    case PluginFieldType::kINT32: return 4;
    case PluginFieldType::kCHAR: return 1;
    case PluginFieldType::kBF16: return 2;
    case PluginFieldType::kINT64: return 8;
    default: return 0;
    }
}

// A deep copy of a PluginFieldCollection: what TensorRT keeps when it serializes a plugin.
struct FieldCopy
{
    Fields store;
    std::vector<std::pair<PluginFieldType, int32_t>> kinds;

    explicit FieldCopy(PluginFieldCollection const* fc)
    {
        for (int32_t i = 0; fc && i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            size_t size = fieldElementSize(f.type) * static_cast<size_t>(std::max(f.length, 0));
            store.add(f.name ? f.name : "", f.data, f.data ? size : 0);
            kinds.emplace_back(f.type, f.length);
        }
        store.finish(kinds);
    }
    bool operator==(FieldCopy const& o) const { return store.names == o.store.names && store.data == o.store.data && kinds == o.kinds; }
};

Fields fieldsFromNode(PluginFieldCollection const* names, Case const& c, std::vector<std::string>& fails)
{
    Fields out;
    std::vector<std::pair<PluginFieldType, int32_t>> kinds;
    for (int32_t i = 0; names && i < names->nbFields; ++i)
    {
        std::string const name = names->fields[i].name ? names->fields[i].name : "";
        auto it = std::find_if(c.attrs.begin(), c.attrs.end(), [&](Attr const& a) { return a.name == name; });
        if (it == c.attrs.end())
            continue; // onnx-tensorrt warns and leaves it to the creator
        if (it->type == "FLOAT" || it->type == "FLOATS")
        {
            std::vector<float> v;
            for (auto const& s : split(it->value, ','))
                v.push_back(std::stof(s));
            out.add(name, v.data(), v.size() * sizeof(float));
            kinds.emplace_back(PluginFieldType::kFLOAT32, int32_t(v.size()));
        }
        else if (it->type == "INT" || it->type == "INTS")
        {
            std::vector<int32_t> v;
            for (auto const& s : split(it->value, ','))
                v.push_back(static_cast<int32_t>(std::stoll(s)));
            out.add(name, v.data(), v.size() * sizeof(int32_t));
            kinds.emplace_back(PluginFieldType::kINT32, int32_t(v.size()));
        }
        else if (it->type == "STRING")
        {
            out.add(name, it->value.c_str(), it->value.size() + 1);
            kinds.emplace_back(PluginFieldType::kCHAR, int32_t(it->value.size() + 1));
        }
        else
            fails.push_back("attribute '" + name + "' has type " + it->type + ", which the ONNX parser cannot pass to a plugin");
    }
    out.finish(kinds);
    return out;
}

// ---- the contract of one node -------------------------------------------------------------------

template <typename T>
T* capability(IPluginV3* plugin, PluginCapabilityType type)
{
    return plugin ? static_cast<T*>(plugin->getCapabilityInterface(type)) : nullptr;
}

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

// Build time: symbolic dimensions are -1 in desc.dims, with their min / opt / max beside.
DynamicPluginTensorDesc dynamicDesc(DimsExprs const& e, DataType type, Case const& c)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = TensorFormat::kLINEAR;
    d.desc.scale = 1.f;
    d.min = dimsAt(e, symbolValues(c, Point::kMin), Point::kMin);
    d.opt = dimsAt(e, symbolValues(c, Point::kOpt), Point::kOpt);
    d.max = dimsAt(e, symbolValues(c, Point::kMax), Point::kMax);
    d.desc.dims = d.opt;
    for (int32_t k = 0; k < e.nbDims; ++k)
        if (!e.d[k]->isConstant())
            d.desc.dims.d[k] = -1;
    return d;
}

std::vector<std::string> checkCase(Case const& c)
{
    std::vector<std::string> fails;
    IPluginCreatorInterface* found = registry().getCreator(c.op.c_str(), c.version.c_str(), c.ns.c_str());
    if (!found)
        return {"no creator registered for (" + c.op + ", version " + c.version + ", namespace '" + c.ns +
            "'): the parser would inline the function body or fail with 'Plugin not found'"};
    auto* creator = static_cast<IPluginCreatorV3One*>(found); // the registry admits V3One creators only

    for (auto const* ports : {&c.inputs, &c.outputs})
        for (auto const& p : *ports)
            if (!p.name.empty() && (p.dtype == "BOOL" || p.dtype == "UINT8"))
                fails.push_back("'" + p.name + "' is " + p.dtype + ": TensorRT plugins take no bool or uint8 inputs or outputs");
    if (!fails.empty())
        return fails;

    Fields fields = fieldsFromNode(creator->getFieldNames(), c, fails);
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin(c.label.c_str(), &fields.collection, TensorRTPhase::kBUILD));
    if (!plugin)
        return {"createPlugin(kBUILD) returned null"};
    auto* core = capability<IPluginV3OneCore>(plugin.get(), PluginCapabilityType::kCORE);
    auto* build = capability<IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    auto* runtime = capability<IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    if (!core || !build || !runtime)
        return {"getCapabilityInterface(kCORE / kBUILD / kRUNTIME) returned null"};
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
            fails.push_back("output '" + named[j].name + "': the plugin gives " + typeName(outTypes[j]) + ", the node declares " + named[j].dtype);
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
            else if (isInteger(want) ? !(e->isConstant() && e->getConstantValue() == std::stoll(want)) : inputSymbols.count(want) ? e->text() != want : !e->isSizeTensor())
                fails.push_back(where + " is " + e->text() + ", the node declares " + want +
                    (isInteger(want) || inputSymbols.count(want) ? "" : " (data-dependent: it must be a size tensor)"));
        }
    }
    if (!fails.empty())
        return fails;

    // formats, in TensorRT's order: position p is asked with positions < p already fixed
    std::vector<DynamicPluginTensorDesc> io;
    for (int32_t i = 0; i < nIn; ++i)
        io.push_back(dynamicDesc(in[i], inTypes[i], c));
    for (int32_t j = 0; j < nOut; ++j)
        io.push_back(dynamicDesc(out[j], outTypes[j], c));
    for (int32_t pos = 0; pos < nIn + nOut; ++pos)
        if (!build->supportsFormatCombination(pos, io.data(), nIn, nOut))
            fails.push_back("supportsFormatCombination rejects position " + std::to_string(pos) + " (" + typeName(io[pos].desc.type) + ", linear)");
    if (!fails.empty())
        return fails;
    if (build->configurePlugin(io.data(), nIn, io.data() + nIn, nOut) != 0)
        return {"configurePlugin failed"};
    (void) build->getWorkspaceSize(io.data(), nIn, io.data() + nIn, nOut);

    // serialization: the fields TensorRT stores rebuild the same plugin at runtime
    FieldCopy serialized(runtime->getFieldsToSerialize());
    std::unique_ptr<IPluginV3> restored(creator->createPlugin(c.label.c_str(), &serialized.store.collection, TensorRTPhase::kRUNTIME));
    auto* restoredRuntime = capability<IPluginV3OneRuntime>(restored.get(), PluginCapabilityType::kRUNTIME);
    if (!restoredRuntime)
        return {"createPlugin(kRUNTIME) from the serialized fields failed"};
    if (!(FieldCopy(restoredRuntime->getFieldsToSerialize()) == serialized))
        fails.push_back("the plugin rebuilt from its serialized fields serializes differently");
    std::unique_ptr<IPluginV3> cloned(plugin->clone());
    auto* clonedCore = capability<IPluginV3OneCore>(cloned.get(), PluginCapabilityType::kCORE);
    if (!clonedCore || c.op != clonedCore->getPluginName())
        fails.push_back("clone() failed");
    ResourceContext context;
    std::unique_ptr<IPluginV3> attached(restoredRuntime->attachToContext(&context));
    auto* attachedRuntime = capability<IPluginV3OneRuntime>(attached.get(), PluginCapabilityType::kRUNTIME);
    if (!attachedRuntime)
        return {"attachToContext returned null"};
    // runtime shapes: every dimension concrete (the size tensor's at its opt value)
    std::vector<PluginTensorDesc> concrete;
    for (auto const& d : io)
    {
        PluginTensorDesc p = d.desc;
        p.dims = d.opt;
        concrete.push_back(p);
    }
    if (attachedRuntime->onShapeChange(concrete.data(), nIn, concrete.data() + nIn, nOut) != 0)
        fails.push_back("onShapeChange failed");
    return fails;
}

int runContract(char const* library, char const* casesPath)
{
    std::vector<Case> cases;
    try
    {
        cases = readCases(casesPath);
    }
    catch (std::exception const& e)
    {
        std::cerr << "irexport-plugin-harness: error: " << e.what() << "\n";
        return 2;
    }
    if (cases.empty())
    {
        std::cerr << "irexport-plugin-harness: error: " << casesPath << ": no cases\n";
        return 2;
    }
    void* handle = registry().loadLibrary(library);
    if (!handle)
    {
        std::cerr << "irexport-plugin-harness: error: " << library << ": loadLibrary failed: " << registry().lastLoadError() << "\n";
        return 2;
    }
    int failed = 0;
    for (auto const& problem : registry().problems())
    {
        std::cout << "FAIL loadLibrary: " << problem << "\n";
        ++failed;
    }
    for (auto const& c : cases)
    {
        std::vector<std::string> fails = checkCase(c);
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

int runLoaders(char const* library, char const* registerLibrary)
{
    int failed = 0;
    auto check = [&](bool ok, std::string const& what) {
        std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
        failed += !ok;
    };
    Registry& reg = registry();

    // a plain dlopen of the plugin library registers nothing (no load-time side effects)
    void* plain = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!plain)
    {
        std::cerr << "irexport-plugin-harness: error: " << library << ": " << dlerror() << "\n";
        return 2;
    }
    check(reg.registerCalls() == 0 && reg.entries().empty(), "dlopen of the plugin library registers nothing by itself");
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(plain, "getCreators"));
    check(getCreators != nullptr && dlsym(plain, "setLoggerFinder") != nullptr, "exports getCreators and setLoggerFinder");
    if (!getCreators)
        return 1;
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    std::set<IPluginCreatorInterface*> expected(creators, creators + n);
    check(n > 0 && expected.size() == static_cast<size_t>(n), "getCreators returns " + std::to_string(n) + " distinct creators");

    // IPluginRegistry::loadLibrary (irexport build, the C++ runtime, trtexec --dynamicPlugins)
    void* handle = reg.loadLibrary(library);
    check(handle != nullptr, "loadLibrary loads it" + (handle ? std::string() : ": " + reg.lastLoadError()));
    check(reg.problems().empty(), "no registry call from inside loadLibrary, every creator registered" +
            (reg.problems().empty() ? std::string() : ": " + reg.problems().front()));
    check(reg.entries().size() == static_cast<size_t>(n), "loadLibrary registers each creator once (" + std::to_string(reg.entries().size()) + ")");
    bool namespaced = true;
    for (auto const& e : reg.entries())
        namespaced &= e.ns == "irexport" && expected.count(e.creator);
    check(namespaced, "every creator is registered under the namespace 'irexport'");
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
            "loading it registers the plugin library's creators once each (" + std::to_string(reg.registerCalls() - callsBefore) + " calls)");
        int32_t found = 0;
        for (auto const& e : reg.entries())
            found += reg.getCreator(e.name.c_str(), e.version.c_str(), "irexport") == e.creator;
        check(found == n, "each is found by (name, version, namespace)");
    }
    check(logger().takeErrors().empty(), "nothing was logged as an error");
    std::cout << "plugin loaders: " << (failed ? "FAILED" : "every check passed") << "\n";
    return failed ? 1 : 0;
}

} // namespace

int main(int argc, char** argv)
{
    std::string const usage = "usage: irexport-plugin-harness contract PLUGIN_LIB CASES | loaders PLUGIN_LIB REGISTER_LIB";
    if (argc == 4 && std::strcmp(argv[1], "contract") == 0)
        return runContract(argv[2], argv[3]);
    if (argc == 4 && std::strcmp(argv[1], "loaders") == 0)
        return runLoaders(argv[2], argv[3]);
    std::cerr << usage << "\n";
    return 2;
}

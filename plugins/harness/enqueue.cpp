// `enqueue`: run every case's plugin on the GPU the way a TensorRT runtime would, on inputs the caller wrote
// (tests/plugins/test_plugin_harness.py makes them, and checks the outputs against the torch ops).
//
//   DATA/case<i>.inputs      one line per input: ONNX element type <TAB> dims (comma-separated)
//   DATA/case<i>.in<k>.bin   the input's bytes
// written back:
//   DATA/case<i>.outputs     one line per output: element type <TAB> dims (data-dependent ones at their upper bound)
//   DATA/case<i>.out<j>.bin  the output buffer's bytes (poisoned with 0x7f before enqueue)
#include "enqueue.h"

#include "node_case.h"
#include "trt_standin.h"

#include <cuda_runtime_api.h>

#include <fstream>
#include <iostream>
#include <memory>

namespace irexport::harness {

using namespace irexport::standin;

namespace {

struct DeviceBuffer
{
    void* ptr{nullptr};
    explicit DeviceBuffer(size_t bytes)
    {
        if (cudaMalloc(&ptr, bytes ? bytes : 1) != cudaSuccess)
            ptr = nullptr;
    }
    ~DeviceBuffer() { cudaFree(ptr); }
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
};

int64_t volume(Dims const& d)
{
    int64_t v = 1;
    for (int32_t k = 0; k < d.nbDims; ++k)
        v *= d.d[k];
    return v;
}

std::string dimsText(Dims const& d)
{
    std::string s;
    for (int32_t k = 0; k < d.nbDims; ++k)
        s += (k ? "," : "") + std::to_string(d.d[k]);
    return s;
}

// Runs one case; returns what failed, or an empty string.
std::string runOne(Case const& c, std::string const& prefix)
{
    std::ifstream shapes(prefix + ".inputs");
    if (!shapes)
        return prefix + ".inputs: cannot read";
    std::vector<DataType> inTypes;
    std::vector<Dims> inDims;
    for (std::string line; std::getline(shapes, line);)
    {
        auto f = split(line, '\t');
        DataType t{};
        if (f.size() != 2 || !dataType(f[0], t))
            return prefix + ".inputs: malformed line '" + line + "'";
        Dims d{};
        for (auto const& v : split(f[1], ','))
        {
            if (d.nbDims == Dims::MAX_DIMS || !isInteger(v))
                return prefix + ".inputs: bad dims '" + f[1] + "'";
            d.d[d.nbDims++] = std::stoll(v);
        }
        inTypes.push_back(t);
        inDims.push_back(d);
    }
    int32_t const nIn = static_cast<int32_t>(inTypes.size());
    if (nIn != static_cast<int32_t>(c.inputs.size()))
        return "the data has " + std::to_string(nIn) + " inputs, the node " + std::to_string(c.inputs.size());

    std::vector<std::string> fails;
    NodePlugin node;
    if (std::string const error = makeNodePlugin(c, node, fails); !error.empty() || !fails.empty())
        return error.empty() ? fails.front() : error;
    IPluginV3OneBuild* build = node.build;

    // output types and shapes at these concrete input shapes; a size tensor's dimension at its upper bound
    int32_t const nOut = build->getNbOutputs();
    std::vector<DataType> outTypes(nOut);
    if (build->getOutputDataTypes(outTypes.data(), nOut, inTypes.data(), nIn) != 0)
        return "getOutputDataTypes failed";
    ExprBuilder exprs;
    std::vector<DimsExprs> in(nIn), out(nOut);
    for (int32_t i = 0; i < nIn; ++i)
    {
        in[i].nbDims = inDims[i].nbDims;
        for (int32_t k = 0; k < inDims[i].nbDims; ++k)
            in[i].d[k] = exprs.constantExpr(inDims[i].d[k]);
    }
    if (build->getOutputShapes(in.data(), nIn, nullptr, 0, out.data(), nOut, exprs) != 0)
        return "getOutputShapes failed";
    std::vector<Dims> outDims(nOut);
    for (int32_t j = 0; j < nOut; ++j)
    {
        outDims[j].nbDims = out[j].nbDims;
        for (int32_t k = 0; k < out[j].nbDims; ++k)
            outDims[j].d[k] = static_cast<Expr const*>(out[j].d[k])->evaluate({}, Point::kMax);
    }

    // build time (configure, workspace), then the runtime plugin as an engine makes it: fields -> kRUNTIME -> attach
    std::vector<DynamicPluginTensorDesc> dyn;
    std::vector<PluginTensorDesc> desc;
    for (int32_t p = 0; p < nIn + nOut; ++p)
    {
        PluginTensorDesc d{};
        d.dims = p < nIn ? inDims[p] : outDims[p - nIn];
        d.type = p < nIn ? inTypes[p] : outTypes[p - nIn];
        d.format = TensorFormat::kLINEAR;
        d.scale = 1.f;
        desc.push_back(d);
        dyn.push_back(DynamicPluginTensorDesc{d, d.dims, d.dims, d.dims});
    }
    if (build->configurePlugin(dyn.data(), nIn, dyn.data() + nIn, nOut) != 0)
        return "configurePlugin failed";
    size_t const workspaceBytes = build->getWorkspaceSize(dyn.data(), nIn, dyn.data() + nIn, nOut);
    EnginePlugin engine;
    if (std::string const error = makeEnginePlugin(node, c.label, engine); !error.empty())
        return error;
    IPluginV3OneRuntime* engineRuntime = engine.runtime;
    if (engineRuntime->onShapeChange(desc.data(), nIn, desc.data() + nIn, nOut) != 0)
        return "onShapeChange failed";

    // device buffers: inputs from the files, outputs poisoned
    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    std::vector<void const*> inPtrs;
    std::vector<void*> outPtrs;
    for (int32_t i = 0; i < nIn; ++i)
    {
        std::ifstream f(prefix + ".in" + std::to_string(i) + ".bin", std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        size_t const want = static_cast<size_t>(volume(inDims[i])) * dataTypeSize(inTypes[i]);
        if (bytes.size() != want)
            return "input " + std::to_string(i) + ": " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(want);
        buffers.push_back(std::make_unique<DeviceBuffer>(want));
        if (!buffers.back()->ptr || cudaMemcpy(buffers.back()->ptr, bytes.data(), want, cudaMemcpyHostToDevice) != cudaSuccess)
            return "cannot copy input " + std::to_string(i) + " to the device";
        inPtrs.push_back(buffers.back()->ptr);
    }
    std::vector<size_t> outBytes;
    for (int32_t j = 0; j < nOut; ++j)
    {
        outBytes.push_back(static_cast<size_t>(volume(outDims[j])) * dataTypeSize(outTypes[j]));
        buffers.push_back(std::make_unique<DeviceBuffer>(outBytes.back()));
        if (!buffers.back()->ptr || cudaMemset(buffers.back()->ptr, 0x7f, outBytes.back() ? outBytes.back() : 1) != cudaSuccess)
            return "cannot allocate output " + std::to_string(j);
        outPtrs.push_back(buffers.back()->ptr);
    }
    DeviceBuffer workspace(workspaceBytes);
    cudaStream_t stream{};
    if (!workspace.ptr || cudaStreamCreate(&stream) != cudaSuccess)
        return "cannot allocate the workspace or a stream";
    int32_t const status = engineRuntime->enqueue(desc.data(), desc.data() + nIn, inPtrs.data(), outPtrs.data(), workspace.ptr, stream);
    cudaError_t const err = cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    if (status != 0 || err != cudaSuccess)
        return "enqueue returned " + std::to_string(status) + " (" + cudaGetErrorString(err) + ")";

    std::ofstream listing(prefix + ".outputs");
    for (int32_t j = 0; j < nOut; ++j)
    {
        std::vector<char> host(outBytes[j]);
        if (cudaMemcpy(host.data(), outPtrs[j], outBytes[j], cudaMemcpyDeviceToHost) != cudaSuccess)
            return "cannot copy output " + std::to_string(j) + " back";
        std::ofstream(prefix + ".out" + std::to_string(j) + ".bin", std::ios::binary).write(host.data(), host.size());
        listing << typeName(outTypes[j]) << "\t" << dimsText(outDims[j]) << "\n";
    }
    return "";
}

} // namespace

int runEnqueue(char const* library, char const* casesPath, char const* dataDir)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
    {
        std::cerr << "irexport-plugin-harness: error: enqueue needs a CUDA GPU, and none is visible\n";
        return 2;
    }
    std::vector<Case> cases;
    if (!readCasesAndLoad(library, casesPath, cases))
        return 2;
    int failed = 0;
    for (size_t i = 0; i < cases.size(); ++i)
    {
        std::string error;
        try
        {
            error = runOne(cases[i], std::string(dataDir) + "/case" + std::to_string(i));
        }
        catch (std::exception const& e) // a malformed number in the case
        {
            error = std::string("malformed case: ") + e.what();
        }
        for (auto const& e : logger().takeErrors())
            error += (error.empty() ? "" : "; ") + std::string("the plugin logged an error: ") + e;
        std::cout << (error.empty() ? "ran  " : "FAIL ") << cases[i].label << " (" << cases[i].op << ")"
                  << (error.empty() ? "" : ": " + error) << "\n";
        failed += !error.empty();
    }
    std::cout << "plugin enqueue: " << cases.size() - failed << " of " << cases.size() << " node signatures ran\n";
    return failed ? 1 : 0;
}

} // namespace irexport::harness

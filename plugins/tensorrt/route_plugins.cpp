// TensorRT IPluginV3 plugins for the routing ops, one generic plugin class over the op kinds.
// Names, versions, namespace, fields and their ranges, and port types come from the op table generated from
// irexport/ops/spec.py (common/route_ops.h); a test reads them back through TensorRT-RTX's registry.
// Loading: this library exports getCreators and setLoggerFinder, for IPluginRegistry::loadLibrary
// (irexport, the C++ runtime, trtexec --dynamicPlugins), and irexportPluginTensorRTMajor, the TensorRT
// major of the headers it was compiled with: ILogger / ILoggerFinder changed layout between TensorRT 10
// and 11, so loaders refuse a library built for another major. It registers nothing by itself and needs
// no TensorRT library; loaders that only dlopen (Polygraphy --plugins, trtexec --staticPlugins, formerly --plugins) load
// libirexport_plugins_register.so instead (register_on_load.cpp).
#include <NvInferRuntime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "../common/route_ops.h"
#include "../kernels/route_kernels.cuh"

using namespace nvinfer1;

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))

namespace irexport::trt {
namespace {

using ops::kNamespace;
using ops::kOps;
using ops::Op;
using ops::OpInfo;
using ops::PortType;

ILoggerFinder* gLoggerFinder{nullptr};

void logError(std::string const& message) noexcept
{
    ILogger* logger = gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
    if (logger)
        logger->log(ILogger::Severity::kERROR, ("irexport plugins: " + message).c_str());
}

bool isFloat(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF || t == DataType::kBF16; }

// The one TensorRT type of a port of a fixed type; false for kFloatAny (any float type) and kNone.
bool fixedType(PortType port, DataType& type)
{
    switch (port) // every enumerator, no default: a new port type is a compiler warning here
    {
    case PortType::kFloat32: type = DataType::kFLOAT; return true;
    // the size tensors too: int32, as the 11.1 headers ask (sampleNonZeroPlugin: int32 up to 10.14)
    case PortType::kInt32: type = DataType::kINT32; return true;
    case PortType::kInt64: type = DataType::kINT64; return true;
    case PortType::kFloatAny:
    case PortType::kNone: break;
    }
    return false;
}

Dtype toDtype(DataType t) { return static_cast<Dtype>(static_cast<int32_t>(t)); } // same numbering

int64_t volume(Dims const& d)
{
    int64_t v = 1;
    for (int32_t k = 0; k < d.nbDims; ++k)
        v *= d.d[k];
    return v;
}

class RoutePlugin : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime
{
public:
    RoutePlugin(Op op, float value) : mOp(op), mValue(value)
    {
        if (info().field)
            mFields.emplace_back(info().field, &mValue, PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
        mFieldCollection.fields = mFields.data();
    }
    RoutePlugin(RoutePlugin const&) = delete; // mFieldCollection points into this object: clone() instead
    RoutePlugin& operator=(RoutePlugin const&) = delete;

    OpInfo const& info() const { return kOps[size_t(mOp)]; }

    // the type of port pos, numbered as TensorRT does: the inputs, then the outputs (common/route_ops.h)
    PortType portType(int32_t pos) const
    {
        auto const& ports = ops::kPortTypes[size_t(mOp)];
        return pos < info().nbInputs ? ports.inputs[pos] : ports.outputs[pos - info().nbInputs];
    }

    // the op's first kFloatAny port, whose float type all of them take (-1: none)
    int32_t firstFloatPort() const
    {
        for (int32_t pos = 0; pos < info().nbInputs + info().nbOutputs; ++pos)
            if (portType(pos) == PortType::kFloatAny)
                return pos;
        return -1;
    }

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    IPluginV3* clone() noexcept override
    {
        try
        {
            return new RoutePlugin(mOp, mValue);
        }
        catch (std::exception const& e)
        {
            logError(e.what());
            return nullptr;
        }
    }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return info().name; }
    char const* getPluginVersion() const noexcept override { return info().version; }
    char const* getPluginNamespace() const noexcept override { return kNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return info().nbOutputs; }

    int32_t getOutputDataTypes(
            DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        if (nbInputs != info().nbInputs || nbOutputs != info().nbOutputs)
            return -1;
        int32_t const first = firstFloatPort(); // an input wherever an output is kFloatAny (the code generator checks)
        for (int32_t j = 0; j < nbOutputs; ++j)
            if (!fixedType(portType(nbInputs + j), outputTypes[j]))
            {
                if (portType(nbInputs + j) != PortType::kFloatAny || first < 0 || first >= nbInputs)
                    return -1;
                outputTypes[j] = inputTypes[first];
            }
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
            DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept override
    {
        if (nbInputs != info().nbInputs || nbOutputs != info().nbOutputs)
            return -1;
        switch (mOp)
        {
        case Op::kArgmax:
        case Op::kThreshold:
        case Op::kTopK: // [B, T, C] -> [B, T]
            outputs[0].nbDims = 2;
            outputs[0].d[0] = inputs[0].d[0];
            outputs[0].d[1] = inputs[0].d[1];
            return 0;
        case Op::kIndex: // [B, T] -> [N], N data-dependent in [0, B*T]; output 1 is the 0-d size tensor N
        {
            auto const* upper = exprBuilder.operation(DimensionOperation::kPROD, *inputs[0].d[0], *inputs[0].d[1]);
            auto const* opt = exprBuilder.operation(DimensionOperation::kCEIL_DIV, *upper, *exprBuilder.constant(2));
            outputs[0].nbDims = 1;
            outputs[0].d[0] = exprBuilder.declareSizeTensor(1, *opt, *upper);
            outputs[1].nbDims = 0;
            return 0;
        }
        case Op::kSeqIndex: // [B, T] -> [B, Tq], Tq data-dependent in [0, T]; output 1 is the 0-d size tensor Tq
        {
            auto const* upper = inputs[0].d[1];
            auto const* opt = exprBuilder.operation(DimensionOperation::kCEIL_DIV, *upper, *exprBuilder.constant(2));
            outputs[0].nbDims = 2;
            outputs[0].d[0] = inputs[0].d[0];
            outputs[0].d[1] = exprBuilder.declareSizeTensor(1, *opt, *upper);
            outputs[1].nbDims = 0;
            return 0;
        }
        case Op::kGather: // x [..., D], index [*I] -> [*I, D]
            if (inputs[0].nbDims < 1 || inputs[1].nbDims >= Dims::MAX_DIMS)
                return -1;
            outputs[0].nbDims = inputs[1].nbDims + 1;
            for (int32_t k = 0; k < inputs[1].nbDims; ++k)
                outputs[0].d[k] = inputs[1].d[k];
            outputs[0].d[inputs[1].nbDims] = inputs[0].d[inputs[0].nbDims - 1];
            return 0;
        case Op::kScatterAdd: // x [..., D], y [*I, D], index [*I] -> x's shape
            if (inputs[0].nbDims < 1 || inputs[1].nbDims != inputs[2].nbDims + 1)
                return -1;
            outputs[0] = inputs[0];
            return 0;
        default: return -1;
        }
    }

    // Masks come in as int32 (TensorRT plugins take no bool or uint8 I/O).
    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override
    {
        if (nbInputs != info().nbInputs || nbOutputs != info().nbOutputs || pos >= nbInputs + nbOutputs)
            return false;
        PluginTensorDesc const& d = inOut[pos].desc;
        if (d.format != TensorFormat::kLINEAR)
            return false;
        DataType fixed{};
        if (fixedType(portType(pos), fixed))
            return d.type == fixed;
        if (portType(pos) != PortType::kFloatAny)
            return false;
        int32_t const first = firstFloatPort(); // <= pos: TensorRT asks in order, with the earlier positions fixed
        return pos == first ? isFloat(d.type) : d.type == inOut[first].desc.type;
    }

    int32_t configurePlugin(DynamicPluginTensorDesc const* /*in*/, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
            int32_t nbOutputs) noexcept override
    {
        return nbInputs == info().nbInputs && nbOutputs == info().nbOutputs ? 0 : -1;
    }

    size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t /*nbInputs*/, DynamicPluginTensorDesc const* /*outputs*/,
            int32_t /*nbOutputs*/) const noexcept override
    {
        auto const batch = static_cast<int32_t>(inputs[0].max.d[0]);
        auto const seq = static_cast<int32_t>(inputs[0].max.d[1]);
        if (mOp == Op::kIndex)
            return cuda::indexWorkspaceSize(batch, seq);
        return mOp == Op::kSeqIndex ? cuda::seqIndexWorkspaceSize(batch, seq) : 0;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(
            PluginTensorDesc const* /*in*/, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override
    {
        return nbInputs == info().nbInputs && nbOutputs == info().nbOutputs ? 0 : -1;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
            void* const* outputs, void* workspace, cudaStream_t stream) noexcept override
    {
        Dims const& d0 = inputDesc[0].dims;
        auto const batch = static_cast<int32_t>(d0.d[0]);
        auto const seq = static_cast<int32_t>(d0.d[1]);
        auto const dim = static_cast<int32_t>(d0.d[d0.nbDims - 1]); // RouteGather / RouteScatterAdd: x's rows are [R, D]
        cudaError_t err = cudaErrorInvalidValue;
        switch (mOp)
        {
        case Op::kArgmax:
        case Op::kThreshold:
        case Op::kTopK:
        {
            DecideParams p{inputs[0], mOp == Op::kTopK ? static_cast<int32_t const*>(inputs[1]) : nullptr, static_cast<float*>(outputs[0]),
                    batch, seq, static_cast<int32_t>(d0.d[2]), toDtype(inputDesc[0].type), mValue, mValue};
            err = mOp == Op::kArgmax ? cuda::argmax(p, stream) : mOp == Op::kThreshold ? cuda::threshold(p, stream) : cuda::topk(p, stream);
            break;
        }
        case Op::kIndex:
        case Op::kSeqIndex:
        {
            IndexParams p{static_cast<int32_t const*>(inputs[0]), static_cast<int64_t*>(outputs[0]), static_cast<int32_t*>(outputs[1]),
                    static_cast<int32_t*>(workspace), batch, seq};
            err = mOp == Op::kIndex ? cuda::index(p, stream) : cuda::seqIndex(p, stream);
            break;
        }
        case Op::kGather:
            err = cuda::gather(GatherParams{inputs[0], static_cast<int64_t const*>(inputs[1]), outputs[0], volume(inputDesc[1].dims), dim,
                                       toDtype(inputDesc[0].type)},
                    stream);
            break;
        case Op::kScatterAdd:
            err = cuda::scatterAdd(
                    ScatterAddParams{inputs[0], inputs[1], static_cast<int64_t const*>(inputs[2]), outputs[0],
                            volume(d0) / std::max<int64_t>(dim, 1), volume(inputDesc[2].dims), dim, toDtype(inputDesc[0].type)},
                    stream);
            break;
        default: break;
        }
        if (err != cudaSuccess)
        {
            logError(std::string(info().name) + ": " + cudaGetErrorString(err));
            return -1;
        }
        return 0;
    }

    IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFieldCollection; }

private:
    Op mOp;
    float mValue; // threshold or capacity
    std::vector<PluginField> mFields;
    PluginFieldCollection mFieldCollection{};
};

class RouteCreator : public IPluginCreatorV3One
{
public:
    explicit RouteCreator(Op op) : mOp(op)
    {
        if (kOps[size_t(op)].field)
            mFields.emplace_back(kOps[size_t(op)].field, nullptr, PluginFieldType::kFLOAT32, 1);
        mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
        mFieldCollection.fields = mFields.data();
    }
    RouteCreator(RouteCreator const&) = delete;
    RouteCreator& operator=(RouteCreator const&) = delete;

    // Every field is validated: known name, float32 scalar, in range; the op's field is required.
    IPluginV3* createPlugin(char const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept override
    {
        OpInfo const& op = kOps[size_t(mOp)];
        bool found = false;
        float value = 0.f;
        for (int32_t i = 0; fc && i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            if (!f.name || !op.field || std::strcmp(f.name, op.field) != 0)
                return fail(name, std::string("unknown field '") + (f.name ? f.name : "(null)") + "'");
            if (f.type != PluginFieldType::kFLOAT32 || f.length != 1 || !f.data)
                return fail(name, std::string("field '") + f.name + "' must be one float32");
            value = *static_cast<float const*>(f.data);
            if (!ops::inRange(op, value))
                return fail(name, std::string("field '") + f.name + "' = " + std::to_string(value) + " is out of range");
            found = true;
        }
        if (op.field && !found)
            return fail(name, std::string("missing field '") + op.field + "'");
        try
        {
            return new RoutePlugin(mOp, value);
        }
        catch (std::exception const& e)
        {
            return fail(name, e.what());
        }
    }

    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }
    char const* getPluginName() const noexcept override { return kOps[size_t(mOp)].name; }
    char const* getPluginVersion() const noexcept override { return kOps[size_t(mOp)].version; }
    char const* getPluginNamespace() const noexcept override { return kNamespace; }

private:
    IPluginV3* fail(char const* layer, std::string const& message) const noexcept
    {
        logError(std::string(kOps[size_t(mOp)].name) + " (" + (layer ? layer : "?") + "): " + message);
        return nullptr;
    }

    Op mOp;
    std::vector<PluginField> mFields;
    PluginFieldCollection mFieldCollection{};
};

// one creator per row of the op table, in its order
template <size_t... I>
std::array<IPluginCreatorInterface*, sizeof...(I)>& creatorsOf(std::index_sequence<I...>)
{
    static RouteCreator all[]{RouteCreator{Op(I)}...};
    static std::array<IPluginCreatorInterface*, sizeof...(I)> pointers{&all[I]...};
    return pointers;
}

std::array<IPluginCreatorInterface*, size_t(Op::kCount)>& creators() { return creatorsOf(std::make_index_sequence<size_t(Op::kCount)>{}); }

} // namespace
} // namespace irexport::trt

IRX_EXPORT void setLoggerFinder(ILoggerFinder* finder) { irexport::trt::gLoggerFinder = finder; }

IRX_EXPORT int32_t irexportPluginTensorRTMajor() { return NV_TENSORRT_MAJOR; }

// IPluginRegistry::loadLibrary and trtexec --dynamicPlugins register what this returns.
IRX_EXPORT IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    auto& all = irexport::trt::creators();
    nbCreators = static_cast<int32_t>(all.size());
    return all.data();
}

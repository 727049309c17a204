// ONNX Runtime custom-op library: CPU kernels for the routing ops of the irexport domain, registered for
// the CPU execution provider by RegisterCustomOps (SessionOptions.register_custom_ops_library). With it
// registered, ONNX Runtime runs these kernels for the routing nodes instead of inlining the nodes'
// model-local function bodies; without it, the same model.onnx runs the bodies.
//
// The kernels are the host implementations the tests check against the torch ops (common/route_host.h);
// names, versions, arity, attribute ranges and port types come from the generated op table (common/route_ops.h).
// Compiled against ONNX Runtime's C API (onnxruntime_c_api.h); it loads into that ONNX Runtime release
// and newer ones (irexportOrtApiVersion says which API version it was built for).
#include <onnxruntime_c_api.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../common/route_host.h"
#include "../common/route_ops.h"

#define IRX_EXPORT extern "C" __attribute__((visibility("default")))
#define IRX_STRING_(x) #x
#define IRX_STRING(x) IRX_STRING_(x) // a macro's value as a literal: no allocation that could throw

namespace irexport::onnxrt {
namespace {

using ops::kOps;
using ops::Op;
using ops::OpInfo;

OrtApi const* gApi = nullptr;

#define IRX_RETURN_IF_ERROR(expr)                                                                                                          \
    do                                                                                                                                     \
    {                                                                                                                                      \
        if (OrtStatus* status_ = (expr))                                                                                                   \
            return status_;                                                                                                                \
    } while (0)

OrtStatus* fail(OpInfo const& op, std::string const& message)
{
    return gApi->CreateStatus(ORT_INVALID_ARGUMENT, (std::string(op.name) + ": " + message).c_str());
}

struct Tensor
{
    void const* data{};
    std::vector<int64_t> shape;
    ONNXTensorElementDataType type{};

    int64_t count() const
    {
        int64_t n = 1;
        for (int64_t d : shape)
            n *= d;
        return n;
    }
};

OrtStatus* readInput(OrtKernelContext* context, size_t index, Tensor& t)
{
    OrtValue const* value = nullptr;
    IRX_RETURN_IF_ERROR(gApi->KernelContext_GetInput(context, index, &value));
    OrtTensorTypeAndShapeInfo* info = nullptr;
    IRX_RETURN_IF_ERROR(gApi->GetTensorTypeAndShape(value, &info));
    size_t rank = 0;
    OrtStatus* status = gApi->GetDimensionsCount(info, &rank);
    if (!status)
    {
        t.shape.resize(rank);
        status = gApi->GetDimensions(info, t.shape.data(), rank);
    }
    if (!status)
        status = gApi->GetTensorElementType(info, &t.type);
    gApi->ReleaseTensorTypeAndShapeInfo(info);
    IRX_RETURN_IF_ERROR(status);
    void* data = nullptr; // the C API has no const accessor: inputs are only read
    IRX_RETURN_IF_ERROR(gApi->GetTensorMutableData(const_cast<OrtValue*>(value), &data));
    t.data = data;
    return nullptr;
}

OrtStatus* makeOutput(OrtKernelContext* context, size_t index, std::vector<int64_t> const& shape, void** data)
{
    OrtValue* value = nullptr;
    IRX_RETURN_IF_ERROR(gApi->KernelContext_GetOutput(context, index, shape.data(), shape.size(), &value));
    return gApi->GetTensorMutableData(value, data);
}

bool floatDtype(ONNXTensorElementDataType type, Dtype& dtype)
{
    switch (type)
    {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: dtype = Dtype::kFloat32; return true;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: dtype = Dtype::kFloat16; return true;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: dtype = Dtype::kBFloat16; return true;
    default: return false;
    }
}

// Every index entry is -1 or a row of x: the graph computes them, but a kernel never reads out of bounds.
OrtStatus* checkRows(OpInfo const& op, Tensor const& index, int64_t rows)
{
    auto const* entries = static_cast<int64_t const*>(index.data);
    for (int64_t i = 0, n = index.count(); i < n; ++i)
        if (entries[i] < -1 || entries[i] >= rows)
            return fail(op, "index entry " + std::to_string(entries[i]) + " is outside [-1, " + std::to_string(rows) + ")");
    return nullptr;
}

struct Kernel
{
    Op op;
    float value; // the op's attribute (threshold or capacity)

    OpInfo const& info() const { return kOps[size_t(op)]; }

    OrtStatus* compute(OrtKernelContext* context) const
    {
        switch (op)
        {
        case Op::kArgmax:
        case Op::kThreshold:
        case Op::kTopK: return decide(context);
        case Op::kIndex:
        case Op::kSeqIndex: return index(context);
        case Op::kGather: return gather(context);
        case Op::kScatterAdd: return scatterAdd(context);
        default: return fail(info(), "no kernel");
        }
    }

    // scores [B, T, C] -> margin [B, T] float32
    OrtStatus* decide(OrtKernelContext* context) const
    {
        Tensor scores, valid;
        IRX_RETURN_IF_ERROR(readInput(context, 0, scores));
        DecideParams p{};
        bool const channels =
                op == Op::kArgmax ? scores.shape.size() == 3 && scores.shape[2] == 2 : scores.shape.size() == 3 && scores.shape[2] >= 1;
        if (!channels || !floatDtype(scores.type, p.dtype))
            return fail(info(), op == Op::kArgmax ? "scores must be a float tensor [B, T, 2]" : "scores must be a float tensor [B, T, C]");
        if (op == Op::kTopK)
        {
            IRX_RETURN_IF_ERROR(readInput(context, 1, valid));
            if (valid.shape != std::vector<int64_t>{scores.shape[0], scores.shape[1]})
                return fail(info(), "valid must be [B, T] like the scores");
            p.valid = static_cast<int32_t const*>(valid.data);
        }
        void* margin = nullptr;
        IRX_RETURN_IF_ERROR(makeOutput(context, 0, {scores.shape[0], scores.shape[1]}, &margin));
        p.scores = scores.data;
        p.margin = static_cast<float*>(margin);
        p.batch = static_cast<int32_t>(scores.shape[0]);
        p.seq = static_cast<int32_t>(scores.shape[1]);
        p.channels = static_cast<int32_t>(scores.shape[2]);
        p.threshold = value;
        p.capacity = value;
        if (op == Op::kArgmax)
            host::argmax(p);
        else if (op == Op::kThreshold)
            host::threshold(p);
        else
            host::topk(p);
        return nullptr;
    }

    // execute [B, T] int32 -> RouteIndex: index [N], count; RouteSeqIndex: slots [B, Tq], count
    OrtStatus* index(OrtKernelContext* context) const
    {
        Tensor execute;
        IRX_RETURN_IF_ERROR(readInput(context, 0, execute));
        if (execute.shape.size() != 2)
            return fail(info(), "execute must be [B, T]");
        IndexParams p{};
        p.execute = static_cast<int32_t const*>(execute.data);
        p.batch = static_cast<int32_t>(execute.shape[0]);
        p.seq = static_cast<int32_t>(execute.shape[1]);
        bool const flat = op == Op::kIndex;
        int32_t const size = flat ? host::indexCount(p.execute, p.batch, p.seq) : host::seqIndexCount(p.execute, p.batch, p.seq);
        void *index = nullptr, *count = nullptr;
        IRX_RETURN_IF_ERROR(makeOutput(context, 0, flat ? std::vector<int64_t>{size} : std::vector<int64_t>{p.batch, size}, &index));
        IRX_RETURN_IF_ERROR(makeOutput(context, 1, {}, &count));
        p.index = static_cast<int64_t*>(index);
        p.count = static_cast<int32_t*>(count);
        flat ? host::index(p) : host::seqIndex(p);
        return nullptr;
    }

    // x [..., D] as rows [R, D], index [*I] -> [*I, D]
    OrtStatus* gather(OrtKernelContext* context) const
    {
        Tensor x, index;
        IRX_RETURN_IF_ERROR(readInput(context, 0, x));
        IRX_RETURN_IF_ERROR(readInput(context, 1, index));
        GatherParams p{};
        if (x.shape.empty() || !floatDtype(x.type, p.dtype))
            return fail(info(), "x must be a float tensor [..., D]");
        int64_t const dim = x.shape.back(), rows = dim ? x.count() / dim : 0;
        IRX_RETURN_IF_ERROR(checkRows(info(), index, rows));
        std::vector<int64_t> shape = index.shape;
        shape.push_back(dim);
        void* out = nullptr;
        IRX_RETURN_IF_ERROR(makeOutput(context, 0, shape, &out));
        p = GatherParams{x.data, static_cast<int64_t const*>(index.data), out, index.count(), static_cast<int32_t>(dim), p.dtype};
        host::gather(p);
        return nullptr;
    }

    // x [..., D] as rows [R, D], y [*I, D], index [*I] -> x's shape, y added at the indexed rows
    OrtStatus* scatterAdd(OrtKernelContext* context) const
    {
        Tensor x, y, index;
        IRX_RETURN_IF_ERROR(readInput(context, 0, x));
        IRX_RETURN_IF_ERROR(readInput(context, 1, y));
        IRX_RETURN_IF_ERROR(readInput(context, 2, index));
        Dtype dtype{};
        if (x.shape.empty() || !floatDtype(x.type, dtype) || y.type != x.type)
            return fail(info(), "x and y must be float tensors of one type");
        int64_t const dim = x.shape.back(), rows = dim ? x.count() / dim : 0;
        std::vector<int64_t> ys = index.shape;
        ys.push_back(dim);
        if (y.shape != ys)
            return fail(info(), "y must be [*index.shape, D]");
        IRX_RETURN_IF_ERROR(checkRows(info(), index, rows));
        void* out = nullptr;
        IRX_RETURN_IF_ERROR(makeOutput(context, 0, x.shape, &out));
        host::scatterAdd(ScatterAddParams{
                x.data, y.data, static_cast<int64_t const*>(index.data), out, rows, index.count(), static_cast<int32_t>(dim), dtype});
        return nullptr;
    }
};

// A port's element type as ONNX Runtime takes it: UNDEFINED lets a float port of any type through (the kernels check
// which, and that an op's float ports agree); the port types come from the op table (ops/spec.py).
ONNXTensorElementDataType elementType(ops::PortType type)
{
    switch (type) // every enumerator, no default: a new port type is a compiler warning here
    {
    case ops::PortType::kFloatAny: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    case ops::PortType::kFloat32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case ops::PortType::kInt32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case ops::PortType::kInt64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case ops::PortType::kNone: break; // past the op's last port: never asked
    }
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

struct RouteCustomOp : OrtCustomOp
{
    Op op;

    explicit RouteCustomOp(Op which) : OrtCustomOp{}, op(which)
    {
        version = ORT_API_VERSION;
        GetName = [](OrtCustomOp const* self) { return kOps[size_t(of(self))].name; };
        GetExecutionProviderType = [](OrtCustomOp const*) -> char const* { return "CPUExecutionProvider"; };
        GetInputTypeCount = [](OrtCustomOp const* self) { return size_t(kOps[size_t(of(self))].nbInputs); };
        GetOutputTypeCount = [](OrtCustomOp const* self) { return size_t(kOps[size_t(of(self))].nbOutputs); };
        GetInputType = [](OrtCustomOp const* self, size_t i) { return elementType(ops::kPortTypes[size_t(of(self))].inputs[i]); };
        GetOutputType = [](OrtCustomOp const* self, size_t i) { return elementType(ops::kPortTypes[size_t(of(self))].outputs[i]); };
        GetInputCharacteristic = [](OrtCustomOp const*, size_t) { return INPUT_OUTPUT_REQUIRED; };
        GetOutputCharacteristic = [](OrtCustomOp const*, size_t) { return INPUT_OUTPUT_REQUIRED; };
        GetInputMemoryType = [](OrtCustomOp const*, size_t) { return OrtMemTypeDefault; };
        GetVariadicInputMinArity = [](OrtCustomOp const*) { return 1; };
        GetVariadicInputHomogeneity = [](OrtCustomOp const*) { return 1; };
        GetVariadicOutputMinArity = [](OrtCustomOp const*) { return 1; };
        GetVariadicOutputHomogeneity = [](OrtCustomOp const*) { return 1; };
        // the node's version is the domain's opset (1); the op's own version travels as plugin_version
        GetStartVersion = [](OrtCustomOp const*) { return 1; };
        GetEndVersion = [](OrtCustomOp const*) { return 1; };
        CreateKernelV2 = [](OrtCustomOp const* self, OrtApi const*, OrtKernelInfo const* info, void** kernel) -> OrtStatus* {
            try
            {
                return createKernel(of(self), info, kernel);
            }
            catch (std::exception const& e)
            {
                return gApi->CreateStatus(ORT_FAIL, e.what());
            }
        };
        KernelComputeV2 = [](void* kernel, OrtKernelContext* context) -> OrtStatus* {
            try
            {
                return static_cast<Kernel const*>(kernel)->compute(context);
            }
            catch (std::exception const& e) // bad_alloc from a shape vector, a message
            {
                return gApi->CreateStatus(ORT_FAIL, e.what());
            }
        };
        KernelDestroy = [](void* kernel) { delete static_cast<Kernel*>(kernel); };
        if (which == Op::kScatterAdd) // two float inputs: ONNX Runtime needs told that the output is x's type
            InferOutputShapeFn = [](OrtCustomOp const*, OrtShapeInferContext* context) -> OrtStatus* {
                try
                {
                    return outputLikeX(context);
                }
                catch (std::exception const& e)
                {
                    return gApi->CreateStatus(ORT_FAIL, e.what());
                }
            };
    }

    // The node's plugin_version must be the op's version here: a node of another version of the op has another
    // contract (RouteIndex v1 wrote [B, Tq]), so it fails the session rather than run this one.
    static OrtStatus* createKernel(Op which, OrtKernelInfo const* info, void** kernel)
    {
        OpInfo const& op = kOps[size_t(which)];
        size_t size = 0;
        if (OrtStatus* missing = gApi->KernelInfoGetAttribute_string(info, "plugin_version", nullptr, &size))
        {
            gApi->ReleaseStatus(missing);
            return fail(op, std::string("the node has no plugin_version (irexport exports carry ") + op.version + ")");
        }
        std::string version(size, '\0');
        IRX_RETURN_IF_ERROR(gApi->KernelInfoGetAttribute_string(info, "plugin_version", version.data(), &size));
        version.resize(size > 0 ? size - 1 : 0); // the size counts the terminating null
        if (version != op.version)
            return fail(op, "plugin_version '" + version + "' is not " + op.version +
                                    ", the version these kernels implement "
                                    "(re-export with this irexport, or rebuild the kernels)");
        float value = 0.f;
        if (op.field)
        {
            IRX_RETURN_IF_ERROR(gApi->KernelInfoGetAttribute_float(info, op.field, &value));
            if (!irexport::ops::inRange(op, value))
                return fail(op, std::string("attribute '") + op.field + "' = " + std::to_string(value) + " is out of range");
        }
        *kernel = new Kernel{which, value};
        return nullptr;
    }

    // The output is x's type and shape. A dimension nobody named reads back as -1, which ONNX Runtime would take
    // for a value: each gets a name of its own. An unknown rank reads back as rank 0 (and x is never 0-d): then
    // nothing is said, since even a type alone would declare a 0-d output.
    static OrtStatus* outputLikeX(OrtShapeInferContext* context)
    {
        OrtTensorTypeAndShapeInfo* x = nullptr; // the context's own: not released here
        IRX_RETURN_IF_ERROR(gApi->ShapeInferContext_GetInputTypeShape(context, 0, &x));
        ONNXTensorElementDataType type{};
        size_t rank = 0;
        IRX_RETURN_IF_ERROR(gApi->GetTensorElementType(x, &type));
        IRX_RETURN_IF_ERROR(gApi->GetDimensionsCount(x, &rank));
        if (rank == 0)
            return nullptr;
        std::vector<int64_t> dims(rank);
        std::vector<char const*> names(rank, "");
        IRX_RETURN_IF_ERROR(gApi->GetDimensions(x, dims.data(), rank));
        IRX_RETURN_IF_ERROR(gApi->GetSymbolicDimensions(x, names.data(), rank));
        static std::atomic<uint64_t> unnamed{0};
        std::vector<std::string> own(rank);
        for (size_t i = 0; i < rank; ++i)
            if (dims[i] < 0 && (!names[i] || !*names[i]))
            {
                own[i] = "irexport_scatter_add_" + std::to_string(unnamed++);
                names[i] = own[i].c_str();
            }
        OrtTensorTypeAndShapeInfo* out = nullptr;
        IRX_RETURN_IF_ERROR(gApi->CreateTensorTypeAndShapeInfo(&out));
        OrtStatus* status = gApi->SetTensorElementType(out, type);
        if (!status)
            status = gApi->SetDimensions(out, dims.data(), rank);
        if (!status)
            status = gApi->SetSymbolicDimensions(out, names.data(), rank);
        if (!status)
            status = gApi->ShapeInferContext_SetOutputTypeShape(context, 0, out);
        gApi->ReleaseTensorTypeAndShapeInfo(out);
        return status;
    }

    static Op of(OrtCustomOp const* self) { return static_cast<RouteCustomOp const*>(self)->op; }
};

template <size_t... I>
std::vector<RouteCustomOp>& customOpsOf(std::index_sequence<I...>)
{
    static std::vector<RouteCustomOp> all{RouteCustomOp{Op(I)}...};
    return all;
}

std::vector<RouteCustomOp>& customOps() { return customOpsOf(std::make_index_sequence<size_t(Op::kCount)>{}); }

} // namespace
} // namespace irexport::onnxrt

// The ONNX Runtime API version the library was compiled against: it loads into that release and newer ones.
IRX_EXPORT uint32_t irexportOrtApiVersion() { return ORT_API_VERSION; }

IRX_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, OrtApiBase const* apiBase)
{
    using namespace irexport::onnxrt;
    OrtApi const* api = apiBase->GetApi(ORT_API_VERSION);
    if (!api) // an ONNX Runtime older than the headers: report through its oldest API (CreateStatus never moved)
        return apiBase->GetApi(1)->CreateStatus(ORT_FAIL,
                "irexport's kernels were built for ONNX Runtime API " IRX_STRING(ORT_API_VERSION) ", newer than this ONNX Runtime");
    try // nothing may throw across the C boundary
    {
        // a domain lives as long as the sessions that use it: kept for the process (as ONNX Runtime's own test library)
        static std::mutex lock;
        static std::vector<OrtCustomOpDomain*> domains;
        std::lock_guard<std::mutex> guard(lock);
        if (!gApi) // set once, before any kernel exists: kernels read it without the lock
            gApi = api;
        OrtCustomOpDomain* domain = nullptr;
        IRX_RETURN_IF_ERROR(api->CreateCustomOpDomain(irexport::ops::kDomain, &domain));
        domains.push_back(domain);
        for (auto& op : customOps())
            IRX_RETURN_IF_ERROR(api->CustomOpDomain_Add(domain, &op));
        return api->AddCustomOpDomain(options, domain);
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, e.what());
    }
}

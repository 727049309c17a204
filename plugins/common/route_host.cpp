#include "route_host.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace irexport::host {
namespace {

float load(void const* data, int64_t i, Dtype dtype)
{
    if (dtype == Dtype::kFloat32)
        return static_cast<float const*>(data)[i];
    uint16_t bits = static_cast<uint16_t const*>(data)[i];
    if (dtype == Dtype::kBFloat16)
    {
        uint32_t wide = static_cast<uint32_t>(bits) << 16;
        float f;
        std::memcpy(&f, &wide, 4);
        return f;
    }
    // IEEE half -> float
    uint32_t sign = (bits & 0x8000u) << 16, exp = (bits >> 10) & 0x1f, mant = bits & 0x3ffu, wide;
    if (exp == 0)
    {
        if (mant == 0)
            wide = sign;
        else
        {
            exp = 127 - 15 + 1;
            while (!(mant & 0x400u))
            {
                mant <<= 1;
                --exp;
            }
            wide = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
        }
    }
    else if (exp == 31)
        wide = sign | 0x7f800000u | (mant << 13);
    else
        wide = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    std::memcpy(&f, &wide, 4);
    return f;
}

void store(void* data, int64_t i, float value, Dtype dtype)
{
    if (dtype == Dtype::kFloat32)
    {
        static_cast<float*>(data)[i] = value;
        return;
    }
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    uint16_t out;
    if (dtype == Dtype::kBFloat16)
        out = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16); // round to nearest even
    else
    {
        uint32_t sign = (bits >> 16) & 0x8000u;
        int32_t exp = int32_t((bits >> 23) & 0xff) - 127 + 15;
        uint32_t mant = bits & 0x7fffffu;
        if (exp >= 31)
            out = static_cast<uint16_t>(sign | 0x7c00u | (((bits >> 23) & 0xff) == 0xff && mant ? 0x200u : 0u));
        else if (exp <= 0)
        {
            if (exp < -10)
                out = static_cast<uint16_t>(sign);
            else
            {
                mant |= 0x800000u;
                uint32_t shift = uint32_t(14 - exp), half = mant >> shift, rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
                half += (rest > mid || (rest == mid && (half & 1u)));
                out = static_cast<uint16_t>(sign | half);
            }
        }
        else
        {
            uint32_t half = (uint32_t(exp) << 10) | (mant >> 13), rest = mant & 0x1fffu;
            half += (rest > 0x1000u || (rest == 0x1000u && (half & 1u))); // may carry into the exponent: correct
            out = static_cast<uint16_t>(sign | half);
        }
    }
    static_cast<uint16_t*>(data)[i] = out;
}

size_t elementSize(Dtype dtype) { return dtype == Dtype::kFloat32 ? 4 : 2; }

} // namespace

void argmax(DecideParams const& p)
{
    for (int64_t i = 0; i < int64_t(p.batch) * p.seq; ++i)
        p.margin[i] = argmaxMargin(load(p.scores, 2 * i, p.dtype), load(p.scores, 2 * i + 1, p.dtype));
}

void threshold(DecideParams const& p)
{
    for (int64_t i = 0; i < int64_t(p.batch) * p.seq; ++i)
        p.margin[i] = thresholdMargin(load(p.scores, i * p.channels, p.dtype), p.threshold);
}

void topk(DecideParams const& p)
{
    if (p.seq == 0)
        return; // no token, no margin (and no k-th score to read), as the CUDA kernel
    float const negInf = -std::numeric_limits<float>::infinity();
    std::vector<float> ranked(p.seq);
    for (int32_t b = 0; b < p.batch; ++b)
    {
        int32_t valid = 0;
        for (int32_t t = 0; t < p.seq; ++t)
        {
            bool ok = p.valid[int64_t(b) * p.seq + t] != 0;
            valid += ok;
            ranked[t] = ok ? load(p.scores, (int64_t(b) * p.seq + t) * p.channels, p.dtype) : negInf;
        }
        std::sort(ranked.begin(), ranked.end(), scoreBefore);
        int32_t k = topkCount(valid, p.capacity);
        float kth = ranked[std::max(k - 1, 0)];
        float next = ranked[std::min(k, p.seq - 1)];
        float boundary = topkBoundary(kth, next, k < valid);
        for (int32_t t = 0; t < p.seq; ++t)
            p.margin[int64_t(b) * p.seq + t] = load(p.scores, (int64_t(b) * p.seq + t) * p.channels, p.dtype) - boundary;
    }
}

int32_t indexCount(int32_t const* execute, int32_t batch, int32_t seq)
{
    return static_cast<int32_t>(std::count_if(execute, execute + int64_t(batch) * seq, [](int32_t e) { return e != 0; }));
}

void index(IndexParams const& p)
{
    int64_t n = 0;
    for (int64_t i = 0; i < int64_t(p.batch) * p.seq; ++i)
        if (p.execute[i])
            p.index[n++] = i; // row b*T + t of the flattened [B*T] tokens
    *p.count = static_cast<int32_t>(n);
}

int32_t seqIndexCount(int32_t const* execute, int32_t batch, int32_t seq)
{
    int32_t tq = 0;
    for (int32_t b = 0; b < batch; ++b)
        tq = std::max(tq, indexCount(execute + int64_t(b) * seq, 1, seq));
    return tq;
}

void seqIndex(IndexParams const& p)
{
    int64_t const tq = seqIndexCount(p.execute, p.batch, p.seq);
    *p.count = static_cast<int32_t>(tq);
    int64_t first = 0; // the sequence's first position in RouteIndex's list
    for (int32_t b = 0; b < p.batch; ++b)
    {
        int64_t const count = indexCount(p.execute + int64_t(b) * p.seq, 1, p.seq);
        for (int64_t j = 0; j < tq; ++j)
            p.index[b * tq + j] = j < count ? first + j : -1;
        first += count;
    }
}

void gather(GatherParams const& p)
{
    size_t const row = size_t(p.dim) * elementSize(p.dtype);
    auto* out = static_cast<uint8_t*>(p.out);
    auto const* x = static_cast<uint8_t const*>(p.x);
    for (int64_t r = 0; r < p.rows; ++r)
    {
        if (p.index[r] < 0)
            std::memset(out + r * row, 0, row);
        else
            std::memcpy(out + r * row, x + p.index[r] * row, row);
    }
}

void scatterAdd(ScatterAddParams const& p)
{
    std::memcpy(p.out, p.x, size_t(p.xRows) * p.dim * elementSize(p.dtype));
    for (int64_t r = 0; r < p.rows; ++r)
    {
        if (p.index[r] < 0)
            continue;
        for (int32_t d = 0; d < p.dim; ++d)
        {
            int64_t const o = p.index[r] * p.dim + d;
            store(p.out, o, load(p.out, o, p.dtype) + load(p.y, r * p.dim + d, p.dtype), p.dtype); // x + y in float32, rounded once
        }
    }
}

} // namespace irexport::host

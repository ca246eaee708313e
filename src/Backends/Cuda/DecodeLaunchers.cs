using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Backends.Cuda;

/// <summary>Launchers of the decode path's kernels (GEMV, split decode attention).</summary>
internal sealed partial class Launchers
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemvShape>? _gemv;
    public void Gemv(KernelConfig c, ArrayView<float> x, ArrayView<float> w, ArrayView<uint> packed, ArrayView<float> normW, ArrayView<float> normB,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> y, GemvShape s)
    { Count++; (_gemv ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemvShape>>(GemvKernels.Gemv))(_stream, c, x, w, packed, normW, normB, bias, residual, y, s); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<float>, int, int>? _unpack;
    public void Unpack(KernelConfig c, ArrayView<uint> packed, ArrayView<float> y, int pairs, int format)
    { Count++; (_unpack ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<float>, int, int>>(GemvKernels.Unpack))(_stream, c, packed, y, pairs, format); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int>? _decodePartial;
    public void DecodeAttention(KernelConfig c, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> bias, ArrayView<float> scratch, AttentionShape s, int chunk)
    { Count++; (_decodePartial ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int>>(DecodeAttentionKernels.Partial))(_stream, c, q, k, v, bias, scratch, s, chunk); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int>? _decodeCombine;
    public void DecodeCombine(KernelConfig c, ArrayView<float> scratch, ArrayView<float> o, int dv, int splits)
    { Count++; (_decodeCombine ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int>>(DecodeAttentionKernels.Combine))(_stream, c, scratch, o, dv, splits); }
}

using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Backends.Cuda;

/// <summary>Typed launchers of every kernel on one device's default stream (one stream, so launches never wait on the host).</summary>
internal sealed partial class Launchers(GpuDevice device)
{
    private readonly AcceleratorStream _stream = device.Accelerator.DefaultStream;
    public int Count;

    private T L<T>(Delegate kernel) where T : Delegate => device.Launcher<T>(kernel);

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int>? _unary;
    public void Unary(KernelConfig c, ArrayView<float> x, ArrayView<float> y, int n, int code)
    { Count++; (_unary ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int>>(ElementwiseKernels.Unary))(_stream, c, x, y, n, code); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedMap, int, int>? _binary;
    public void Binary(KernelConfig c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, StridedMap map, int n, int code)
    { Count++; (_binary ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedMap, int, int>>(ElementwiseKernels.Binary))(_stream, c, a, b, y, map, n, code); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, StridedMap, int>? _copy;
    public void Copy(KernelConfig c, ArrayView<float> src, ArrayView<float> dst, StridedMap map, int n)
    { Count++; (_copy ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, StridedMap, int>>(ElementwiseKernels.Copy))(_stream, c, src, dst, map, n); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>? _embedding;
    public void Embedding(KernelConfig c, ArrayView<int> ids, ArrayView<float> table, ArrayView<float> y, int n, int d)
    { Count++; (_embedding ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>>(ElementwiseKernels.Embedding))(_stream, c, ids, table, y, n, d); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>? _gate;
    public void GateEpilogue(KernelConfig c, ArrayView<float> y, ArrayView<float> residual, ArrayView<float> o, int rows, int n, int act, int gate, int hasResidual)
    { Count++; (_gate ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>>(ElementwiseKernels.GateEpilogue))(_stream, c, y, residual, o, rows, n, act, gate, hasResidual); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>? _rope;
    public void Rope(KernelConfig c, ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, ArrayView<float> y, int n, int s, int h, int d, int half, int interleaved)
    { Count++; (_rope ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>>(ElementwiseKernels.Rope))(_stream, c, x, cos, sin, y, n, s, h, d, half, interleaved); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _alibi;
    public void Alibi(KernelConfig c, ArrayView<float> slopes, ArrayView<float> q, ArrayView<float> k, ArrayView<float> y, int h, int s, int t)
    { Count++; (_alibi ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>>(ElementwiseKernels.AlibiBias))(_stream, c, slopes, q, k, y, h, s, t); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>? _bucket;
    public void BucketBias(KernelConfig c, ArrayView<float> table, ArrayView<int> buckets, ArrayView<float> y, int h, int s, int t)
    { Count++; (_bucket ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>>(ElementwiseKernels.BucketBias))(_stream, c, table, buckets, y, h, s, t); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>? _moe;
    public void Moe(KernelConfig c, ArrayView<float> logits, ArrayView<float> experts, ArrayView<float> y, int rows, int e, int d, int topK, int normalize)
    { Count++; (_moe ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>>(ElementwiseKernels.MoeCombine))(_stream, c, logits, experts, y, rows, e, d, topK, normalize); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, float, int, int, int>? _norm;
    public void Norm(KernelConfig c, ArrayView<float> x, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y, int d, float eps, float offset, int layer, int hasW, int hasB)
    { Count++; (_norm ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, float, int, int, int>>(ReductionKernels.Norm))(_stream, c, x, w, b, y, d, eps, offset, layer, hasW, hasB); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>? _line;
    public void Line(KernelConfig c, ArrayView<float> x, ArrayView<float> y, int length, int inner, int mean)
    { Count++; (_line ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>>(ReductionKernels.Line))(_stream, c, x, y, length, inner, mean); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, int>? _argmax;
    public void ArgMax(KernelConfig c, ArrayView<float> x, ArrayView<int> mask, ArrayView<int> result, int offset, int n)
    { Count++; (_argmax ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, int>>(ReductionKernels.ArgMax))(_stream, c, x, mask, result, offset, n); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, GemmShape>? _gemm;
    public void Gemm(KernelConfig c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, ArrayView<float> bias, ArrayView<float> residual, ArrayView<int> aOffsets, ArrayView<int> bOffsets, GemmShape s)
    { Count++; (_gemm ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, GemmShape>>(GemmKernels.Gemm))(_stream, c, a, b, y, bias, residual, aOffsets, bOffsets, s); }

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>? _attention;
    public void Attention(KernelConfig c, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> bias, ArrayView<float> o, AttentionShape s)
    { Count++; (_attention ??= L<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>>(AttentionKernels.Attention))(_stream, c, q, k, v, bias, o, s); }
}

using System.Buffers;
using System.Numerics.Tensors;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>The prologue a fused linear applies to its input rows.</summary>
public enum LinearPrologue { None, RmsNorm, LayerNorm }

/// <summary>
/// One GEMM with its prologue and epilogue (the IR's FusedLinear): y = residual + gate?(act(norm(x)·wᵀ + b)),
/// made of the runtime's kernels: the norm, <see cref="Gemm.Linear(ReadOnlySpan{float}, int, PackedWeight, Span{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, GemmOptions?)"/>
/// (which adds the bias, and the residual when there is no activation or gate), then the activation, gate and residual.
/// </summary>
public static class FusedLinearKernel
{
    /// <param name="x">[rows, w.K]</param>
    /// <param name="y">[rows, gate ? w.N / 2 : w.N]</param>
    /// <param name="activation">null for none</param>
    public static void Forward(float[] x, int rows, PackedWeight w, LinearPrologue prologue, float[]? normW, float[]? normB,
        double offset, double eps, float[]? bias, UnaryOp? activation, bool gate, float[]? residual, float[] y)
    {
        int k = w.K, n = w.N, outN = gate ? n / 2 : n;
        float[]? normed = null;
        float[] xs = x;
        if (prologue != LinearPrologue.None)
        {
            normed = ArrayPool<float>.Shared.Rent(rows * k);
            if (prologue == LinearPrologue.RmsNorm) Normalization.RmsNorm(x, rows, k, normW, offset, null, eps, normed);
            else Normalization.LayerNorm(x, rows, k, normW, normB, eps, normed);
            xs = normed;
        }
        try
        {
            var xSpan = new ReadOnlySpan<float>(xs, 0, rows * k);
            if (activation is null && !gate)
            {
                Gemm.Linear(xSpan, rows, w, new Span<float>(y, 0, rows * n), bias, residual is null ? default : new ReadOnlySpan<float>(residual, 0, rows * n));
                return;
            }
            var full = ArrayPool<float>.Shared.Rent(rows * n);
            try
            {
                var f = new Span<float>(full, 0, rows * n);
                Gemm.Linear(xSpan, rows, w, f, bias);
                if (!gate)
                {
                    Elementwise.Unary(activation!.Value, f, new Span<float>(y, 0, rows * n));
                }
                else
                {
                    for (int r = 0; r < rows; r++)
                    {
                        var a = f.Slice(r * n, outN);
                        var yr = new Span<float>(y, r * outN, outN);
                        if (activation is { } act) Elementwise.Unary(act, a, yr);
                        else a.CopyTo(yr);
                        TensorPrimitives.Multiply(yr, f.Slice(r * n + outN, outN), yr);
                    }
                }
                if (residual is not null)
                    TensorPrimitives.Add(new ReadOnlySpan<float>(y, 0, rows * outN), new ReadOnlySpan<float>(residual, 0, rows * outN), new Span<float>(y, 0, rows * outN));
            }
            finally { ArrayPool<float>.Shared.Return(full); }
        }
        finally { if (normed is not null) ArrayPool<float>.Shared.Return(normed); }
    }
}

using System.Numerics.Tensors;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>RmsNorm and LayerNorm over the last axis, Softmax and ReduceMean over any axis (given as outer × length × inner).</summary>
public static class Normalization
{
    private const long ParallelWork = 1 << 15;

    /// <summary>y = x / sqrt(mean(x²) + eps) · (offset + w) (+ b), per row of length d.</summary>
    public static void RmsNorm(float[] x, int rows, int d, float[]? w, double offset, float[]? b, double eps, float[] y)
    {
        float[]? scale = w;
        if (w is not null && offset != 0)
        {
            scale = new float[d];
            for (int i = 0; i < d; i++) scale[i] = (float)(offset + w[i]);
        }
        void Row(int r)
        {
            var xr = new ReadOnlySpan<float>(x, r * d, d);
            var yr = new Span<float>(y, r * d, d);
            double sumSq = TensorPrimitives.SumOfSquares(xr);
            float inv = (float)(1.0 / Math.Sqrt(sumSq / d + eps));
            TensorPrimitives.Multiply(xr, inv, yr);
            if (scale is not null) TensorPrimitives.Multiply(yr, scale, yr);
            if (b is not null) TensorPrimitives.Add(yr, b, yr);
        }
        ForRows(rows, d, Row);
    }

    /// <summary>y = (x − mean)/sqrt(var + eps)·w + b per row of length d, with the biased variance (two passes).</summary>
    public static void LayerNorm(float[] x, int rows, int d, float[]? w, float[]? b, double eps, float[] y)
    {
        void Row(int r)
        {
            var xr = new ReadOnlySpan<float>(x, r * d, d);
            var yr = new Span<float>(y, r * d, d);
            float mean = (float)((double)TensorPrimitives.Sum(xr) / d);
            TensorPrimitives.Subtract(xr, mean, yr);
            double variance = (double)TensorPrimitives.SumOfSquares(yr) / d;
            float inv = (float)(1.0 / Math.Sqrt(variance + eps));
            TensorPrimitives.Multiply(yr, inv, yr);
            if (w is not null) TensorPrimitives.Multiply(yr, w, yr);
            if (b is not null) TensorPrimitives.Add(yr, b, yr);
        }
        ForRows(rows, d, Row);
    }

    /// <summary>Softmax along an axis of <paramref name="length"/> elements, with <paramref name="inner"/> elements between neighbours.</summary>
    public static void Softmax(float[] x, int outer, int length, int inner, float[] y)
    {
        if (length == 0) return;
        if (inner == 1)
        {
            ForRows(outer, length, r =>
            {
                var xr = new ReadOnlySpan<float>(x, r * length, length);
                var yr = new Span<float>(y, r * length, length);
                float max = TensorPrimitives.Max(xr);   // subtracted so exp never overflows
                TensorPrimitives.Subtract(xr, max, yr);
                TensorPrimitives.Exp(yr, yr);
                float sum = TensorPrimitives.Sum(yr);
                TensorPrimitives.Divide(yr, sum, yr);
            });
            return;
        }
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int start = o * length * inner + i;
                float max = float.NegativeInfinity;
                for (int j = 0; j < length; j++) max = MathF.Max(max, x[start + j * inner]);
                double sum = 0;
                for (int j = 0; j < length; j++)
                {
                    float e = MathF.Exp(x[start + j * inner] - max);
                    y[start + j * inner] = e;
                    sum += e;
                }
                float s = (float)sum;
                for (int j = 0; j < length; j++) y[start + j * inner] /= s;
            }
    }

    /// <summary>The mean along an axis; y is x's shape with that axis of size 1 (outer × inner elements).</summary>
    public static void ReduceMean(float[] x, int outer, int length, int inner, float[] y)
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                int start = o * length * inner + i;
                double sum = 0;
                for (int j = 0; j < length; j++) sum += x[start + j * inner];
                y[o * inner + i] = (float)(sum / length);
            }
    }

    private static void ForRows(int rows, int d, Action<int> row)
    {
        if ((long)rows * d < ParallelWork || rows == 1)
            for (int r = 0; r < rows; r++) row(r);
        else
            KernelThreading.For(rows, row);
    }
}

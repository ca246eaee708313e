using ModelCompiler.IR;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>RmsNorm, LayerNorm (over the last axis), Softmax and ReduceMean (over any axis).</summary>
internal static class Normalization
{
    /// <summary>y = x / sqrt(mean(x²) + eps) · (offset + w) (+ b when a third input is given).</summary>
    public static RefTensor RmsNorm(Node node, RefTensor x, RefTensor? w, RefTensor? b)
    {
        double eps = node.Attrs.Float("eps");
        double offset = node.Attrs.Float("offset", 0.0);
        var xs = x.F!;
        int d = (int)x.Shape[^1];
        var y = new double[xs.Length];
        for (int r = 0; r < Layout.Rows(x.Shape); r++)
        {
            int o = r * d;
            double sumSq = 0;
            for (int i = 0; i < d; i++) sumSq += xs[o + i] * xs[o + i];
            double inv = 1.0 / Math.Sqrt(sumSq / d + eps);
            for (int i = 0; i < d; i++)
            {
                double v = xs[o + i] * inv;
                if (w is not null) v *= offset + w.F![i];
                if (b is not null) v += b.F![i];
                y[o + i] = v;
            }
        }
        return new RefTensor(node.Type.DType, x.Shape, y, null);
    }

    /// <summary>y = (x − mean)/sqrt(var + eps)·w + b with the biased variance (two-pass, for accuracy).</summary>
    public static RefTensor LayerNorm(Node node, RefTensor x, RefTensor? w, RefTensor? b)
    {
        double eps = node.Attrs.Float("eps");
        var xs = x.F!;
        int d = (int)x.Shape[^1];
        var y = new double[xs.Length];
        for (int r = 0; r < Layout.Rows(x.Shape); r++)
        {
            int o = r * d;
            double sum = 0;
            for (int i = 0; i < d; i++) sum += xs[o + i];
            double mean = sum / d;
            double sq = 0;
            for (int i = 0; i < d; i++) sq += (xs[o + i] - mean) * (xs[o + i] - mean);
            double inv = 1.0 / Math.Sqrt(sq / d + eps);
            for (int i = 0; i < d; i++)
            {
                double v = (xs[o + i] - mean) * inv;
                if (w is not null) v *= w.F![i];
                if (b is not null) v += b.F![i];
                y[o + i] = v;
            }
        }
        return new RefTensor(node.Type.DType, x.Shape, y, null);
    }

    public static RefTensor Softmax(Node node, RefTensor x)
    {
        int axis = Layout.Axis(node.Attrs.Int("axis"), x.Rank, node);
        var xs = x.F!;
        var y = new double[xs.Length];
        ForEachLine(x.Shape, axis, (_, _, start, stride, length) =>
        {
            // Subtract the max so exp never overflows.
            double max = double.NegativeInfinity;
            for (int i = 0; i < length; i++) max = Math.Max(max, xs[start + i * stride]);
            double sum = 0;
            for (int i = 0; i < length; i++)
            {
                double e = Math.Exp(xs[start + i * stride] - max);
                y[start + i * stride] = e;
                sum += e;
            }
            for (int i = 0; i < length; i++) y[start + i * stride] /= sum;
        });
        return new RefTensor(node.Type.DType, x.Shape, y, null);
    }

    public static RefTensor ReduceMean(Node node, RefTensor x)
    {
        int axis = Layout.Axis(node.Attrs.Int("axis"), x.Rank, node);
        var xs = x.F!;
        var shape = x.Shape.ToArray();
        shape[axis] = 1;
        var y = new double[Layout.Count(shape)];
        ForEachLine(x.Shape, axis, (outer, inner, start, stride, length) =>
        {
            double sum = 0;
            for (int i = 0; i < length; i++) sum += xs[start + i * stride];
            y[outer * stride + inner] = sum / length; // the result's axis has size 1
        });
        return new RefTensor(node.Type.DType, shape, y, null);
    }

    /// <summary>
    /// Calls <paramref name="line"/>(outer, inner, start, stride, length) for every 1-d line of the tensor
    /// along <paramref name="axis"/>: outer indexes the axes before it, inner the axes after it.
    /// </summary>
    private static void ForEachLine(long[] shape, int axis, Action<int, int, int, int, int> line)
    {
        int length = (int)shape[axis];
        int stride = (int)Layout.Strides(shape)[axis];
        int outer = Layout.Count(shape[..axis]);
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < stride; i++)
                line(o, i, o * stride * length + i, stride, length);
    }
}

using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>Index arithmetic shared by the ops: row-major strides, broadcasting maps, allocation.</summary>
internal static class Layout
{
    /// <summary>Row-major strides of a shape (in elements).</summary>
    public static long[] Strides(long[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            s[d] = acc;
            acc *= shape[d];
        }
        return s;
    }

    public static int Count(long[] shape)
    {
        long n = RefTensor.CountOf(shape);
        if (n > Array.MaxLength) throw new McException($"a tensor of shape [{RefTensor.FormatShape(shape)}] is too large for the reference interpreter");
        return (int)n;
    }

    /// <summary>Numpy broadcasting of two concrete shapes (right-aligned; size 1 stretches).</summary>
    public static long[] Broadcast(long[] a, long[] b, Func<string> where)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            long db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da == db || db == 1) result[i] = da;
            else if (da == 1) result[i] = db;
            else throw new McException($"{where()}: shapes [{RefTensor.FormatShape(a)}] and [{RefTensor.FormatShape(b)}] do not broadcast");
        }
        return result;
    }

    /// <summary>
    /// For every element of <paramref name="outShape"/> (row-major), the flat index of the element of a
    /// tensor of shape <paramref name="inShape"/> that broadcasting maps onto it.
    /// </summary>
    public static int[] BroadcastMap(long[] outShape, long[] inShape)
    {
        int rank = outShape.Length;
        if (inShape.Length > rank) throw new InvalidOperationException("cannot broadcast to a lower rank");
        // Stride of the input along each output axis; 0 where the input is stretched or absent.
        var inStrides = Strides(inShape);
        var stride = new long[rank];
        for (int d = 0; d < rank; d++)
        {
            int k = d - (rank - inShape.Length);
            if (k < 0 || inShape[k] == 1) stride[d] = 0;
            else if (inShape[k] == outShape[d]) stride[d] = inStrides[k];
            else throw new InvalidOperationException($"[{RefTensor.FormatShape(inShape)}] does not broadcast to [{RefTensor.FormatShape(outShape)}]");
        }
        return StridedMap(outShape, stride, 0);
    }

    /// <summary>
    /// For every element of <paramref name="outShape"/> (row-major), the flat source index
    /// <paramref name="baseOffset"/> + Σ index[d]·<paramref name="stride"/>[d]: a strided view of a source
    /// tensor (transposes, slices and broadcasts are all such views).
    /// </summary>
    public static int[] StridedMap(long[] outShape, long[] stride, long baseOffset)
    {
        int rank = outShape.Length;
        var map = new int[Count(outShape)];
        var index = new long[rank];
        long offset = baseOffset;
        for (int e = 0; e < map.Length; e++)
        {
            map[e] = (int)offset;
            // Odometer increment of the output index, keeping the source offset in step.
            for (int d = rank - 1; d >= 0; d--)
            {
                index[d]++;
                offset += stride[d];
                if (index[d] < outShape[d]) break;
                offset -= stride[d] * index[d];
                index[d] = 0;
            }
        }
        return map;
    }

    /// <summary>A tensor of the node's dtype whose data is taken from <paramref name="source"/> at the given flat indices.</summary>
    public static RefTensor Gather(RefTensor source, long[] shape, int[] indices, DType dtype)
    {
        if (source.F is { } f)
        {
            var r = new double[indices.Length];
            for (int e = 0; e < r.Length; e++) r[e] = f[indices[e]];
            return new RefTensor(dtype, shape, r, null);
        }
        var src = source.I!;
        var ri = new long[indices.Length];
        for (int e = 0; e < ri.Length; e++) ri[e] = src[indices[e]];
        return new RefTensor(dtype, shape, null, ri);
    }

    /// <summary>The product of the dimensions before the last one (the number of "rows").</summary>
    public static int Rows(long[] shape) => shape.Length == 0 ? 1 : Count(shape[..^1]);

    public static int Axis(long axis, int rank, Node node)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new InvalidOperationException($"{Interpreter.Describe(node)}: axis {axis} out of range for rank {rank}");
        return (int)a;
    }
}

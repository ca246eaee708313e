using System.Globalization;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>Transpose, Slice and Concat on float or integer storage (reshape needs no kernel: it shares the buffer).</summary>
public static class Layout
{
    /// <summary>y = x permuted: y.shape[i] = shape[perm[i]]. Runs of the last axis are block-copied when it stays last.</summary>
    public static void Transpose<T>(ReadOnlySpan<T> x, ReadOnlySpan<int> shape, ReadOnlySpan<int> perm, Span<T> y)
    {
        int rank = shape.Length;
        if (perm.Length != rank) throw new ArgumentException("transpose: perm and shape differ in rank");
        if (rank == 0) { x.CopyTo(y); return; }
        Span<long> inStrides = stackalloc long[rank];
        long acc = 1;
        for (int d = rank - 1; d >= 0; d--) { inStrides[d] = acc; acc *= shape[d]; }
        Span<int> outShape = stackalloc int[rank];
        Span<long> stride = stackalloc long[rank];
        for (int d = 0; d < rank; d++) { outShape[d] = shape[perm[d]]; stride[d] = inStrides[perm[d]]; }
        if (acc == 0) return;

        int last = outShape[rank - 1];
        long lastStride = stride[rank - 1];
        Span<int> index = stackalloc int[rank];
        long offset = 0;
        for (int at = 0; at < y.Length; at += last)
        {
            if (lastStride == 1)
                x.Slice((int)offset, last).CopyTo(y.Slice(at, last));
            else
                for (int i = 0; i < last; i++) y[at + i] = x[(int)(offset + i * lastStride)];
            // Odometer over every axis but the last.
            for (int d = rank - 2; d >= 0; d--)
            {
                index[d]++;
                offset += stride[d];
                if (index[d] < outShape[d]) break;
                offset -= stride[d] * index[d];
                index[d] = 0;
            }
        }
    }

    /// <summary>
    /// y = x[..., start:end, ...] along an axis of <paramref name="axisLength"/> elements with <paramref name="outer"/>
    /// blocks before it and <paramref name="inner"/> elements after. A bound past a symbolic axis is the caller's error.
    /// </summary>
    public static void Slice<T>(ReadOnlySpan<T> x, int outer, int axisLength, int inner, int start, int end, Span<T> y, string where)
    {
        if (start < 0 || end < start || end > axisLength)
            throw new McException($"{where}: slice [{start.ToString(CultureInfo.InvariantCulture)}:{end.ToString(CultureInfo.InvariantCulture)}] is out of range for an axis of size {axisLength.ToString(CultureInfo.InvariantCulture)}");
        int block = (end - start) * inner;
        for (int o = 0; o < outer; o++)
            x.Slice((o * axisLength + start) * inner, block).CopyTo(y.Slice(o * block, block));
    }

    /// <summary>y = the parts joined along an axis; part p has <paramref name="lengths"/>[p] elements on that axis.</summary>
    /// <summary>y[r, :] = x's row rows[r] for rows of <paramref name="dim"/> elements; an index outside x is a one-line error.</summary>
    public static void GatherRows(ReadOnlySpan<float> x, ReadOnlySpan<long> rows, int dim, Span<float> y, string where)
    {
        long count = x.Length / dim;
        for (int r = 0; r < rows.Length; r++)
        {
            long row = rows[r];
            if (row < 0 || row >= count) throw new McException($"{where}: row {row} is outside the {count} rows");
            x.Slice((int)row * dim, dim).CopyTo(y.Slice(r * dim, dim));
        }
    }

    public static void Concat<T>(ReadOnlySpan<T[]> parts, ReadOnlySpan<int> lengths, int outer, int inner, Span<T> y)
    {
        int at = 0;
        for (int o = 0; o < outer; o++)
            for (int p = 0; p < parts.Length; p++)
            {
                int block = lengths[p] * inner;
                parts[p].AsSpan(o * block, block).CopyTo(y.Slice(at, block));
                at += block;
            }
    }

    /// <summary>Row-major strides of a shape, in elements.</summary>
    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--) { s[d] = acc; acc = checked(acc * shape[d]); }
        return s;
    }
}

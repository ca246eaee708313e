using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>Reshape, Transpose, Slice, Concat and Cast; they work on float and integer tensors alike.</summary>
internal static class ShapeOps
{
    /// <summary>A row-major view with a new shape: shares the (immutable) data.</summary>
    public static RefTensor Reshape(Node node, RefTensor x, long[] target)
    {
        if (RefTensor.CountOf(target) != x.ElementCount)
            throw new McException($"{Interpreter.Describe(node)}: cannot view [{RefTensor.FormatShape(x.Shape)}] as [{RefTensor.FormatShape(target)}]: element counts differ");
        return new RefTensor(node.Type.DType, target, x.F, x.I);
    }

    /// <summary>out.shape[i] = in.shape[perm[i]]; out[.., idx_i, ..] = in[.., idx at axis perm[i], ..].</summary>
    public static RefTensor Transpose(Node node, RefTensor x)
    {
        var perm = node.Attrs.Ints("perm");
        var inStrides = Layout.Strides(x.Shape);
        var shape = perm.Select(p => x.Shape[p]).ToArray();
        var stride = perm.Select(p => inStrides[p]).ToArray();
        return Layout.Gather(x, shape, Layout.StridedMap(shape, stride, 0), node.Type.DType);
    }

    public static RefTensor Slice(Node node, RefTensor x)
    {
        int axis = Layout.Axis(node.Attrs.Int("axis"), x.Rank, node);
        long start = node.Attrs.Int("start"), end = node.Attrs.Int("end");
        // The typing rule can only check the bounds against a known size; a symbolic one is checked here.
        if (start < 0 || end < start || end > x.Shape[axis])
            throw new McException($"{Interpreter.Describe(node)}: slice [{start}:{end}] is out of range for axis {axis} of [{RefTensor.FormatShape(x.Shape)}]");
        var inStrides = Layout.Strides(x.Shape);
        var shape = x.Shape.ToArray();
        shape[axis] = end - start;
        return Layout.Gather(x, shape, Layout.StridedMap(shape, inStrides, start * inStrides[axis]), node.Type.DType);
    }

    /// <summary>y[0, r, :] = x's row rows[r] (x's leading axes flattened).</summary>
    public static RefTensor GatherRows(Node node, RefTensor x, RefTensor rows)
    {
        long d = x.Shape[^1], count = Layout.Count(x.Shape) / Math.Max(1, d);
        var idv = rows.I!;
        var shape = new long[] { 1, idv.Length, d };
        var data = new double[idv.Length * d];
        for (int r = 0; r < idv.Length; r++)
        {
            if (idv[r] < 0 || idv[r] >= count)
                throw new McException($"{Interpreter.Describe(node)}: row {idv[r]} is outside the {count} rows of [{RefTensor.FormatShape(x.Shape)}]");
            Array.Copy(x.F!, idv[r] * d, data, r * d, d);
        }
        return RefTensor.FromFloats(shape, data, node.Type.DType);
    }

    public static RefTensor Concat(Node node, RefTensor[] xs)
    {
        int axis = Layout.Axis(node.Attrs.Int("axis"), xs[0].Rank, node);
        var shape = xs[0].Shape.ToArray();
        shape[axis] = xs.Sum(t => t.Shape[axis]);
        foreach (var t in xs)
            for (int d = 0; d < shape.Length; d++)
                if (t.Rank != shape.Length || (d != axis && t.Shape[d] != shape[d]))
                    throw new McException($"{Interpreter.Describe(node)}: cannot concatenate [{RefTensor.FormatShape(xs[0].Shape)}] and [{RefTensor.FormatShape(t.Shape)}] along axis {axis}");
        // Each input contributes a contiguous block of shape[axis]·inner elements per outer index.
        int outer = Layout.Count(shape[..axis]);
        int inner = Layout.Count(shape[(axis + 1)..]);
        bool isFloat = xs[0].F is not null;
        var f = isFloat ? new double[Layout.Count(shape)] : null;
        var l = isFloat ? null : new long[Layout.Count(shape)];
        int at = 0;
        for (int o = 0; o < outer; o++)
            foreach (var t in xs)
            {
                int block = (int)t.Shape[axis] * inner;
                if (isFloat) Array.Copy(t.F!, o * block, f!, at, block);
                else Array.Copy(t.I!, o * block, l!, at, block);
                at += block;
            }
        return new RefTensor(node.Type.DType, shape, f, l);
    }

    /// <summary>To the node's dtype: float→int truncates toward zero; anything→bool is "nonzero".</summary>
    public static RefTensor Cast(Node node, RefTensor x)
    {
        var to = node.Type.DType;
        if (to.IsFloat())
            return new RefTensor(to, x.Shape, x.F is { } f ? (double[])f.Clone() : Array.ConvertAll(x.I!, v => (double)v), null);
        long[] r = x.F is { } src
            ? Array.ConvertAll(src, v => to == DType.Bool ? (v != 0 ? 1L : 0L) : (long)Math.Truncate(v))
            : (long[])x.I!.Clone();
        return new RefTensor(to, x.Shape, null, r); // the interpreter wraps the values to the target width
    }
}

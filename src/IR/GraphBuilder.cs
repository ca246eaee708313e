using System.Collections.Immutable;
using ModelCompiler.Runtime;

namespace ModelCompiler.IR;

/// <summary>
/// Creates typed nodes in a graph. Every node is typed by <see cref="ShapeInference"/> as it is made,
/// so an ill-typed graph cannot be built; the error names the op and the shapes.
/// </summary>
public sealed class GraphBuilder(Graph graph)
{
    public Graph Graph { get; } = graph;

    /// <summary>The stable name given to nodes made next (the frontend sets it per statement).</summary>
    public string? CurrentName { get; set; }

    /// <summary>The source position given to nodes made next.</summary>
    public SourceSpan? CurrentSpan { get; set; }

    public Node Add(OpKind op, IReadOnlyList<Node> inputs, Attrs? attrs = null, TensorType? declared = null)
    {
        attrs ??= Attrs.Empty;
        var type = ShapeInference.Infer(op, inputs.Select(i => i.Type).ToArray(), attrs, declared);
        return Graph.Append(op, inputs.ToImmutableArray(), attrs, type, CurrentName, CurrentSpan);
    }

    public Node Input(string name, TensorType type) => Add(OpKind.Input, [], Attrs.Empty.With("name", name), type);

    public Node Weight(string checkpointName, TensorType type) =>
        Add(OpKind.Weight, [], Attrs.Empty.With("name", checkpointName), type);

    public Node Const(double value, DType dtype = DType.F32) =>
        Add(OpKind.Const, [], Attrs.Empty.With("value", value), new TensorType(dtype));

    public Node Binary(OpKind op, Node a, Node b) => Add(op, [a, b]);

    public Node Unary(OpKind op, Node x) => Add(op, [x]);

    public Node Linear(Node x, Node weight, Node? bias = null) =>
        Add(OpKind.Linear, bias is null ? [x, weight] : [x, weight, bias]);

    public Node Reshape(Node x, params Dim[] shape) => Add(OpKind.Reshape, [x], null, new TensorType(x.Type.DType, shape));

    public Node Transpose(Node x, params long[] perm) => Add(OpKind.Transpose, [x], Attrs.Empty.With("perm", perm));

    public Node Slice(Node x, long axis, long start, long end) =>
        Add(OpKind.Slice, [x], Attrs.Empty.With("axis", axis).With("start", start).With("end", end));
}

using System.Collections.Immutable;

namespace ModelCompiler.IR;

/// <summary>
/// One SSA value: an op applied to ordered inputs, with attributes and a result type.
/// <see cref="Name"/> is the stable, structure-derived name (<c>decoder_layer.3.attention.q</c>) that
/// dumps, goldens and profiles share; <see cref="Span"/> points back to the DSL.
/// </summary>
public sealed class Node
{
    internal Node(int id, OpKind op, ImmutableArray<Node> inputs, Attrs attrs, TensorType type, string? name, SourceSpan? span)
    {
        Id = id;
        Op = op;
        Inputs = inputs;
        Attrs = attrs;
        Type = type;
        Name = name;
        Span = span;
    }

    /// <summary>Unique within its graph; assigned in creation order.</summary>
    public int Id { get; }
    public OpKind Op { get; }
    public ImmutableArray<Node> Inputs { get; internal set; }
    public Attrs Attrs { get; }
    public TensorType Type { get; }
    public string? Name { get; }
    public SourceSpan? Span { get; }

    public Node Input(int index) => Inputs[index];

    public override string ToString() => $"%{Id} = {Op.Mnemonic()}";
}

using System.Collections.Immutable;

namespace ModelCompiler.IR;

/// <summary>
/// A model's forward computation: nodes in a valid evaluation order, named inputs and outputs, and
/// the hyperparameters it was elaborated with (kept for printing, manifests and generation settings).
/// </summary>
public sealed class Graph
{
    private readonly List<Node> _nodes = new();
    private readonly List<KeyValuePair<string, Node>> _outputs = new();
    private int _nextId;

    public Graph(string name, IReadOnlyDictionary<string, object>? hyperparameters = null)
    {
        Name = name;
        Hyperparameters = (hyperparameters ?? new Dictionary<string, object>())
            .ToImmutableSortedDictionary(StringComparer.Ordinal);
    }

    public string Name { get; }

    /// <summary>Hyperparameter values (long, double, bool or string) the graph was elaborated with.</summary>
    public ImmutableSortedDictionary<string, object> Hyperparameters { get; }

    /// <summary>All nodes, in an order where every input precedes its users.</summary>
    public IReadOnlyList<Node> Nodes => _nodes;

    public IEnumerable<Node> Inputs => _nodes.Where(n => n.Op == OpKind.Input);

    public IEnumerable<Node> Weights => _nodes.Where(n => n.Op == OpKind.Weight);

    public IReadOnlyList<KeyValuePair<string, Node>> Outputs => _outputs;

    public Node Output(string name) =>
        _outputs.FirstOrDefault(o => o.Key == name).Value ?? throw new KeyNotFoundException($"graph {Name} has no output '{name}'");

    public bool TryGetHyperparameter<T>(string name, out T value)
    {
        if (Hyperparameters.TryGetValue(name, out var v) && v is T t) { value = t; return true; }
        value = default!;
        return false;
    }

    internal Node Append(OpKind op, ImmutableArray<Node> inputs, Attrs attrs, TensorType type, string? name, SourceSpan? span)
    {
        var node = new Node(_nextId++, op, inputs, attrs, type, name, span);
        _nodes.Add(node);
        return node;
    }

    public void SetOutput(string name, Node value)
    {
        int i = _outputs.FindIndex(o => o.Key == name);
        if (i >= 0) _outputs[i] = new(name, value);
        else _outputs.Add(new(name, value));
    }

    /// <summary>Drops an output (a pass that changes the calling contract, such as the paged KV cache's).</summary>
    public void RemoveOutput(string name) => _outputs.RemoveAll(o => o.Key == name);

    /// <summary>Points every use of <paramref name="oldValue"/> (inputs and outputs) at <paramref name="newValue"/>.</summary>
    public void ReplaceAllUses(Node oldValue, Node newValue)
    {
        foreach (var n in _nodes)
        {
            if (n.Inputs.Contains(oldValue))
                n.Inputs = n.Inputs.Select(x => x == oldValue ? newValue : x).ToImmutableArray();
        }
        for (int i = 0; i < _outputs.Count; i++)
            if (_outputs[i].Value == oldValue) _outputs[i] = new(_outputs[i].Key, newValue);
    }

    /// <summary>Points operand <paramref name="index"/> of <paramref name="user"/> at <paramref name="value"/>; the verifier checks the types.</summary>
    public void ReplaceInput(Node user, int index, Node value) => user.Inputs = user.Inputs.SetItem(index, value);

    /// <summary>Adds an operand at the end of <paramref name="user"/>'s inputs (an op's optional trailing input).</summary>
    public void AppendInput(Node user, Node value) => user.Inputs = user.Inputs.Add(value);

    /// <summary>Keeps only the given nodes, in their current relative order.</summary>
    public void RetainOnly(IReadOnlySet<Node> keep) => _nodes.RemoveAll(n => !keep.Contains(n));

    /// <summary>Reorders the nodes; <paramref name="order"/> must be a permutation of <see cref="Nodes"/>.</summary>
    public void Reorder(IReadOnlyList<Node> order)
    {
        if (order.Count != _nodes.Count || order.Distinct().Count() != order.Count || order.Except(_nodes).Any())
            throw new InvalidOperationException("Reorder needs a permutation of the graph's nodes");
        _nodes.Clear();
        _nodes.AddRange(order);
    }
}

using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Where a per-input-channel scale s of some linears can be folded into the op that produces their input, so that
/// x/s costs nothing at run time (SmoothQuant, AWQ): the weight (and bias) of a RMSNorm/LayerNorm read only by those
/// linears, or the rows of a linear whose output is multiplied elementwise into their input (LLaMA's up projection
/// in act(gate)·up, read by the down projection). Every tensor involved must be used once, so that nothing else sees
/// the change.
/// </summary>
public sealed class ScaleFolding
{
    private readonly Graph _graph;
    private readonly Dictionary<Node, List<Node>> _users;
    private readonly HashSet<Node> _candidates;
    private readonly Dictionary<string, int> _weightUses;

    public ScaleFolding(Graph graph)
    {
        _graph = graph;
        _users = GraphAnalysis.Users(graph);
        _candidates = QuantizedLinears.Candidates(graph).ToHashSet();
        _weightUses = graph.Weights.GroupBy(w => w.Attrs.Str("name"), StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Sum(w => _users[w].Count), StringComparer.Ordinal);
    }

    public IReadOnlyDictionary<Node, List<Node>> Users => _users;

    /// <summary>Whether the checkpoint tensor <paramref name="weight"/> is read by exactly one op.</summary>
    public bool UsedOnce(Node weight) => weight.Op == OpKind.Weight && _weightUses[weight.Attrs.Str("name")] == 1;

    /// <summary>The readers of <paramref name="value"/> that matter for folding (positions reads only its operand's shape).</summary>
    public List<Node> Readers(Node value) => _users[value].Where(u => u.Op != OpKind.Positions).ToList();

    /// <summary>
    /// The linears reading <paramref name="norm"/> if s can be folded into its parameters: all its readers are
    /// candidate linears reading it as their input (weights used once), it is no graph output, and its weight and
    /// bias are checkpoint tensors used by it alone; else null.
    /// </summary>
    public List<Node>? NormReaders(Node norm)
    {
        if (norm.Op is not (OpKind.RmsNorm or OpKind.LayerNorm)) return null;
        var readers = Readers(norm);
        if (readers.Count == 0 || !readers.All(_candidates.Contains) || readers.Any(r => r.Input(0) != norm || r.Input(1) == norm)) return null;
        if (_graph.Outputs.Any(o => o.Value == norm)) return null;
        var parameters = norm.Inputs.Skip(1).ToList();
        if (parameters.Count == 0 || !parameters.All(UsedOnce) || !readers.All(r => UsedOnce(r.Input(1)))) return null;
        return readers;
    }

    /// <summary>Divides channel j of the norm's output by s_j: its gain (offset + w, Gemma's 1 + w) and bias by s.</summary>
    public static void DivideNorm(QuantizationContext context, Node norm, float[] s)
    {
        int k = s.Length;
        double offset = norm.Op == OpKind.RmsNorm ? norm.Attrs.Float("offset", 0) : 0;
        for (int p = 1; p < norm.Inputs.Length; p++)
        {
            var name = norm.Input(p).Attrs.Str("name");
            var values = (float[])context.Weights.ReadFloats(name).Clone();
            for (int j = 0; j < k; j++) values[j] = p == 1 ? (float)((offset + values[j]) / s[j] - offset) : values[j] / s[j];
            context.Weights.WriteFloats(name, [k], values);
        }
    }

    /// <summary>
    /// For <paramref name="product"/> = a·b (elementwise, same shape) read only by <paramref name="readers"/>, the
    /// operand that is a candidate linear read only by the product, with its weight (and bias) used once: scaling that
    /// linear's output rows by 1/s scales the product by 1/s. Null when there is none.
    /// </summary>
    public Node? ProducingLinear(Node product, IReadOnlyCollection<Node> readers)
    {
        if (product.Op != OpKind.Mul || _graph.Outputs.Any(o => o.Value == product)) return null;
        if (Readers(product).Count != readers.Count || !Readers(product).All(readers.Contains)) return null;
        foreach (var operand in product.Inputs)
        {
            if (!_candidates.Contains(operand) || operand.Type != product.Type || product.Inputs.Count(i => i == operand) != 1) continue;
            if (_users[operand].Count != 1 || !UsedOnce(operand.Input(1))) continue;
            if (operand.Inputs.Length > 2 && !UsedOnce(operand.Input(2))) continue;
            return operand;
        }
        return null;
    }
}

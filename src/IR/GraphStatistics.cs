using ModelCompiler.Runtime;

namespace ModelCompiler.IR;

/// <summary>
/// Size and cost of a model from its IR alone (no weights needed): parameters, FLOPs per token and
/// KV-cache bytes per token. FLOPs count multiply-adds as 2 (linear: 2·in·out per token; attention:
/// 2·heads·(head_dim + value_dim) per visible query-key pair) plus one per element for elementwise
/// work and a few per element for norms and softmax. Decode cost is the marginal cost of one more
/// token at context length S, F(S+1) − F(S), which is what a KV-cached step computes.
/// </summary>
public static class GraphStatistics
{
    public sealed record Report(
        long TotalParameters,
        IReadOnlyDictionary<string, long> ParametersByKind,
        long SequenceLength,
        double PrefillFlopsPerToken,
        double DecodeFlopsPerToken,
        long KvBytesPerToken,
        IReadOnlyDictionary<string, long> WeightBytesByDType);

    /// <param name="sequenceLength">the context length S at which FLOPs are counted (every symbolic length dimension is S, batch is 1)</param>
    /// <param name="storedDTypes">the dtype each weight is stored in, when weights are at hand; otherwise the declared dtype</param>
    public static Report Compute(Graph graph, long sequenceLength, IReadOnlyDictionary<string, DType>? storedDTypes = null)
    {
        if (sequenceLength < 1) throw new McException($"sequence length {sequenceLength} must be at least 1");
        var users = GraphAnalysis.Users(graph);
        var byKind = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var bytes = new SortedDictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        foreach (var w in graph.Weights)
        {
            long n = w.Type.Shape.Aggregate(1L, (a, d) => checked(a * d.Size));
            total += n;
            var kind = KindOf(w, users);
            byKind[kind] = byKind.GetValueOrDefault(kind) + n;
            var dtype = storedDTypes is not null && storedDTypes.TryGetValue(w.Attrs.Str("name"), out var s) ? s : w.Type.DType;
            bytes[dtype.ShortName()] = bytes.GetValueOrDefault(dtype.ShortName()) + n * dtype.SizeInBytes();
        }

        double prefill = Flops(graph, sequenceLength) / sequenceLength;
        double decode = Flops(graph, sequenceLength + 1) - Flops(graph, sequenceLength);
        long kv = 0;
        foreach (var a in graph.Nodes.Where(n => n.Op == OpKind.Attention && IsSelfAttention(n)))
        {
            var k = a.Input(1).Type;
            var v = a.Input(2).Type;
            kv += (k[2].Size * k[3].Size + v[2].Size * v[3].Size) * k.DType.SizeInBytes();
        }
        return new Report(total, byKind, sequenceLength, prefill, decode, kv, bytes);
    }

    /// <summary>What a weight is for, from the op that consumes it.</summary>
    private static string KindOf(Node weight, Dictionary<Node, List<Node>> users)
    {
        var user = users[weight].FirstOrDefault();
        while (user is not null && user.Op is OpKind.Transpose or OpKind.Slice or OpKind.Reshape or OpKind.Cast)
            user = users[user].FirstOrDefault();
        return user?.Op switch
        {
            OpKind.Embedding => "embedding",
            OpKind.Linear or OpKind.MatMul => weight.Type.Rank == 1 ? "bias" : "linear",
            OpKind.RmsNorm or OpKind.LayerNorm => "norm",
            OpKind.RelativePositionBias => "position_bias",
            null => "unused",
            _ => "other",
        };
    }

    /// <summary>Keys computed from the same sequence as the queries (cross-attention keys come from the encoder).</summary>
    private static bool IsSelfAttention(Node attention) => attention.Input(0).Type[1] == attention.Input(1).Type[1];

    /// <summary>How many (query, key) pairs the mask lets through: S·T without a mask, about half under a causal one, at most the window per query.</summary>
    private static double VisiblePairs(long queries, long keys, Attrs attrs)
    {
        var mask = attrs.Str("mask", "none");
        long window = attrs.Int("window", 0), prefix = attrs.Int("prefix", 0);
        double pairs = 0;
        for (long i = 0; i < queries; i++)
        {
            long position = i + keys - queries;
            long visible = mask switch
            {
                "causal" => position + 1,
                "prefix" => Math.Max(position + 1, Math.Min(prefix, keys)),
                _ => keys,
            };
            if (window > 0) visible = Math.Min(visible, window);
            pairs += Math.Clamp(visible, 0, keys);
        }
        return pairs;
    }

    private static double Flops(Graph graph, long s)
    {
        long Size(Dim d) => d.IsKnown ? d.Size : d.Symbol == "batch" ? 1 : s;
        long Elements(TensorType t) => t.Shape.Aggregate(1L, (a, d) => a * Size(d));
        double flops = 0;
        foreach (var n in graph.Nodes)
        {
            var outElements = (double)Elements(n.Type);
            switch (n.Op)
            {
                case OpKind.Linear:
                    flops += 2.0 * outElements * Size(n.Input(1).Type[1]);
                    break;
                case OpKind.MatMul:
                    flops += 2.0 * outElements * Size(n.Input(0).Type[-1]);
                    break;
                case OpKind.Attention:
                {
                    var q = n.Input(0).Type;
                    double pairs = VisiblePairs(Size(q[1]), Size(n.Input(1).Type[1]), n.Attrs);
                    flops += 2.0 * pairs * Size(q[2]) * (Size(q[3]) + Size(n.Input(2).Type[3]));
                    break;
                }
                case OpKind.RelativeScores:
                    // out[b, h, i, j] = Σ_d x[b, i, h, d] · table[i − j, h, d]
                    flops += 2.0 * outElements * Size(n.Input(0).Type[3]);
                    break;
                case OpKind.RmsNorm or OpKind.LayerNorm or OpKind.Softmax:
                    flops += 5 * outElements;
                    break;
                case var op when op.IsElementwiseBinary() || op.IsElementwiseUnary() || op is OpKind.Rope or OpKind.Xpos:
                    flops += outElements;
                    break;
            }
        }
        return flops;
    }
}

using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// Moves the KV cache out of the graph into a paged block pool the runtime holds (runs after <see cref="KvCacheRewrite"/>).
/// Each cached attention, with the cache_append pair that fed it, becomes one paged_attention over the new tokens' q, k, v:
/// it writes k and v in place into the sequence's blocks and reads the whole cache through the block table. The past
/// inputs and present outputs go; positions become an input, so one forward can carry tokens of several sequences
/// (input_ids [1, T] flattened, position_ids [T]: each token at its own sequence's position).
/// <code>
/// before: %pk = input "past.0.key"; %k2 = cache_append %pk, %k; ... %o = attention %q, %k2, %v2 {mask="causal"}
///         %p = positions %x, %pk; output "present.0.key" = %k2
/// after:  %p = input "position_ids" : i64[seq]
///         %o = paged_attention %q, %k, %v {layer=0, mask="causal"}
/// </code>
/// ALiBi biases (BLOOM) are computed inside the kernel from the tokens' positions (attr alibi); other position biases
/// (T5's relative buckets) and extra inputs (an encoder's) are not supported: <see cref="Unsupported"/> says why, and
/// such models keep the contiguous cache.
/// </summary>
public sealed class PagedKvCacheRewrite : IPass
{
    public const string PositionIds = "position_ids";

    public string Name => "paged-kv-cache";

    public string Description => "move the KV cache into a paged block pool (paged_attention reads it through a block table; position_ids input)";

    private static bool IsPast(Node n) => n.Op == OpKind.Input && n.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal);

    /// <summary>Why a KV-cached graph cannot be paged, or null when it can.</summary>
    public static string? Unsupported(Graph graph)
    {
        var generated = KvCacheRewrite.GeneratedInput(graph);
        if (generated is null || !graph.Inputs.Any(IsPast)) return "it has no KV cache (run the kv-cache pass first)";
        var others = graph.Inputs.Where(i => i != generated && !IsPast(i)).Select(i => i.Attrs.Str("name")).ToList();
        if (others.Count > 0) return $"it also takes {string.Join(", ", others)}";
        foreach (var attention in graph.Nodes.Where(n => n.Op == OpKind.Attention && n.Inputs.Length == 4 && n.Input(1).Op == OpKind.CacheAppend))
            if (AlibiOf(attention) is null)
                return $"attention '{attention.Name}' adds a {attention.Input(3).Op.Mnemonic()} bias (only ALiBi is computed in the paged kernel)";
        return null;
    }

    /// <summary>The ALiBi bias of a cached attention when it is exactly alibi_bias(query positions, cache positions) with one slope per query head.</summary>
    private static Node? AlibiOf(Node attention)
    {
        var bias = attention.Input(3);
        if (bias.Op != OpKind.AlibiBias || bias.Attrs.Int("heads") != attention.Input(0).Type[2].Size) return null;
        var (qpos, kpos) = (bias.Input(0), bias.Input(1));
        bool queries = qpos.Op == OpKind.Positions && qpos.Inputs.Length == 2 && IsPast(qpos.Input(1));
        bool keys = kpos.Op == OpKind.Positions && kpos.Inputs.Length == 1 && kpos.Attrs.Int("offset", 0) == 0 && kpos.Input(0).Op == OpKind.CacheAppend
            && kpos.Attrs.Int("axis") == 1;
        return queries && keys && qpos.Attrs.Int("offset", 0) == 0 ? bias : null;
    }

    public bool Run(Graph graph)
    {
        if (!graph.Inputs.Any(IsPast)) return false;
        if (Unsupported(graph) is { } why) throw new McException($"graph {graph.Name} cannot use a paged KV cache: {why}");
        var generated = KvCacheRewrite.GeneratedInput(graph)!;
        if (generated.Type.Rank != 2) throw new McException($"graph {graph.Name}: {generated.Attrs.Str("name")} must be [batch, seq] for a paged KV cache");

        var builder = new GraphBuilder(graph);
        var positionIds = builder.Input(PositionIds, new TensorType(DType.I64, generated.Type[1]));
        foreach (var attention in graph.Nodes.Where(n => n.Op == OpKind.Attention && n.Input(1).Op == OpKind.CacheAppend).ToList())
        {
            var (keys, values) = (attention.Input(1), attention.Input(2));
            if (values.Op != OpKind.CacheAppend || !IsPast(keys.Input(0)) || !IsPast(values.Input(0)))
                throw new McException($"graph {graph.Name}: attention '{attention.Name}' reads a KV cache the paged rewrite does not recognise");
            var name = keys.Input(0).Attrs.Str("name");   // past.<layer>.key
            long layer = long.Parse(name["past.".Length..name.LastIndexOf('.')], System.Globalization.CultureInfo.InvariantCulture);
            var attrs = attention.Attrs.With("layer", layer);
            if (attention.Inputs.Length == 4) attrs = attrs.With("alibi", true);
            builder.CurrentName = attention.Name;
            builder.CurrentSpan = attention.Span;
            var paged = builder.Add(OpKind.PagedAttention, [attention.Input(0), keys.Input(1), values.Input(1)], attrs);
            graph.ReplaceAllUses(attention, paged);
        }
        foreach (var present in graph.Outputs.Where(o => o.Key.StartsWith("present.", StringComparison.Ordinal)).Select(o => o.Key).ToList())
            graph.RemoveOutput(present);

        // Positions after the past become the tokens' own positions (offset added when the model has one).
        foreach (var positions in graph.Nodes.Where(n => n.Op == OpKind.Positions && n.Inputs.Length == 2 && IsPast(n.Input(1))).ToList())
        {
            long offset = positions.Attrs.Int("offset", 0);
            builder.CurrentName = positions.Name;
            builder.CurrentSpan = positions.Span;
            var replacement = offset == 0 ? positionIds : builder.Binary(OpKind.Add, positionIds, builder.Const(offset, DType.I64));
            graph.ReplaceAllUses(positions, replacement);
        }

        var live = GraphAnalysis.Live(graph);
        foreach (var input in graph.Inputs.Where(i => !IsPast(i))) live.Add(input);
        graph.RetainOnly(live);
        graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        return true;
    }
}

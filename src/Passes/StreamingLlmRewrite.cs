using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// StreamingLLM mode (Xiao et al., "Efficient Streaming Language Models with Attention Sinks", 2023) for a paged graph
/// (runs after <see cref="PagedKvCacheRewrite"/>): every paged attention keeps the first <c>sinks</c> tokens plus the
/// last <c>window</c> ones (attrs sinks, window: the runtime frees the blocks in between), and since positions are
/// indices within that cache, RoPE moves inside the attention: the keys are cached before rotation and each key and the
/// query are rotated at their cache index (attrs rope_theta, rope_dim, rope_interleaved, rope_divisor).
/// <code>
/// before: %q = rope %q0, %pos {theta=...}; %k = rope %k0, %pos {theta=...}; %o = paged_attention %q, %k, %v {layer=0, mask="causal"}
/// after:  %o = paged_attention %q0, %k0, %v {layer=0, mask="causal", sinks=4, window=1020, rope_theta=..., rope_dim=...}
/// </code>
/// The model's positions must enter only through those ropes (no learned position table, ALiBi, dynamic NTK scaling or
/// sliding window of its own); otherwise the pass refuses with the reason. Not in any pipeline: <c>mc run
/// --streaming-window</c> runs it with the user's sizes.
/// </summary>
public sealed class StreamingLlmRewrite(int sinks, int window) : IPass
{
    public string Name => "streaming-llm";

    public string Description => "StreamingLLM: paged attentions keep sink tokens plus a recent window, with RoPE applied at cache positions inside the attention";

    public bool Run(Graph graph)
    {
        if (sinks < 0) throw new McException($"--streaming-sinks {sinks}: expected a number >= 0");
        if (window < 1) throw new McException($"--streaming-window {window}: expected at least 1 token");
        var attentions = graph.Nodes.Where(n => n.Op == OpKind.PagedAttention).ToList();
        if (attentions.Count == 0) throw Refused(graph, "it has no paged attention (run the paged-kv-cache pass first)");
        var positionIds = graph.Inputs.FirstOrDefault(i => i.Attrs.Str("name") == PagedKvCacheRewrite.PositionIds)
            ?? throw Refused(graph, $"it has no {PagedKvCacheRewrite.PositionIds} input");

        // Positions beyond the cache must reach nothing but the ropes that move into the attentions.
        foreach (var user in graph.Nodes.Where(n => n.Inputs.Contains(positionIds)))
            if (user.Op != OpKind.Rope || graph.Nodes.Any(n => n.Inputs.Contains(user) && (n.Op != OpKind.PagedAttention || n.Inputs.IndexOf(user) is not (0 or 1))))
                throw Refused(graph, $"its {PagedKvCacheRewrite.PositionIds} reach '{user.Name}' ({user.Op.Mnemonic()}), not only the attentions' ropes");

        var builder = new GraphBuilder(graph);
        foreach (var attention in attentions)
        {
            var a = attention.Attrs;
            if (a.Str("mask", "none") != "causal") throw Refused(graph, $"attention '{attention.Name}' is not causal");
            if (a.Bool("alibi", false)) throw Refused(graph, $"attention '{attention.Name}' adds ALiBi biases");
            if (a.Int("window", 0) > 0 || a.Int("sinks", 0) > 0) throw Refused(graph, $"attention '{attention.Name}' already has a sliding window");
            var (q, k) = (attention.Input(0), attention.Input(1));
            if (!IsRopeAtPositions(q, positionIds) || !IsRopeAtPositions(k, positionIds))
                throw Refused(graph, $"attention '{attention.Name}' does not take its query and key from rope at {PagedKvCacheRewrite.PositionIds}");
            if (!q.Attrs.Equals(k.Attrs)) throw Refused(graph, $"attention '{attention.Name}' rotates its query and key differently");
            var scaling = q.Attrs.Str("scaling", "none");
            if (scaling is not ("none" or "linear")) throw Refused(graph, $"attention '{attention.Name}' uses rope scaling '{scaling}'");
            var attrs = a.With("sinks", (long)sinks).With("window", (long)window)
                .With("rope_theta", q.Attrs.Float("theta")).With("rope_dim", q.Attrs.Int("rotary_dim"))
                .With("rope_interleaved", q.Attrs.Bool("interleaved", false))
                .With("rope_divisor", scaling == "linear" ? q.Attrs.Float("factor", 1.0) : 1.0);
            builder.CurrentName = attention.Name;
            builder.CurrentSpan = attention.Span;
            var streaming = builder.Add(OpKind.PagedAttention, [q.Input(0), k.Input(0), attention.Input(2)], attrs);
            graph.ReplaceAllUses(attention, streaming);
        }

        var live = GraphAnalysis.Live(graph);
        foreach (var input in graph.Inputs) live.Add(input);
        graph.RetainOnly(live);
        graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        return true;
    }

    private static bool IsRopeAtPositions(Node n, Node positionIds) => n.Op == OpKind.Rope && n.Input(1) == positionIds;

    private static McException Refused(Graph graph, string why) => new($"graph {graph.Name} cannot run in StreamingLLM mode: {why}");
}

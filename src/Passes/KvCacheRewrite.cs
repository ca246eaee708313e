using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// Turns a model's forward into one that reads and appends a per-layer key/value cache, so the same
/// graph serves the prefill (an empty past) and each one-token decode step (the past so far).
/// <code>
/// before: %k = rope ...; %o = attention %q, %k, %v {mask="causal"}; %p = positions %x
/// after:  %pk = input "past.0.key" : f32[batch,past,2,16]
///         %k2 = cache_append %pk, %k {axis=1, length="kv"} : f32[batch,kv,2,16]     (and the same for values)
///         %o = attention %q, %k2, %v2 {mask="causal"}; %p = positions %x, %pk      (positions start at the past's length)
///         output "present.0.key" = %k2
/// </code>
/// Only attentions whose queries and keys both run over the generated sequence are cached (the decoder's
/// self-attention; not an encoder, not cross-attention). Bias ops that take key positions (ALiBi, T5's
/// relative buckets) get the positions of the whole cached length. Rope needs nothing: a key is rotated
/// once, at its own position, when it enters the cache (which is also Hugging Face's dynamic-NTK behaviour).
/// </summary>
public sealed class KvCacheRewrite : IPass
{
    public const string PastLength = "past";
    public const string TotalLength = "kv";

    public string Name => "kv-cache";

    public string Description => "read and append a per-layer key/value cache (past.N.key/value in, present.N.key/value out)";

    public static string PastName(int layer, string part) => $"past.{layer}.{part}";

    public static string PresentName(int layer, string part) => $"present.{layer}.{part}";

    /// <summary>The input that grows during generation: decoder_input_ids for encoder-decoders, else input_ids.</summary>
    public static Node? GeneratedInput(Graph graph) =>
        graph.Inputs.FirstOrDefault(i => i.Attrs.Str("name") == "decoder_input_ids")
        ?? graph.Inputs.FirstOrDefault(i => i.Attrs.Str("name") == "input_ids");

    public bool Run(Graph graph)
    {
        var generated = GeneratedInput(graph);
        if (generated is null || generated.Type.Rank < 2 || generated.Type[1].Symbol is not { } grows) return false;
        var growing = Dim.Sym(grows);
        var attentions = graph.Nodes.Where(n => n.Op == OpKind.Attention && n.Input(0).Type[1] == growing && n.Input(1).Type[1] == growing).ToList();
        if (attentions.Count == 0) return false;
        if (graph.Inputs.Any(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal)))
            throw new McException($"graph {graph.Name} already has a KV cache");

        var builder = new GraphBuilder(graph);
        Node? firstPast = null, firstKeys = null;
        for (int layer = 0; layer < attentions.Count; layer++)
        {
            var attention = attentions[layer];
            builder.CurrentName = attention.Name;
            builder.CurrentSpan = attention.Span;
            for (int operand = 1; operand <= 2; operand++)
            {
                var part = operand == 1 ? "key" : "value";
                var fresh = attention.Input(operand);
                var past = builder.Input(PastName(layer, part), fresh.Type.WithShape(fresh.Type.Shape.SetItem(1, Dim.Sym(PastLength))));
                var all = builder.Add(OpKind.CacheAppend, [past, fresh], Attrs.Empty.With("axis", 1L).With("length", TotalLength));
                graph.ReplaceInput(attention, operand, all);
                graph.SetOutput(PresentName(layer, part), all);
                if (layer == 0 && operand == 1) { firstPast = past; firstKeys = all; }
            }
        }

        // Key positions of position biases span the whole cache; every other position starts after the past.
        var growingPositions = graph.Nodes.Where(n => n.Op == OpKind.Positions && n.Inputs.Length == 1
            && n.Input(0).Type.Shape[(int)Normalize(n.Attrs.Int("axis"), n.Input(0).Type.Rank)] == growing).ToList();
        Node? keyPositions = null;
        var replaced = new HashSet<Node>();
        foreach (var bias in graph.Nodes.Where(n => n.Op is OpKind.AlibiBias or OpKind.RelativePositionBias).ToList())
        {
            int k = bias.Op == OpKind.AlibiBias ? 1 : 2;
            if (!growingPositions.Contains(bias.Input(k))) continue;
            builder.CurrentName = bias.Name;
            builder.CurrentSpan = bias.Span;
            keyPositions ??= builder.Add(OpKind.Positions, [firstKeys!], Attrs.Empty.With("axis", 1L).With("offset", 0L));
            // The bias widens from [.., seq, seq] to [.., seq, kv]: a new node (types are fixed), then every use moves to it.
            var widened = builder.Add(bias.Op, bias.Inputs.SetItem(k, keyPositions), bias.Attrs);
            graph.ReplaceAllUses(bias, widened);
            replaced.Add(bias);
        }
        if (replaced.Count > 0) graph.RetainOnly(graph.Nodes.Where(n => !replaced.Contains(n)).ToHashSet());
        foreach (var positions in growingPositions)
            graph.AppendInput(positions, firstPast!);

        graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        return true;
    }

    private static long Normalize(long axis, int rank) => axis < 0 ? axis + rank : axis;
}

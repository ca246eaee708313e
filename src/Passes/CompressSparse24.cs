using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// After 2:4 pruning with no quantization scheme: every pruned linear's weight is stored and multiplied compressed,
/// the 2 kept values of every 4 weights plus their 2-bit positions (8.5 bytes for 4 weights instead of 16), read by
/// the sparse kernel (<c>SparseGemm</c>). Linears whose input width is not a multiple of 8 (two groups a position
/// byte) stay dense.
/// <code>
/// before: %y = linear %x, %w                     (%w 2:4 sparse after prune-wanda/prune-magnitude N:M = 2:4)
/// after:  %y = quantized_linear %x, %v, %p {scheme="sparse24", group_size=4}   (%v f32[N, K/2], %p u8[N, K/8])
/// </code>
/// </summary>
public sealed class CompressSparse24(QuantizationContext context) : IPass
{
    public string Name => "compress-sparse24";

    public string Description => "store 2:4-pruned weights as their kept values and 2-bit positions";

    public bool Run(Graph graph)
    {
        var done = new HashSet<string>(StringComparer.Ordinal);
        foreach (var linear in QuantizedLinears.Candidates(graph))
        {
            var name = QuantizedLinears.WeightName(linear);
            if (!context.Weights.Written.ContainsKey(name) || !done.Add(name)) continue;
            int n = (int)linear.Input(1).Type[0].Size, k = (int)linear.Input(1).Type[1].Size;
            if (k % 8 != 0) continue;
            QuantizedLinears.Store(context, name, "sparse24", context.Weights.ReadFloats(name), n, k, 4);
        }
        return QuantizedLinears.Rewrite(graph, context.Entries);
    }
}

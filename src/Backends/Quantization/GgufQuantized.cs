using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime.Gguf;

namespace ModelCompiler.Backends.Quantization;

/// <summary>
/// A GGUF model's Q8_0 / Q4_0 linears on the quantized-linear kernels: int8 and int4 with group size 32 and the blocks'
/// fp16 scales, read from the file as <see cref="GgufWeights"/> exposes them (no requantization).
/// </summary>
public static class GgufQuantized
{
    public static IReadOnlyList<QuantizedLinearEntry> Entries(GgufWeights weights) =>
        weights.QuantizedWeights.Select(q => new QuantizedLinearEntry(q.Weight, q.Scheme, GgufFile.BlockSize, q.Weight + ".codes", q.Weight + ".scales",
            q.Scheme == "int4" ? q.Weight + ".zeros" : null, null)).ToList();

    /// <summary>Rewrites the linears of a graph imported from <paramref name="path"/> whose weights are stored quantized.</summary>
    public static void Apply(Graph graph, string path)
    {
        using var weights = GgufWeights.Open(path);
        try
        {
            QuantizedLinears.Rewrite(graph, Entries(weights));
        }
        catch (Runtime.McException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw GgufFile.Error(path, e.Message);
        }
    }
}

using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// SmoothQuant (Xiao et al. 2023) then W8A8. Activation outliers sit in a few input channels, and per-token int8
/// spends its range on them; dividing channel j of the activations by s_j = max|X_j|^α / max|W_j|^(1−α) and
/// multiplying the weights' column j by it moves the difficulty into the weights. The division is folded at compile
/// time into the weight (and bias) of the RMSNorm/LayerNorm that produces the activations, so it costs nothing at run
/// time; all the linears reading that norm (q/k/v, gate/up) share one s, with max|W_j| over all of them. Linears that
/// do not read a norm (the attention output, down projections) get plain W8A8.
/// <code>
/// before: %h = rms_norm %x, %g; %q = linear %h, %wq; %k = linear %h, %wk
/// after:  %h = rms_norm %x, %g'; %q = quantized_linear %h, %q1, %s1 {scheme="w8a8"}; %k = quantized_linear %h, ...
///         (g' = g/s and the codes of wq·diag(s), wk·diag(s) in the checkpoint)
/// </code>
/// </summary>
public sealed class SmoothQuant(QuantizationContext context) : IPass
{
    public string Name => "smoothquant";

    public string Description => "activation outliers migrated into the weights (folded into the norm), then W8A8";

    public bool Run(Graph graph)
    {
        var stats = context.RequireStats(Name);
        double alpha = context.SmoothAlpha;
        if (alpha is < 0 or > 1) throw new McException($"--smooth-alpha {alpha}: must be in [0, 1]");
        var folding = new ScaleFolding(graph);
        var smoothing = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var norm in graph.Nodes.Where(n => n.Op is OpKind.RmsNorm or OpKind.LayerNorm).ToList())
        {
            if (folding.NormReaders(norm) is not { } readers) continue;
            int k = (int)norm.Type[-1].Size;
            var xmax = stats.For(QuantizedLinears.WeightName(readers[0]), Name).MaxAbs;
            var wmax = new float[k];
            foreach (var r in readers)
            {
                var w = context.Weights.ReadFloats(QuantizedLinears.WeightName(r));
                for (int i = 0; i < w.Length; i++) wmax[i % k] = MathF.Max(wmax[i % k], MathF.Abs(w[i]));
            }
            var s = new float[k];
            for (int j = 0; j < k; j++)
                s[j] = xmax[j] > 0 && wmax[j] > 0
                    ? (float)Math.Max(Math.Pow(xmax[j], alpha) / Math.Pow(wmax[j], 1 - alpha), 1e-5)
                    : 1f;
            ScaleFolding.DivideNorm(context, norm, s);
            foreach (var r in readers) smoothing[QuantizedLinears.WeightName(r)] = s;
        }
        return QuantizedLinears.QuantizeAll(graph, context, "w8a8", int.MaxValue, (linear, w, group) =>
        {
            if (!smoothing.TryGetValue(QuantizedLinears.WeightName(linear), out var s)) return (w, null);
            int n = (int)linear.Input(1).Type[0].Size, k = (int)linear.Input(1).Type[1].Size;
            return (AwqInt4.ScaleColumns(w, n, k, s), null);
        });
    }
}

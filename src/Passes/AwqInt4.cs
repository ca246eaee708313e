using System.Numerics.Tensors;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// Activation-aware int4 (AWQ, Lin et al. 2023): before rounding, each input channel c of a weight is scaled by
/// s_c = mean|x_c|^α (normalised so that max·min of s is 1), which protects the weights that meet large
/// activations; x is divided by s at run time (the quantized linear's input scale). α is searched on a grid of 20
/// points in [0, 1) per linear, keeping the one whose int4 weight gives the smallest squared output error on the
/// calibration activations; α = 0 is round to nearest, so the search never does worse than it on those samples.
/// Not done here: the paper's weight-clipping search, and folding 1/s into the preceding op.
/// <code>
/// before: %y = linear %x, %w
/// after:  %y = quantized_linear %x, %q, %s, %z, %inv {scheme="int4", group_size=64, zeros=true, input_scale=true}
/// </code>
/// </summary>
public sealed class AwqInt4(QuantizationContext context) : IPass
{
    public const int GridPoints = 20;

    public string Name => "awq-int4";

    public string Description => "activation-aware int4: per-input-channel scales searched on calibration activations";

    public bool Run(Graph graph)
    {
        var stats = context.RequireStats(Name);
        return QuantizedLinears.QuantizeAll(graph, context, "int4", QuantizeInt4.DefaultGroupSize, (linear, w, group) =>
        {
            int n = (int)linear.Input(1).Type[0].Size, k = (int)linear.Input(1).Type[1].Size;
            var s = Search(w, n, k, group, stats.For(QuantizedLinears.WeightName(linear), Name));
            return (ScaleColumns(w, n, k, s), s.Select(v => 1f / v).ToArray());
        });
    }

    /// <summary>The per-input-channel scales with the smallest output error over the grid of exponents.</summary>
    public static float[] Search(float[] w, int n, int k, int group, ChannelStats stats)
    {
        if (stats.Samples.Count == 0) throw new McException("awq-int4: the calibration gave no activation samples");
        var mean = stats.MeanAbs();
        var best = Enumerable.Repeat(1f, k).ToArray();
        double bestLoss = double.PositiveInfinity;
        for (int i = 0; i < GridPoints; i++)
        {
            double alpha = (double)i / GridPoints;
            var s = new float[k];
            for (int c = 0; c < k; c++) s[c] = (float)Math.Pow(Math.Max(mean[c], 1e-4), alpha);
            float norm = MathF.Sqrt(TensorPrimitives.Max(s) * TensorPrimitives.Min(s));
            TensorPrimitives.Divide(s, norm, s);
            double loss = OutputError(w, n, k, group, s, stats.Samples);
            if (loss < bestLoss)
            {
                bestLoss = loss;
                best = s;
            }
        }
        return best;
    }

    /// <summary>Σ over samples and outputs of (x·(Q(W·s)/s)ᵀ − x·Wᵀ)².</summary>
    private static double OutputError(float[] w, int n, int k, int group, float[] s, List<float[]> samples)
    {
        var partial = new double[n];
        Parallel.For(0, n, row =>
        {
            var scaled = new float[k];
            var delta = new float[k];
            TensorPrimitives.Multiply(w.AsSpan(row * k, k), s, scaled);
            QuantizedLinears.FakeQuantInt4(scaled, group, delta);
            TensorPrimitives.Divide(delta, s, delta);
            TensorPrimitives.Subtract(delta, w.AsSpan(row * k, k), delta);
            double sum = 0;
            foreach (var x in samples)
            {
                double d = TensorPrimitives.Dot(x, delta);
                sum += d * d;
            }
            partial[row] = sum;
        });
        return partial.Sum();
    }

    internal static float[] ScaleColumns(float[] w, int n, int k, float[] s)
    {
        var result = new float[w.Length];
        for (int row = 0; row < n; row++) TensorPrimitives.Multiply(w.AsSpan(row * k, k), s, result.AsSpan(row * k, k));
        return result;
    }
}

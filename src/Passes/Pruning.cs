using System.Globalization;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>A pruning request: <c>magnitude:0.5</c>, <c>wanda:0.5</c> (unstructured) or <c>wanda:2:4</c> (N of every M kept).</summary>
public sealed record PruningSpec(string Method, double Sparsity, int KeepN, int OfM)
{
    public bool IsStructured => OfM > 0;

    public static PruningSpec Parse(string text)
    {
        var parts = text.Split(':');
        string method = parts[0];
        if (method is not ("magnitude" or "wanda")) throw new McException($"--prune {text}: the method is magnitude or wanda (magnitude:0.5, wanda:0.5, wanda:2:4)");
        if (parts.Length == 2 && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var sparsity) && sparsity is >= 0 and < 1)
            return new PruningSpec(method, sparsity, 0, 0);
        if (parts.Length == 3 && int.TryParse(parts[1], out var n) && int.TryParse(parts[2], out var m) && n > 0 && m > n)
            return new PruningSpec(method, 1 - (double)n / m, n, m);
        throw new McException($"--prune {text}: expected {method}:SPARSITY with 0 <= SPARSITY < 1, or {method}:N:M with 0 < N < M");
    }

    public override string ToString() => IsStructured ? $"{Method}:{KeepN}:{OfM}" : $"{Method}:{Sparsity.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// The pruning passes' shared loop: every linear but the LM head (a linear whose result is a graph output; the Wanda
/// paper keeps it dense too), each row of the weight pruned on its own: the lowest-scoring weights become zero,
/// a fraction of the row (unstructured) or M − N of every M consecutive ones (N:M).
/// The weights are rewritten in place (same names); the graph does not change.
/// </summary>
internal static class Pruning
{
    public static bool PruneAll(Graph graph, QuantizationContext context, PruningSpec spec, Func<Node, float[], int, int, float[]> score)
    {
        var outputs = graph.Outputs.Select(o => o.Value).ToHashSet();
        var done = new HashSet<string>(StringComparer.Ordinal);
        foreach (var linear in QuantizedLinears.Candidates(graph))
        {
            var name = QuantizedLinears.WeightName(linear);
            if (outputs.Contains(linear) || !done.Add(name)) continue;
            int n = (int)linear.Input(1).Type[0].Size, k = (int)linear.Input(1).Type[1].Size;
            if (spec.IsStructured && k % spec.OfM != 0)
                throw new McException($"--prune {spec}: the input width {k} of '{name}' is not a multiple of {spec.OfM}");
            var w = (float[])context.Weights.ReadFloats(name).Clone();
            var scores = score(linear, w, n, k);
            for (int row = 0; row < n; row++)
            {
                if (spec.IsStructured)
                    for (int at = 0; at < k; at += spec.OfM) ZeroLowest(w, scores, row * k + at, spec.OfM, spec.OfM - spec.KeepN);
                else
                    ZeroLowest(w, scores, row * k, k, (int)Math.Floor(spec.Sparsity * k));
            }
            context.Weights.WriteFloats(name, [n, k], w);
        }
        return done.Count > 0;
    }

    /// <summary>Zeroes the <paramref name="count"/> weights of w[start, start+length) with the lowest scores (ties: the earlier one).</summary>
    private static void ZeroLowest(float[] w, float[] scores, int start, int length, int count)
    {
        if (count <= 0) return;
        var order = Enumerable.Range(start, length).OrderBy(i => scores[i]).ThenBy(i => i).Take(count);
        foreach (var i in order) w[i] = 0;
    }
}

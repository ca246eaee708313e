using System.Numerics.Tensors;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Passes;

/// <summary>
/// Activation-aware int4 (AWQ, Lin et al., MLSys 2024; llm-awq's auto_scale and auto_clip). The linears that read
/// one value form a group (q/k/v on the attention norm, gate/up on the MLP norm, the output projection alone, the
/// down projection alone, the LM head). For each group, input channel c of every weight is multiplied by
/// s_c = mean|x_c|^α (clamped at 1e-4, normalised by √(max s · min s)) before rounding, which protects the weights
/// that meet large activations; α is chosen on a grid of 20 points in [0, 1) as the one whose quantized weights give
/// the smallest squared error of the group's outputs over all calibration rows (‖XΔᵀ‖² through the Gram matrix XᵀX;
/// α = 0 is round to nearest). Then, per group of 64 weights of a row, the clipping range max|w|·(1 − i/20),
/// i &lt; 10, with the smallest output error is kept (not for q and k, whose error the softmax reshapes, as llm-awq).
/// x/s is folded into the op producing x where it can be (the norm's weight, the up projection's rows, see
/// <see cref="ScaleFolding"/>); elsewhere the quantized linear multiplies x by 1/s first.
/// <code>
/// before: %h = rms_norm %x, %g; %q = linear %h, %wq
/// after:  %h = rms_norm %x, %g'; %q = quantized_linear %h, %c, %s, %z {scheme="int4", group_size=64, zeros=true}
///         (g' = g/s, codes of clip(wq·diag(s))); unfoldable: quantized_linear %x, %c, %s, %z, %inv {input_scale=true}
/// </code>
/// </summary>
public sealed class AwqInt4(QuantizationContext context) : IPass
{
    public const int GridPoints = 20;

    /// <summary>llm-awq's max_shrink: clipping ranges down to half of max|w| are tried.</summary>
    public const double MaxShrink = 0.5;

    public string Name => "awq-int4";

    public string Description => "activation-aware int4: per-input-channel scales and clipping searched on calibration activations";

    public bool Run(Graph graph)
    {
        var stats = context.RequireStats(Name);
        var folding = new ScaleFolding(graph);
        var candidates = QuantizedLinears.Candidates(graph);
        // A weight read by two linears gets one quantization, so it cannot take two groups' scales: left unscaled.
        var shared = candidates.GroupBy(QuantizedLinears.WeightName, StringComparer.Ordinal).Where(g => g.Count() > 1)
            .Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        var columnScale = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var inputScale = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var rowDivisor = new Dictionary<string, (float[] S, Node Linear)>(StringComparer.Ordinal);
        foreach (var group in candidates.GroupBy(l => l.Input(0)).ToList())
        {
            var linears = group.ToList();
            if (linears.Any(l => shared.Contains(QuantizedLinears.WeightName(l)))) continue;
            var input = group.Key;
            var channel = stats.For(QuantizedLinears.WeightName(linears[0]), Name);
            int groupSize = QuantizedLinears.GroupFor(linears[0], context.GroupSize, QuantizeInt4.DefaultGroupSize, "int4");
            var weights = linears.Select(l => (context.Weights.ReadFloats(QuantizedLinears.WeightName(l)), (int)l.Input(1).Type[0].Size)).ToList();
            var s = SearchScales(weights, channel, groupSize);
            if (s.All(v => v == 1f)) continue;
            foreach (var l in linears) columnScale[QuantizedLinears.WeightName(l)] = s;

            if (folding.NormReaders(input) is { } readers && readers.Count == linears.Count)
                ScaleFolding.DivideNorm(context, input, s);
            else if (folding.ProducingLinear(input, linears) is { } producer)
                rowDivisor[QuantizedLinears.WeightName(producer)] = (s, producer);
            else
            {
                var inverse = s.Select(v => 1f / v).ToArray();
                foreach (var l in linears) inputScale[QuantizedLinears.WeightName(l)] = inverse;
            }
        }

        return QuantizedLinears.QuantizeAll(graph, context, "int4", QuantizeInt4.DefaultGroupSize, (linear, w, group) =>
        {
            var name = QuantizedLinears.WeightName(linear);
            int n = (int)linear.Input(1).Type[0].Size, k = (int)linear.Input(1).Type[1].Size;
            var s = columnScale.GetValueOrDefault(name);
            var scaled = s is null ? (float[])w.Clone() : ScaleColumns(w, n, k, s);
            if (!shared.Contains(name) && !FeedsQueryOrKey(linear, folding.Users))
                Clip(scaled, n, k, group, stats.For(name, Name), s);
            if (rowDivisor.TryGetValue(name, out var rows))
            {
                for (int r = 0; r < n; r++) TensorPrimitives.Divide(scaled.AsSpan(r * k, k), rows.S[r], scaled.AsSpan(r * k, k));
                if (rows.Linear.Inputs.Length > 2)
                {
                    var biasName = rows.Linear.Input(2).Attrs.Str("name");
                    var bias = (float[])context.Weights.ReadFloats(biasName).Clone();
                    TensorPrimitives.Divide(bias, rows.S, bias);
                    context.Weights.WriteFloats(biasName, [n], bias);
                }
            }
            return (scaled, inputScale.GetValueOrDefault(name));
        });
    }

    /// <summary>
    /// The per-input-channel scales, shared by the linears of one group (each (W [N, K], N)), whose int4 weights give
    /// the smallest Σ over all calibration rows and all the group's outputs of the squared output error.
    /// </summary>
    public static float[] SearchScales(IReadOnlyList<(float[] W, int N)> linears, ChannelStats stats, int group)
    {
        int k = stats.Channels;
        var gram = PackGram(stats, null);
        var mean = stats.MeanAbs();
        var best = Enumerable.Repeat(1f, k).ToArray();
        double bestLoss = double.PositiveInfinity;
        for (int i = 0; i < GridPoints; i++)
        {
            double alpha = (double)i / GridPoints;
            var s = new float[k];
            for (int c = 0; c < k; c++) s[c] = (float)Math.Max(Math.Pow(mean[c], alpha), 1e-4);
            float norm = MathF.Sqrt(TensorPrimitives.Max(s) * TensorPrimitives.Min(s));
            TensorPrimitives.Divide(s, norm, s);
            double loss = linears.Sum(l => OutputError(l.W, l.N, k, group, s, gram));
            if (loss < bestLoss)
            {
                bestLoss = loss;
                best = s;
            }
        }
        return best;
    }

    /// <summary>XᵀX as a packed GEMM weight (symmetric, so D·G = D·Gᵀ); with <paramref name="s"/>, of X·diag(1/s).</summary>
    private static PackedWeight PackGram(ChannelStats stats, float[]? s)
    {
        var g = RequireGram(stats);
        int k = stats.Channels;
        var f = new float[g.Length];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) f[i * k + j] = (float)(s is null ? g[i * k + j] : g[i * k + j] / ((double)s[i] * s[j]));
        return PackedWeight.Pack(f, k, k);
    }

    private static double[] RequireGram(ChannelStats stats) =>
        stats.Gram ?? throw new McException("awq-int4: the calibration did not gather XᵀX (calibrate with gram: true)");

    /// <summary>
    /// Σ over all calibration rows x and outputs n of (x·Δₙᵀ)² = Σₙ Δₙ·G·Δₙᵀ, with Δ = Q(W·diag(s))·diag(1/s) − W.
    /// </summary>
    public static double OutputError(float[] w, int n, int k, int group, float[] s, PackedWeight gram)
    {
        var delta = new float[(long)n * k];
        Parallel.For(0, n, row =>
        {
            var d = delta.AsSpan(row * k, k);
            TensorPrimitives.Multiply(w.AsSpan(row * k, k), s, d);
            QuantizedLinears.FakeQuantInt4(d, group, d);
            TensorPrimitives.Divide(d, s, d);
            TensorPrimitives.Subtract(d, w.AsSpan(row * k, k), d);
        });
        var product = new float[delta.Length];
        Gemm.Linear(delta, n, gram, product);
        double sum = 0;
        for (long i = 0; i < delta.Length; i++) sum += (double)delta[i] * product[i];
        return sum;
    }

    /// <summary>
    /// AWQ's clipping search on a (scaled) weight, in place: for every group of every row, the range [−m, m] with
    /// m = max|w|·(1 − i/20), i = 0 … 9, whose int4 codes give the smallest output error of that group's partial dot
    /// product over all calibration rows (the diagonal block of XᵀX, of x/s when the columns were scaled by s).
    /// </summary>
    public static void Clip(float[] w, int n, int k, int group, ChannelStats stats, float[]? s)
    {
        var g = RequireGram(stats);
        int groups = k / group, steps = (int)(MaxShrink * GridPoints);
        // The diagonal blocks of the Gram matrix of x/s, one [group, group] per column group.
        var blocks = new double[groups][];
        for (int b = 0; b < groups; b++)
        {
            var block = blocks[b] = new double[group * group];
            for (int i = 0; i < group; i++)
                for (int j = 0; j < group; j++)
                {
                    int ci = b * group + i, cj = b * group + j;
                    block[i * group + j] = g[ci * k + cj] / (s is null ? 1.0 : (double)s[ci] * s[cj]);
                }
        }
        Parallel.For(0, n, row =>
        {
            var clipped = new float[group];
            var delta = new double[group];
            for (int b = 0; b < groups; b++)
            {
                var original = w.AsSpan(row * k + b * group, group);
                float max = TensorPrimitives.MaxMagnitude(original);
                max = MathF.Abs(max);
                if (max == 0) continue;
                double bestError = double.PositiveInfinity;
                float bestRange = max;
                for (int i = 0; i < steps; i++)
                {
                    float range = max * (1 - (float)i / GridPoints);
                    for (int j = 0; j < group; j++) clipped[j] = Math.Clamp(original[j], -range, range);
                    QuantizedLinears.FakeQuantInt4(clipped, group, clipped);
                    for (int j = 0; j < group; j++) delta[j] = clipped[j] - original[j];
                    double error = Quadratic(delta, blocks[b], group);
                    if (error < bestError)
                    {
                        bestError = error;
                        bestRange = range;
                    }
                }
                if (bestRange < max)
                    for (int j = 0; j < group; j++) original[j] = Math.Clamp(original[j], -bestRange, bestRange);
            }
        });
    }

    private static double Quadratic(double[] d, double[] m, int size)
    {
        double sum = 0;
        for (int i = 0; i < size; i++)
        {
            if (d[i] == 0) continue;
            double row = 0;
            for (int j = 0; j < size; j++) row += m[i * size + j] * d[j];
            sum += d[i] * row;
        }
        return sum;
    }

    /// <summary>
    /// Whether the linear's output reaches the query or key operand of an attention (through reshapes, transposes,
    /// rotary embedding, bias adds or a split): llm-awq does not clip those.
    /// </summary>
    internal static bool FeedsQueryOrKey(Node linear, IReadOnlyDictionary<Node, List<Node>> users)
    {
        var frontier = new List<Node> { linear };
        for (int depth = 0; depth < 8 && frontier.Count > 0; depth++)
        {
            var next = new List<Node>();
            foreach (var node in frontier)
                foreach (var user in users[node])
                {
                    if (user.Op is OpKind.Attention or OpKind.PagedAttention)
                    {
                        if (user.Input(0) == node || user.Input(1) == node) return true;
                        continue;
                    }
                    if (user.Op is OpKind.Linear or OpKind.QuantizedLinear or OpKind.RmsNorm or OpKind.LayerNorm or OpKind.MatMul) continue;
                    next.Add(user);
                }
            frontier = next;
        }
        return false;
    }

    internal static float[] ScaleColumns(float[] w, int n, int k, float[] s)
    {
        var result = new float[w.Length];
        for (int row = 0; row < n; row++) TensorPrimitives.Multiply(w.AsSpan(row * k, k), s, result.AsSpan(row * k, k));
        return result;
    }
}

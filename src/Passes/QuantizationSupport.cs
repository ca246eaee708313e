using System.Numerics.Tensors;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// The checkpoint as the quantization and pruning passes see it: reads the original tensors and records the ones
/// they write (new codes, scales and zero points; pruned or smoothed float tensors replacing an original by name).
/// </summary>
public sealed class WeightEdits(Func<string, float[]> readOriginal)
{
    private readonly Dictionary<string, TensorData> _written = new(StringComparer.Ordinal);
    private readonly Dictionary<string, float[]> _floats = new(StringComparer.Ordinal);

    /// <summary>Tensors written by the passes, by name (an original's name means it was replaced).</summary>
    public IReadOnlyDictionary<string, TensorData> Written => _written;

    /// <summary>A float tensor: the latest written version, else the original.</summary>
    public float[] ReadFloats(string name) => _floats.TryGetValue(name, out var f) ? f : readOriginal(name);

    public void WriteFloats(string name, long[] shape, float[] values)
    {
        _floats[name] = values;
        _written[name] = TensorData.FromFloat32(name, shape, values);
    }

    public void WriteBytes(string name, DType dtype, long[] shape, byte[] values) => _written[name] = new TensorData(name, dtype, shape, values);
}

/// <summary>Per-input-channel statistics of the activations entering one linear, gathered over calibration text.</summary>
public sealed class ChannelStats(int channels)
{
    public int Channels { get; } = channels;
    public long Rows { get; private set; }
    public float[] MaxAbs { get; } = new float[channels];
    public double[] SumAbs { get; } = new double[channels];
    public double[] SumSquares { get; } = new double[channels];

    /// <summary>
    /// XᵀX [K, K] over every calibration row, when asked for (AWQ): the output error of any weight change Δ on all
    /// the calibration rows is ‖XΔᵀ‖² = Σₙ Δₙ·G·Δₙᵀ, so the search needs no stored activations.
    /// </summary>
    public double[]? Gram { get; private set; }

    /// <summary>Adds a block of rows' XᵀX (the calibration computes it with the GEMM).</summary>
    public void AddGram(ReadOnlySpan<float> gram)
    {
        if (gram.Length != Channels * Channels) throw new ArgumentException($"Gram block has {gram.Length} elements, expected {Channels}²");
        Gram ??= new double[Channels * Channels];
        for (int i = 0; i < gram.Length; i++) Gram[i] += gram[i];
    }

    public void Add(ReadOnlySpan<float> row)
    {
        for (int c = 0; c < Channels; c++)
        {
            float v = row[c], a = MathF.Abs(v);
            if (a > MaxAbs[c]) MaxAbs[c] = a;
            SumAbs[c] += a;
            SumSquares[c] += (double)v * v;
        }
        Rows++;
    }

    /// <summary>‖X_c‖₂ of every channel (Wanda).</summary>
    public double[] Norms() => SumSquares.Select(Math.Sqrt).ToArray();

    public double[] MeanAbs() => SumAbs.Select(s => Rows > 0 ? s / Rows : 0).ToArray();
}

/// <summary>Calibration statistics keyed by the checkpoint name of the weight of the linear whose input they describe.</summary>
public sealed class CalibrationStats
{
    public Dictionary<string, ChannelStats> ByWeight { get; } = new(StringComparer.Ordinal);

    public ChannelStats For(string weight, string pass) =>
        ByWeight.TryGetValue(weight, out var s) ? s : throw new McException($"{pass}: no calibration statistics for the linear of '{weight}' (give --calibration)");
}

/// <summary>What the quantization and pruning passes share: the tensors, the statistics and the options.</summary>
/// <param name="GroupSize">weights per scale; null: a whole input row (per output channel) for int8/w8a8, 64 for int4</param>
public sealed record QuantizationContext(WeightEdits Weights, CalibrationStats? Stats = null, int? GroupSize = null, double SmoothAlpha = 0.5)
{
    /// <summary>One entry per quantized weight, in the order written: what the manifest records.</summary>
    public List<QuantizedLinearEntry> Entries { get; } = new();

    public CalibrationStats RequireStats(string pass) =>
        Stats ?? throw new McException($"{pass} needs calibration data (--calibration data.txt or tokens.safetensors)");
}

/// <summary>
/// One linear's compressed weight: the original weight's checkpoint name and the tensors replacing it. The same record
/// rewrites a freshly elaborated graph when a quantized folder is loaded, so no number is recomputed.
/// </summary>
public sealed record QuantizedLinearEntry(string Weight, string Scheme, int GroupSize, string Codes, string Scales, string? Zeros, string? InputScale);

/// <summary>The linears the passes rewrite, and the rewrite itself.</summary>
public static class QuantizedLinears
{
    /// <summary>Plain linears whose weight is a float checkpoint tensor [N, K] (the weights known before the model runs).</summary>
    public static List<Node> Candidates(Graph graph) =>
        graph.Nodes.Where(n => n.Op == OpKind.Linear && n.Input(1).Op == OpKind.Weight && n.Input(1).Type.DType.IsFloat()
            && n.Input(1).Type.Rank == 2 && n.Input(1).Type.IsFullyKnown && n.Type.DType.IsFloat()).ToList();

    public static string WeightName(Node linear) => linear.Input(1).Attrs.Str("name");

    /// <summary>The group size for a scheme, checked against every candidate's input width (a clear error otherwise).</summary>
    public static int GroupFor(Node linear, int? requested, int fallback, string scheme)
    {
        int k = (int)linear.Input(1).Type[1].Size;
        int g = requested ?? Math.Min(fallback, k);
        if (g <= 0 || k % g != 0)
            throw new McException($"--group-size {g} does not divide the input width {k} of linear '{linear.Name ?? WeightName(linear)}' (weight '{WeightName(linear)}')");
        if (scheme == "int4" && g % 32 != 0)
            throw new McException($"--group-size {g}: int4 packs codes in blocks of 32, so the group size must be a multiple of 32");
        return g;
    }

    /// <summary>
    /// The common body of the quantization passes: every candidate's weight (each checkpoint name once) through
    /// <paramref name="prepare"/> (identity for round-to-nearest; AWQ's and SmoothQuant's scaling) into
    /// <see cref="Store"/>, then the rewrite.
    /// </summary>
    public static bool QuantizeAll(Graph graph, QuantizationContext context, string scheme, int fallbackGroup,
        Func<Node, float[], int, (float[] Weight, float[]? InputScale)>? prepare = null)
    {
        var done = new HashSet<string>(StringComparer.Ordinal);
        foreach (var linear in Candidates(graph))
        {
            var name = WeightName(linear);
            if (!done.Add(name)) continue;
            int n = (int)linear.Input(1).Type[0].Size, k = (int)linear.Input(1).Type[1].Size;
            int group = GroupFor(linear, context.GroupSize, fallbackGroup, scheme);
            var w = context.Weights.ReadFloats(name);
            if (w.Length != (long)n * k) throw new McException($"weight '{name}' has {w.Length} elements but the model declares [{n}, {k}]");
            var (prepared, inputScale) = prepare is null ? (w, null) : prepare(linear, w, group);
            Store(context, name, scheme, prepared, n, k, group, inputScale);
        }
        return Rewrite(graph, context.Entries);
    }

    /// <summary>Replaces every linear reading one of the entries' weights by a quantized linear on the entry's tensors.</summary>
    public static bool Rewrite(Graph graph, IEnumerable<QuantizedLinearEntry> entries)
    {
        var byWeight = entries.ToDictionary(e => e.Weight, StringComparer.Ordinal);
        bool changed = false;
        foreach (var linear in Candidates(graph))
        {
            if (!byWeight.TryGetValue(WeightName(linear), out var e)) continue;
            long n = linear.Input(1).Type[0].Size, k = linear.Input(1).Type[1].Size;
            if (e.GroupSize <= 0 || k % e.GroupSize != 0)
                throw new McException($"quantized weight '{e.Weight}': group size {e.GroupSize} does not divide its input width {k}");
            var b = new GraphBuilder(graph) { CurrentName = linear.Name, CurrentSpan = linear.Span };
            var (codeType, groups) = e.Scheme switch
            {
                "int4" => (new TensorType(DType.U8, n, k / 2), new TensorType(DType.F32, n, k / e.GroupSize)),
                "sparse24" => (new TensorType(DType.F32, n, k / 2), new TensorType(DType.U8, n, k / 8)),
                _ => (new TensorType(DType.I8, n, k), new TensorType(DType.F32, n, k / e.GroupSize)),
            };
            var inputs = new List<Node> { linear.Input(0), b.Weight(e.Codes, codeType), b.Weight(e.Scales, groups) };
            if (e.Zeros is not null) inputs.Add(b.Weight(e.Zeros, groups.WithDType(DType.U8)));
            if (e.InputScale is not null) inputs.Add(b.Weight(e.InputScale, new TensorType(DType.F32, k)));
            bool bias = linear.Inputs.Length > 2;
            if (bias) inputs.Add(linear.Input(2));
            var attrs = Attrs.Empty.With("scheme", e.Scheme).With("group_size", (long)e.GroupSize).With("zeros", e.Zeros is not null)
                .With("input_scale", e.InputScale is not null).With("bias", bias);
            Node q;
            try
            {
                q = b.Add(OpKind.QuantizedLinear, inputs, attrs);
            }
            catch (ShapeError error)
            {
                throw new McException($"quantized weight '{e.Weight}': {error.Message}");
            }
            graph.ReplaceAllUses(linear, q);
            changed = true;
        }
        if (changed)
        {
            new DeadCodeElimination().Run(graph);
            graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        }
        return changed;
    }

    /// <summary>
    /// Quantizes one weight [N, K] (already scaled by AWQ/SmoothQuant where they apply) and records it; the names of the
    /// new tensors extend the original's (<c>.codes</c>, <c>.scales</c>, <c>.zeros</c>, <c>.input_scale</c>).
    /// </summary>
    public static QuantizedLinearEntry Store(QuantizationContext context, string weight, string scheme, float[] w, int n, int k, int group, float[]? inputScale = null)
    {
        var e = scheme == "sparse24"
            ? new QuantizedLinearEntry(weight, scheme, 4, weight + ".values", weight + ".positions", null, null)
            : new QuantizedLinearEntry(weight, scheme, group, weight + ".codes", weight + ".scales",
            scheme == "int4" ? weight + ".zeros" : null, inputScale is null ? null : weight + ".input_scale");
        var edits = context.Weights;
        if (scheme == "sparse24")
        {
            var (values, positions) = Sparse24(w, n, k, weight);
            edits.WriteFloats(e.Codes, [n, k / 2], values);
            edits.WriteBytes(e.Scales, DType.U8, [n, k / 8], positions);
        }
        else if (scheme == "int4")
        {
            var (codes, scales, zeros) = Int4(w, n, k, group);
            edits.WriteBytes(e.Codes, DType.U8, [n, k / 2], codes);
            edits.WriteFloats(e.Scales, [n, k / group], scales);
            edits.WriteBytes(e.Zeros!, DType.U8, [n, k / group], zeros);
        }
        else
        {
            var (codes, scales) = Int8(w, n, k, group);
            edits.WriteBytes(e.Codes, DType.I8, [n, k], codes);
            edits.WriteFloats(e.Scales, [n, k / group], scales);
        }
        if (inputScale is not null) edits.WriteFloats(e.InputScale!, [k], inputScale);
        context.Entries.RemoveAll(x => x.Weight == weight);
        context.Entries.Add(e);
        return e;
    }

    /// <summary>
    /// A weight with at most 2 non-zeros in every 4 consecutive weights of a row, compressed: the 2 kept values of each
    /// group [N, K/2] and their positions [N, K/8], one nibble a group (low nibble: the even group), p0 in bits 0–1 and
    /// p1 &gt; p0 in bits 2–3 (a group with fewer non-zeros keeps zeros at the first free positions).
    /// </summary>
    public static (float[] Values, byte[] Positions) Sparse24(float[] w, int n, int k, string name)
    {
        if (k % 8 != 0) throw new McException($"weight '{name}': the compressed 2:4 form needs an input width that is a multiple of 8, got {k}");
        var values = new float[n * k / 2];
        var positions = new byte[n * k / 8];
        Span<int> kept = stackalloc int[2];
        for (int r = 0; r < n; r++)
            for (int g = 0; g < k / 4; g++)
            {
                int at = r * k + 4 * g, count = 0;
                for (int i = 0; i < 4; i++)
                    if (w[at + i] != 0)
                    {
                        if (count == 2) throw new McException($"weight '{name}': row {r}, columns {4 * g}..{4 * g + 3} have more than 2 non-zeros (not 2:4 sparse)");
                        kept[count++] = i;
                    }
                // Pad with the first free positions so that p0 < p1 always holds.
                for (int i = 0; count < 2; i++)
                    if (count == 0 || kept[0] != i) kept[count++] = i;
                if (kept[0] > kept[1]) (kept[0], kept[1]) = (kept[1], kept[0]);
                values[(r * k + 4 * g) / 2] = w[at + kept[0]];
                values[(r * k + 4 * g) / 2 + 1] = w[at + kept[1]];
                positions[(r * k + 4 * g) / 8] |= (byte)((kept[0] | kept[1] << 2) << (g % 2 * 4));
            }
        return (values, positions);
    }

    /// <summary>Symmetric round-to-nearest int8 per group: s = max|w|/127, q = round(w/s).</summary>
    public static (byte[] Codes, float[] Scales) Int8(float[] w, int n, int k, int group)
    {
        var codes = new byte[n * k];
        var scales = new float[n * (k / group)];
        for (int r = 0; r < n; r++)
            for (int g = 0; g < k / group; g++)
            {
                int at = r * k + g * group;
                float max = TensorPrimitives.MaxMagnitude(w.AsSpan(at, group));
                float s = MathF.Abs(max) > 0 ? MathF.Abs(max) / 127f : 1f;
                scales[r * (k / group) + g] = s;
                for (int i = 0; i < group; i++)
                    codes[at + i] = unchecked((byte)(sbyte)Math.Clamp((int)MathF.Round(w[at + i] / s), -127, 127));
            }
        return (codes, scales);
    }

    /// <summary>
    /// Asymmetric round-to-nearest 4-bit per group: s = (max − min)/15, z = round(−min/s), q = clamp(round(w/s) + z, 0, 15),
    /// packed as <see cref="Runtime.Kernels.QuantizedWeight.Int4Code"/> reads them.
    /// </summary>
    public static (byte[] Codes, float[] Scales, byte[] Zeros) Int4(float[] w, int n, int k, int group)
    {
        var codes = new byte[n * k / 2];
        int groups = k / group;
        var scales = new float[n * groups];
        var zeros = new byte[n * groups];
        for (int r = 0; r < n; r++)
            for (int g = 0; g < groups; g++)
            {
                int at = r * k + g * group;
                var (s, z) = Int4Range(w.AsSpan(at, group));
                scales[r * groups + g] = s;
                zeros[r * groups + g] = (byte)z;
                for (int i = 0; i < group; i++)
                {
                    int col = g * group + i, q = Math.Clamp((int)MathF.Round(w[at + i] / s) + z, 0, 15);
                    int block = col / 32, j = col % 32;
                    int b = r * (k / 2) + block * 16 + (j & 15);
                    codes[b] |= (byte)(j < 16 ? q : q << 4);
                }
            }
        return (codes, scales, zeros);
    }

    /// <summary>The scale and zero point of one int4 group (a constant group is represented exactly).</summary>
    public static (float Scale, int Zero) Int4Range(ReadOnlySpan<float> group)
    {
        float min = TensorPrimitives.Min(group), max = TensorPrimitives.Max(group);
        if (max - min <= 0) return min == 0 ? (1f, 0) : min > 0 ? (min, 0) : (-min, 1);
        float s = (max - min) / 15f;
        return (s, Math.Clamp((int)MathF.Round(-min / s), 0, 15));
    }

    /// <summary>What the int4 codes of <paramref name="w"/> dequantize to (AWQ's search measures this error).</summary>
    public static void FakeQuantInt4(ReadOnlySpan<float> w, int group, Span<float> result)
    {
        for (int g = 0; g < w.Length; g += group)
        {
            var span = w.Slice(g, group);
            var (s, z) = Int4Range(span);
            for (int i = 0; i < group; i++) result[g + i] = s * (Math.Clamp((int)MathF.Round(span[i] / s) + z, 0, 15) - z);
        }
    }
}

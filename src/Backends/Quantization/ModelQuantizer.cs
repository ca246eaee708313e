using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Quantization;

/// <summary>What <c>--quantize</c>, <c>--group-size</c>, <c>--smooth-alpha</c> and <c>--prune</c> ask for (the same on mc compile and mc quantize).</summary>
public sealed record QuantizeRequest(string? Scheme, int? GroupSize = null, double SmoothAlpha = 0.5, PruningSpec? Prune = null)
{
    public static readonly string[] Schemes = ["int8", "int4", "awq-int4", "w8a8", "smoothquant"];

    public bool NeedsCalibration => Scheme is "awq-int4" or "smoothquant" || Prune?.Method == "wanda";

    /// <summary>AWQ measures output errors on all calibration rows through XᵀX.</summary>
    public bool NeedsGram => Scheme == "awq-int4";

    public void Validate()
    {
        if (Scheme is null && Prune is null) throw new McException("nothing to do: give --quantize and/or --prune");
        if (Scheme is not null && !Schemes.Contains(Scheme)) throw new McException($"--quantize {Scheme}: expected one of {string.Join(", ", Schemes)}");
        if (GroupSize is { } g && g <= 0) throw new McException($"--group-size {g}: must be positive");
        if (SmoothAlpha is < 0 or > 1) throw new McException($"--smooth-alpha {SmoothAlpha}: must be in [0, 1]");
    }
}

/// <summary>Pruning first (on the original weights), then the quantization scheme's pass; the passes' results are in the context.</summary>
public static class ModelQuantizer
{
    public static QuantizationContext Apply(Graph graph, QuantizeRequest request, Func<string, float[]> weights, CalibrationStats? stats)
    {
        request.Validate();
        var context = new QuantizationContext(new WeightEdits(weights), stats, request.GroupSize, request.SmoothAlpha);
        var passes = new List<IPass>();
        if (request.Prune is { } prune)
        {
            passes.Add(prune.Method == "wanda" ? new PruneWanda(context, prune) : new PruneMagnitude(context, prune));
            // 2:4 without a scheme is stored compressed; with one, the scheme's codes hold the zeros.
            if (prune is { KeepN: 2, OfM: 4 } && request.Scheme is null) passes.Add(new CompressSparse24(context));
        }
        if (request.Scheme is { } scheme)
            passes.Add(scheme switch
            {
                "int8" => new QuantizeInt8(context),
                "int4" => new QuantizeInt4(context),
                "awq-int4" => new AwqInt4(context),
                "w8a8" => new QuantizeW8A8(context),
                _ => new SmoothQuant(context),
            });
        foreach (var pass in passes)
        {
            pass.Run(graph);
            Verifier.Verify(graph, pass.Name);
        }
        return context;
    }
}

/// <summary>Readers of a checkpoint with a quantization context's tensors laid over it (quantizing in memory, without a folder).</summary>
public static class QuantizedWeights
{
    /// <summary>Every tensor as floats (codes are small integers, exact in float32), for a compiled model's LoadWeights.</summary>
    public static Func<string, float[]> Floats(WeightEdits edits, Func<string, float[]> original) => name =>
        edits.Written.TryGetValue(name, out var t) ? ToDoubles(t).Select(v => (float)v).ToArray() : original(name);

    /// <summary>The interpreter's loader: written tensors as floats or integers by their dtype, the rest from <paramref name="original"/>.</summary>
    public static Func<string, IR.TensorType, Reference.RefTensor> Interpreter(WeightEdits edits, Func<string, IR.TensorType, Reference.RefTensor> original) => (name, type) =>
    {
        if (!edits.Written.TryGetValue(name, out var t)) return original(name, type);
        var values = ToDoubles(t);
        return t.DType.IsFloat() ? Reference.RefTensor.FromFloats(t.Shape, values, type.DType)
            : Reference.RefTensor.FromInts(t.Shape, values.Select(v => (long)v).ToArray(), type.DType);
    };

    private static double[] ToDoubles(TensorData t) => t.DType switch
    {
        DType.F32 => Enumerable.Range(0, t.Data.Length / 4).Select(i => (double)BitConverter.ToSingle(t.Data, 4 * i)).ToArray(),
        DType.I8 => t.Data.Select(b => (double)(sbyte)b).ToArray(),
        DType.U8 => t.Data.Select(b => (double)b).ToArray(),
        _ => throw new InvalidOperationException($"quantization wrote {t.Name} as {t.DType}"),
    };
}

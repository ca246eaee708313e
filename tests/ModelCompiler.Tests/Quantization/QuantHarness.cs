using ModelCompiler.Backends;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Quantization;

/// <summary>An oracle model quantized in memory (calibrated on seeded random tokens through the interpreter) and run beside its fp32 self.</summary>
internal sealed class QuantHarness : IDisposable
{
    public QuantHarness(string family, string? folder = null, params string[] sets)
    {
        Folder = folder ?? OracleCheck.Folder(family);
        Sets = sets.ToDictionary(s => s.Split('=')[0], s => s.Split('=')[1]);
        Store = WeightStore.Open(Folder);
        using var reference = SafetensorsFile.Open(Path.Combine(OracleCheck.Folder(family), "reference.safetensors"));
        var info = reference.Get("input_ids");
        Ids = (info.Shape.ToArray(), reference.ReadInt64("input_ids"));
    }

    public string Folder { get; }
    public Dictionary<string, string> Sets { get; }
    public WeightStore Store { get; }
    public (long[] Shape, long[] Data) Ids { get; }

    public Graph Fresh() => HuggingFaceImport.Load(Folder, Sets).Graph;

    public long Vocab => Fresh().Nodes.First(n => n.Op == OpKind.Embedding).Input(1).Type[0].Size;

    /// <summary>Seeded random windows of token ids (never the evaluation inputs).</summary>
    public List<long[]> CalibrationWindows(int count = 4, int length = 16)
    {
        var rng = new Random(1234);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => (long)rng.Next((int)Vocab)).ToArray()).ToList();
    }

    public CalibrationStats Calibrate() => Calibration.Collect(Fresh(), Store.ReadFloat32, CalibrationWindows(), interpreter: true, gram: true);

    /// <summary>The quantized graph and its interpreter loader.</summary>
    public (Graph Graph, QuantizationContext Context, Func<string, TensorType, RefTensor> Load) Quantize(QuantizeRequest request)
    {
        var graph = Fresh();
        var context = ModelQuantizer.Apply(graph, request, Store.ReadFloat32, request.NeedsCalibration ? Calibrate() : null);
        return (graph, context, QuantizedWeights.Interpreter(context.Weights, WeightBinding.Loader(Store)));
    }

    public double[] Logits(Graph graph, Func<string, TensorType, RefTensor> load)
    {
        var feeds = new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts(Ids.Shape, Ids.Data) };
        return new RefInterpreter(graph).Run(feeds, load)["logits"].F!;
    }

    public double[] Fp32Logits() => Logits(Fresh(), WeightBinding.Loader(Store));

    /// <summary>max|Δ| / max|reference| over all logits.</summary>
    public static double RelativeError(double[] reference, double[] actual) =>
        reference.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / reference.Max(Math.Abs);

    /// <summary>Mean over positions of KL(p_reference ‖ p_actual) of the next-token distributions.</summary>
    public static double MeanKl(double[] reference, double[] actual, int vocab)
    {
        int positions = reference.Length / vocab;
        double total = 0;
        for (int p = 0; p < positions; p++)
        {
            var lp = LogSoftmax(reference.AsSpan(p * vocab, vocab));
            var lq = LogSoftmax(actual.AsSpan(p * vocab, vocab));
            for (int i = 0; i < vocab; i++) total += Math.Exp(lp[i]) * (lp[i] - lq[i]);
        }
        return total / positions;
    }

    private static double[] LogSoftmax(ReadOnlySpan<double> x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in x) sum += Math.Exp(v - max);
        double log = max + Math.Log(sum);
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++) r[i] = x[i] - log;
        return r;
    }

    public void Dispose() => Store.Dispose();
}

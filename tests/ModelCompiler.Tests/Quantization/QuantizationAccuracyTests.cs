using ModelCompiler.Backends;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;
using Xunit.Abstractions;

namespace ModelCompiler.Tests.Quantization;

/// <summary>
/// Accuracy against fp32: relative logit error and next-token KL on every decoder-only zoo model (seeded random
/// weights, group size 32), and SmoothQuant against plain W8A8 on a model with planted activation outliers.
/// </summary>
public class QuantizationAccuracyTests(ITestOutputHelper output)
{
    public static TheoryData<string> DecoderFamilies() => new(Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "oracles"))
        .Select(f => Path.GetFileName(f)!).Order()
        .Where(f =>
        {
            var g = global::ModelCompiler.Frontend.HuggingFaceImport.Load(OracleCheck.Folder(f), new Dictionary<string, string>()).Graph;
            return g.Inputs.Select(i => i.Attrs.Str("name")).SequenceEqual(["input_ids"]) && g.Outputs.Any(o => o.Key == "logits");
        }));

    /// <summary>
    /// Bounds per scheme on max|Δlogit|/max|logit|. The zoo's weights are uniform random, the hardest case for 4 bits and
    /// one without salient channels for AWQ to protect, so the int4 bounds are loose (AWQ's gain is measured on pystories);
    /// zeroing half of random weights moves the logits by about their own size, so the pruning bounds only catch a
    /// broken model (Wanda's gain over magnitude is measured on pystories).
    /// </summary>
    private static readonly (string Label, QuantizeRequest Request, double MaxRelative)[] Bounds =
    [
        ("int8", new("int8"), 0.03), ("w8a8", new("w8a8"), 0.06), ("smoothquant", new("smoothquant"), 0.06),
        ("int4", new("int4", 32), 0.6), ("awq-int4", new("awq-int4", 32), 0.6),
        ("magnitude:0.5", new(null, Prune: PruningSpec.Parse("magnitude:0.5")), 2),
        ("wanda:0.5", new(null, Prune: PruningSpec.Parse("wanda:0.5")), 2),
        ("wanda:2:4", new(null, Prune: PruningSpec.Parse("wanda:2:4")), 2),
    ];

    [Theory]
    [MemberData(nameof(DecoderFamilies))]
    public void EverySchemeStaysCloseToFp32(string family)
    {
        using var h = new QuantHarness(family);
        var reference = h.Fp32Logits();
        int vocab = (int)h.Vocab;
        foreach (var (scheme, request, bound) in Bounds)
        {
            var (graph, _, load) = h.Quantize(request);
            var logits = h.Logits(graph, load);
            double rel = QuantHarness.RelativeError(reference, logits), kl = QuantHarness.MeanKl(reference, logits, vocab);
            output.WriteLine($"| {family} | {scheme} | {rel:E2} | {kl:E2} |");
            Assert.True(double.IsFinite(kl) && kl >= -1e-12, $"{family} {scheme}: KL {kl}");
            Assert.True(rel <= bound, $"{family} {scheme}: relative logit error {rel:E2} > {bound}");
        }
    }

    /// <summary>
    /// A few channels of every norm's output scaled ×50 and the columns that read them divided by 50: the fp32 model
    /// is unchanged, but per-token int8 now spends its range on the outliers. SmoothQuant migrates them into the
    /// weights and must be strictly closer to fp32 than plain W8A8 (as the paper reports for large models).
    /// </summary>
    [Fact]
    public void SmoothQuantBeatsPlainW8A8WithPlantedOutliers()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"mc-test-outliers-{Guid.NewGuid():N}");
        try
        {
            PlantOutliers(OracleCheck.Folder("llama"), folder, [3, 17, 40], 50);
            using var original = new QuantHarness("llama");
            using var h = new QuantHarness("llama", folder);
            var reference = h.Fp32Logits();
            Assert.True(QuantHarness.RelativeError(original.Fp32Logits(), reference) < 1e-4, "planting changed the fp32 model");
            var (pg, _, pl) = h.Quantize(new QuantizeRequest("w8a8"));
            var (sg, _, sl) = h.Quantize(new QuantizeRequest("smoothquant"));
            double plain = QuantHarness.RelativeError(reference, h.Logits(pg, pl)), smooth = QuantHarness.RelativeError(reference, h.Logits(sg, sl));
            double plainKl = QuantHarness.MeanKl(reference, h.Logits(pg, pl), (int)h.Vocab), smoothKl = QuantHarness.MeanKl(reference, h.Logits(sg, sl), (int)h.Vocab);
            output.WriteLine($"planted outliers ×50: w8a8 rel {plain:E2} KL {plainKl:E2}; smoothquant rel {smooth:E2} KL {smoothKl:E2}");
            Assert.True(smooth < plain, $"smoothquant {smooth:E2} not better than w8a8 {plain:E2}");
            Assert.True(smoothKl < plainKl, $"smoothquant KL {smoothKl:E2} not better than w8a8 {plainKl:E2}");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    /// <summary>Norm weights ×factor at <paramref name="channels"/>, the reading linears' columns ÷factor: the same function.</summary>
    internal static void PlantOutliers(string from, string to, int[] channels, float factor)
    {
        Directory.CreateDirectory(to);
        File.Copy(Path.Combine(from, "config.json"), Path.Combine(to, "config.json"));
        using var store = WeightStore.Open(from);
        var tensors = new List<TensorData>();
        foreach (var name in store.Names)
        {
            var info = store.Get(name);
            var w = store.ReadFloat32(name);
            if (name.EndsWith("layernorm.weight"))
                foreach (var c in channels) w[c] *= factor;
            if (name.Contains("q_proj") || name.Contains("k_proj") || name.Contains("v_proj") || name.Contains("gate_proj") || name.Contains("up_proj"))
            {
                int k = (int)info.Shape[1];
                for (int row = 0; row < info.Shape[0]; row++)
                    foreach (var c in channels) w[row * k + c] /= factor;
            }
            tensors.Add(TensorData.FromFloat32(name, info.Shape.ToArray(), w));
        }
        SafetensorsWriter.Write(Path.Combine(to, "model.safetensors"), tensors);
    }
}

using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Generation;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Cli;
using Xunit.Abstractions;

namespace ModelCompiler.Tests.Quantization;

/// <summary>
/// The issue's accuracy bounds on examples/pystories (a LLaMA trained for real) under its protocol, with the scoring
/// cut short for CI: calibration on the first 64 windows of 256 tokens of its eval text, perplexity over the next 48
/// (12288 of the 88832 tokens `mc perplexity --skip-windows 64` scores; fp32 scored the same way), group size 64.
/// The full protocol's figures are in docs/quantization.md. (A shorter calibration, 16 windows, scored over the next
/// 16 or 48, left AWQ behind round to nearest by 1.4 % and 0.1 %; docs/quantization.md has the figures.)
/// </summary>
public class QuantizationPystoriesTests(ITestOutputHelper output)
{
    private const int Window = 256, CalibrationWindows = 64, ScoredWindows = 48, Group = 64;

    private static string Folder => CliRunner.Example("pystories");

    private static readonly Lazy<List<int>> Ids = new(() =>
    {
        var tokenizer = TokenizerLoader.Load(Folder);
        int eos = tokenizer.SpecialIds.Eos ?? 0;
        var ids = EvalCorpus.Encode(tokenizer, File.ReadAllText(Path.Combine(Folder, "eval.txt")), eos, tokenizer.IdToToken(eos)!);
        return ids.Take((CalibrationWindows + ScoredWindows) * Window + 2).ToList();
    });

    private static readonly Lazy<double> Fp32 = new(() =>
    {
        using var store = WeightStore.Open(Folder);
        return Perplexity(Fresh(), store.ReadFloat32);
    });

    private static Graph Fresh() => HuggingFaceImport.Load(Folder, new Dictionary<string, string>()).Graph;

    private static double Perplexity(Graph graph, Func<string, float[]> weights)
    {
        new PassManager(CpuBackend.Pipeline).Run(graph);
        var model = CpuBackend.Instantiate(CpuBackend.Compile(graph));
        model.LoadWeights(weights);
        var result = new PerplexityEvaluator(model, 4).Evaluate(Ids.Value, Window, CalibrationWindows);
        Assert.Equal(ScoredWindows * Window, result.Tokens);
        return result.Perplexity;
    }

    private double Quantized(QuantizeRequest request)
    {
        using var store = WeightStore.Open(Folder);
        CalibrationStats? stats = null;
        if (request.NeedsCalibration)
        {
            var windows = Calibration.Windows(Ids.Value.Select(i => (long)i).ToList(), CalibrationWindows, Window);
            stats = Calibration.Collect(Fresh(), store.ReadFloat32, windows, gram: request.NeedsGram);
        }
        var graph = Fresh();
        var context = ModelQuantizer.Apply(graph, request, store.ReadFloat32, stats);
        double ppl = Perplexity(graph, QuantizedWeights.Floats(context.Weights, store.ReadFloat32));
        output.WriteLine($"{request.Prune?.ToString() ?? ""} {request.Scheme ?? ""}: perplexity {ppl:F4} (fp32 {Fp32.Value:F4}, {(ppl / Fp32.Value - 1) * 100:+0.00;-0.00}%)");
        return ppl;
    }

    [Fact]
    public void Int8WeightOnlyIsWithinOnePercentOfFp32() =>
        Assert.True(Quantized(new QuantizeRequest("int8", Group)) <= 1.01 * Fp32.Value);

    [Fact]
    public void AwqInt4IsStrictlyBetterThanRoundToNearestInt4()
    {
        double rtn = Quantized(new QuantizeRequest("int4", Group));
        double awq = Quantized(new QuantizeRequest("awq-int4", Group));
        Assert.True(awq < rtn, $"awq-int4 {awq:F4} vs int4 {rtn:F4}");
    }

    [Fact]
    public void WandaIsStrictlyBetterThanMagnitudeAtHalfSparsity()
    {
        double magnitude = Quantized(new QuantizeRequest(null, Prune: PruningSpec.Parse("magnitude:0.5")));
        double wanda = Quantized(new QuantizeRequest(null, Prune: PruningSpec.Parse("wanda:0.5")));
        Assert.True(wanda < magnitude, $"wanda {wanda:F4} vs magnitude {magnitude:F4}");
    }
}

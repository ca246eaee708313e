using System.Runtime.CompilerServices;
using System.Text;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Quantization;

/// <summary>
/// What each quantization and pruning pass makes of one LLaMA layer (golden IR after the pass, regenerate with
/// <c>MC_UPDATE_GOLDEN=1 dotnet test --filter QuantizationPassTests</c>), the compiled kernels against the interpreter's
/// reference semantics, and the pruning patterns.
/// </summary>
public class QuantizationPassTests
{
    private static string GoldenDir([CallerFilePath] string thisFile = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "Data", "golden"));

    public static TheoryData<string, int?> Schemes() => new()
    {
        { "int8", null }, { "int4", 32 }, { "awq-int4", 32 }, { "w8a8", null }, { "smoothquant", null },
    };

    [Theory]
    [MemberData(nameof(Schemes))]
    public void LlamaLayerAfterThePassMatchesGolden(string scheme, int? group)
    {
        using var h = new QuantHarness("llama", null, "n_layers=1");
        var before = Printer.Print(h.Fresh());
        var (graph, context, _) = h.Quantize(new QuantizeRequest(scheme, group));
        var after = Printer.Print(graph);
        // q, k, v, o, gate, up, down and the LM head: every linear, nothing else touched
        Assert.Equal(8, graph.Nodes.Count(n => n.Op == OpKind.QuantizedLinear));
        Assert.DoesNotContain(graph.Nodes, n => n.Op == OpKind.Linear);
        Assert.Equal(8, context.Entries.Count);
        Assert.Equal(before.Split('\n').Count(l => l.Contains("= rms_norm")), after.Split('\n').Count(l => l.Contains("= rms_norm")));
        var golden = Path.Combine(GoldenDir(), $"quantize.{scheme}.ir");
        var text = $"// {scheme}{(group is null ? "" : $", group {group}")}: llama oracle, n_layers=1\n" + after;
        if (Environment.GetEnvironmentVariable("MC_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(golden, text);
            return;
        }
        Assert.True(File.Exists(golden), $"no golden {golden}");
        Assert.Equal(File.ReadAllText(golden), text);
    }

    [Fact]
    public void SmoothQuantFoldsIntoBothNormsOfALayerAndTheFinalOne()
    {
        using var h = new QuantHarness("llama", null, "n_layers=1");
        var (_, context, _) = h.Quantize(new QuantizeRequest("smoothquant"));
        var rewritten = context.Weights.Written.Keys.Where(h.Store.Contains).Order().ToList();
        Assert.Equal(["model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight", "model.norm.weight"], rewritten);
        // o_proj and down_proj read no norm: their weights are plain W8A8 codes of the original
        var down = context.Entries.Single(e => e.Weight.Contains("down_proj"));
        Assert.Null(down.InputScale);
    }

    [Fact]
    public void AwqFoldsIntoTheNormsAndTheUpRowsAndScalesOnlyTheOutputProjectionAtRunTime()
    {
        using var h = new QuantHarness("llama", null, "n_layers=1");
        var (_, context, _) = h.Quantize(new QuantizeRequest("awq-int4", 32));
        var rewritten = context.Weights.Written.Keys.Where(h.Store.Contains).Order().ToList();
        Assert.Equal(["model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight", "model.norm.weight"], rewritten);
        // o_proj reads the attention's output: v_proj's rows cannot take s (GQA: fewer rows than o_proj's columns)
        Assert.Equal(["model.layers.0.self_attn.o_proj.weight"], context.Entries.Where(e => e.InputScale is not null).Select(e => e.Weight));
    }

    /// <summary>The compiled model computes what the interpreter defines, scheme by scheme (1e-4 of max|logit|).</summary>
    [Theory]
    [MemberData(nameof(Schemes))]
    public void CompiledQuantizedModelMatchesTheInterpreter(string scheme, int? group)
    {
        using var h = new QuantHarness("llama");
        var (graph, context, load) = h.Quantize(new QuantizeRequest(scheme, group));
        var expected = h.Logits(graph, load);
        var compiledGraph = h.Fresh();
        QuantizedLinears.Rewrite(compiledGraph, context.Entries);
        new PassManager(CpuBackend.Pipeline).Run(compiledGraph);
        var model = CpuBackend.Instantiate(CpuBackend.Compile(compiledGraph));
        model.LoadWeights(QuantizedWeights.Floats(context.Weights, h.Store.ReadFloat32));
        var actual = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = h.Ids })["logits"].Data;
        double max = expected.Max(Math.Abs);
        double err = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / max;
        Assert.True(err <= 1e-4, $"{scheme}: compiled vs interpreter relative error {err:E2}");
        Assert.Contains("QuantizedGemm.Linear", CpuBackend.Compile(compiledGraph).Generated.Source);
    }

    [Theory]
    [InlineData("magnitude:0.5")]
    [InlineData("wanda:0.5")]
    [InlineData("wanda:2:4")]
    public void PruningZeroesHalfOfEveryRowButTheHead(string spec)
    {
        using var h = new QuantHarness("llama", null, "n_layers=1");
        var (graph, context, _) = h.Quantize(new QuantizeRequest(null, Prune: PruningSpec.Parse(spec)));
        // 2:4 is stored compressed (every pruned linear reads its kept values and positions); the rest stays dense.
        Assert.Equal(spec.EndsWith("2:4") ? 7 : 0, graph.Nodes.Count(n => n.Op == OpKind.QuantizedLinear && n.Attrs.Str("scheme") == "sparse24"));
        Assert.Equal(spec.EndsWith("2:4") ? 1 : 8, graph.Nodes.Count(n => n.Op == OpKind.Linear));
        Assert.DoesNotContain("lm_head.weight", context.Weights.Written.Keys);
        var pruned = context.Weights.Written.Where(kv => h.Store.Contains(kv.Key)).Select(kv => kv.Value).ToList();
        Assert.Equal(7, pruned.Count);
        foreach (var t in pruned)
        {
            int k = (int)t.Shape[1];
            var w = Enumerable.Range(0, t.Data.Length / 4).Select(i => BitConverter.ToSingle(t.Data, 4 * i)).ToArray();
            for (int row = 0; row < t.Shape[0]; row++)
            {
                var r = w.AsSpan(row * k, k).ToArray();
                Assert.Equal(k / 2, r.Count(v => v == 0));
                if (spec.EndsWith("2:4"))
                    for (int at = 0; at < k; at += 4) Assert.Equal(2, r.Skip(at).Take(4).Count(v => v == 0));
            }
        }
    }

    /// <summary>
    /// AWQ's folds are exact in fp32: random per-channel scales s divided out of every foldable producer (the norms'
    /// weights, the up projection's rows) and multiplied into the reading linears' columns leave the logits unchanged
    /// (1e-4 of max|logit|); which linears AWQ folds where is pinned by the golden IR above.
    /// </summary>
    [Fact]
    public void ScaleFoldingLeavesTheFp32ModelUnchanged()
    {
        using var h = new QuantHarness("llama");
        var graph = h.Fresh();
        var context = new QuantizationContext(new WeightEdits(h.Store.ReadFloat32));
        var folding = new ScaleFolding(graph);
        var rng = new Random(7);
        int norms = 0, producers = 0;
        foreach (var group in QuantizedLinears.Candidates(graph).GroupBy(l => l.Input(0)).ToList())
        {
            var readers = group.ToList();
            int k = (int)group.Key.Type[-1].Size;
            var s = Enumerable.Range(0, k).Select(_ => (float)Math.Exp(2 * rng.NextDouble() - 1)).ToArray();
            if (folding.NormReaders(group.Key) is { } r && r.Count == readers.Count)
            {
                ScaleFolding.DivideNorm(context, group.Key, s);
                norms++;
            }
            else if (folding.ProducingLinear(group.Key, readers) is { } producer)
            {
                var name = QuantizedLinears.WeightName(producer);
                var w = (float[])context.Weights.ReadFloats(name).Clone();
                for (int i = 0; i < w.Length; i++) w[i] /= s[i / (w.Length / k)];
                context.Weights.WriteFloats(name, [k, w.Length / k], w);
                producers++;
            }
            else continue;
            foreach (var linear in readers)
            {
                var name = QuantizedLinears.WeightName(linear);
                var w = context.Weights.ReadFloats(name);
                context.Weights.WriteFloats(name, [w.Length / k, k], w.Select((v, i) => v * s[i % k]).ToArray());
            }
        }
        Assert.Equal(2 * 2 + 1, norms);   // two norms a layer, two layers, and the final norm (read by the LM head)
        Assert.Equal(2, producers);       // each layer's up projection (its product with act(gate) feeds down_proj)
        var folded = h.Logits(graph, QuantizedWeights.Interpreter(context.Weights, WeightBinding.Loader(h.Store)));
        Assert.True(QuantHarness.RelativeError(h.Fp32Logits(), folded) <= 1e-4);
    }

    /// <summary>
    /// The compressed 2:4 model computes what the dense pruned one does: compiled (sparse kernel) and interpreted
    /// (the stored form written out dense) against the interpreter on the pruned fp32 weights, 1e-4 of max|logit|.
    /// </summary>
    [Theory]
    [InlineData("wanda:2:4")]
    [InlineData("magnitude:2:4")]
    public void CompressedTwoFourMatchesTheDensePrunedModel(string spec)
    {
        using var h = new QuantHarness("llama");
        var (graph, context, load) = h.Quantize(new QuantizeRequest(null, Prune: PruningSpec.Parse(spec)));
        Assert.All(context.Entries, e => Assert.Equal("sparse24", e.Scheme));
        var dense = h.Logits(h.Fresh(), (name, type) => context.Weights.Written.ContainsKey(name)
            ? Backends.Reference.RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), context.Weights.ReadFloats(name))
            : WeightBinding.Loader(h.Store)(name, type));
        var interpreted = h.Logits(graph, load);
        var compiledGraph = h.Fresh();
        QuantizedLinears.Rewrite(compiledGraph, context.Entries);
        new PassManager(CpuBackend.Pipeline).Run(compiledGraph);
        var model = CpuBackend.Instantiate(CpuBackend.Compile(compiledGraph));
        model.LoadWeights(QuantizedWeights.Floats(context.Weights, h.Store.ReadFloat32));
        var compiled = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = h.Ids })["logits"].Data;
        double max = dense.Max(Math.Abs);
        Assert.True(dense.Zip(interpreted).Max(p => Math.Abs(p.First - p.Second)) <= 1e-4 * max, "interpreted sparse24 differs from the dense pruned model");
        Assert.True(dense.Zip(compiled).Max(p => Math.Abs(p.First - (double)p.Second)) <= 1e-4 * max, "compiled sparse24 differs from the dense pruned model");
    }

    [Fact]
    public void GroupSizeThatDoesNotDivideIsAClearError()
    {
        using var h = new QuantHarness("llama", null, "n_layers=1");
        var e = Assert.Throws<McException>(() => h.Quantize(new QuantizeRequest("int4", 48)));
        Assert.Contains("--group-size 48 does not divide the input width 64", e.Message);
        var e2 = Assert.Throws<McException>(() => h.Quantize(new QuantizeRequest("int4", 16)));
        Assert.Contains("multiple of 32", e2.Message);
    }
}

using ModelCompiler.Backends;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.KvCache;

/// <summary>
/// The kv-cache rewrite, proven on every oracle that has greedy tokens: decoding through the cache
/// (one prefill, then one token per step) reproduces Hugging Face's greedy_ids, and at every step the
/// logits equal a full forward over the same tokens within 1e-4 (many oracles repeat one token
/// greedily, so the per-step check is what proves the cache).
/// </summary>
public class KvCacheTests
{
    public static TheoryData<string> GreedyFamilies() => new(Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "oracles"))
        .Select(d => Path.GetFileName(d)!).Where(HasGreedy).Order());

    private static bool HasGreedy(string family)
    {
        using var file = SafetensorsFile.Open(Path.Combine(OracleCheck.Folder(family), "reference.safetensors"));
        return file.Contains("greedy_ids");
    }

    [Theory]
    [MemberData(nameof(GreedyFamilies))]
    public void CachedDecodeMatchesFullForwardAndHuggingFace(string family)
    {
        var folder = OracleCheck.Folder(family);
        var full = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        var cached = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        new PassManager(["dead-code-elimination", "kv-cache"]).Run(cached);
        Assert.Contains(cached.Outputs, o => o.Key == "present.0.key");

        using var store = WeightStore.Open(folder);
        var load = WeightBinding.Loader(store);
        var weights = new Dictionary<string, RefTensor>();
        RefTensor Weight(string name, TensorType type) => weights.TryGetValue(name, out var t) ? t : weights[name] = load(name, type);

        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var expected = reference.ReadInt64("greedy_ids");
        var inputIds = reference.Get("input_ids");
        var row0 = reference.ReadInt64("input_ids").Take((int)inputIds.Shape[1]).ToArray();
        bool encoderDecoder = reference.Contains("decoder_input_ids");
        var eos = GreedyDecoder.EosIds(cached);
        var fixedInputs = encoderDecoder ? new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, row0.Length], row0) } : null;
        long[] start = encoderDecoder ? [full.Hyperparameters["decoder_start_token_id"] is long s ? s : 0] : row0;

        var fullInterpreter = new RefInterpreter(full);
        int steps = expected.Length - start.Length;
        int checkedSteps = 0;
        var generated = new CachedDecoder(cached, Weight).Generate(start, steps, eos, fixedInputs, (ids, stepLogits) =>
        {
            // The same tokens through the uncached graph (rope's dynamic NTK as the cache would hold it).
            var feeds = new Dictionary<string, RefTensor>(fixedInputs ?? new()) { [encoderDecoder ? "decoder_input_ids" : "input_ids"] = RefTensor.FromInts([1, ids.Length], ids) };
            var logits = fullInterpreter.Run(feeds, Weight, cachedPrefixLength: start.Length)["logits"];
            long vocab = logits.Shape[^1];
            var reference = logits.ToFloat32().AsSpan((int)(logits.ElementCount - vocab)).ToArray();
            double maxRef = reference.Max(x => Math.Abs((double)x));
            double maxDiff = reference.Zip(stepLogits, (a, b) => Math.Abs((double)a - b)).Max();
            Assert.True(maxDiff / maxRef <= 1e-4, $"{family}, step {checkedSteps}: cached logits differ from a full forward by {maxDiff / maxRef:E3}");
            checkedSteps++;
        });
        Assert.Equal(steps, checkedSteps);
        Assert.Equal(expected, generated);
    }

    [Fact]
    public void EncoderAndCrossAttentionAreNotCached()
    {
        var graph = HuggingFaceImport.Load(OracleCheck.Folder("t5"), new Dictionary<string, string>()).Graph;
        int attentions = graph.Nodes.Count(n => n.Op == OpKind.Attention);
        new PassManager(["kv-cache"]).Run(graph);
        int cached = graph.Inputs.Count(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal)) / 2;
        // T5 (2 + 2 layers): encoder self-attention x2, decoder self-attention x2, cross-attention x2.
        Assert.Equal(6, attentions);
        Assert.Equal(2, cached);
    }

    [Fact]
    public void PrintedIrShowsTheCache()
    {
        var r = Cli.CliRunner.Run("print-ir", OracleCheck.Folder("bloom"), "--set", "n_layers=1", "--passes", "dead-code-elimination,kv-cache");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("input \"past.0.key\" : f32[batch,past,4,16]", r.Out);
        Assert.Contains("cache_append", r.Out);
        Assert.Contains("{heads=4} : f32[1,4,seq,kv]", r.Out);     // ALiBi spans the whole cache
        Assert.Contains("output \"present.0.value\"", r.Out);
    }
}

using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>examples/llama.arch at a tiny size with seeded random weights, compiled once for the tests that use it.</summary>
public sealed class TinyLlamaFixture
{
    public TinyLlamaFixture()
    {
        Graph = ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", "llama.arch"), null, new Dictionary<string, string>
        {
            ["n_layers"] = "2", ["dim"] = "64", ["n_heads"] = "4", ["n_kv_heads"] = "2", ["ffn_dim"] = "160", ["vocab"] = "256",
        }).Graph;
        new PassManager(CpuBackend.Pipeline).Run(Graph);
        int seed = 1;
        foreach (var w in Graph.Weights)
        {
            long n = w.Type.Shape.Aggregate(1L, (a, d) => a * d.Size);
            Weights[w.Attrs.Str("name")] = CpuHarness.Values(seed++, n, w.Type.Rank == 1 ? 0.2 : 1 / Math.Sqrt(w.Type[-1].Size), w.Type.Rank == 1 ? 1 : 0);
        }
        Artifact = CpuBackend.Compile(Graph);
    }

    internal Graph Graph { get; }
    internal Dictionary<string, float[]> Weights { get; } = new(StringComparer.Ordinal);
    internal CpuArtifact Artifact { get; }

    internal ICompiledModel Loaded()
    {
        var model = CpuBackend.Instantiate(Artifact);
        model.LoadWeights(n => Weights[n]);
        return model;
    }

    internal static Dictionary<string, HostTensor> Ids(long batch, params long[] ids) =>
        new() { ["input_ids"] = HostTensor.FromInts([batch, ids.Length / batch], ids) };
}

/// <summary>The <see cref="ICompiledModel"/> contract: results, errors worded as the interpreter's, weights, threads.</summary>
public sealed class CompiledModelTests(TinyLlamaFixture llama) : IClassFixture<TinyLlamaFixture>
{
    private static McException Throws(Action run) => Assert.Throws<McException>(run);

    [Fact]
    public void ForwardMatchesTheInterpreterAndRunsAnySequenceLength()
    {
        var model = llama.Loaded();
        var interpreter = new RefInterpreter(llama.Graph);
        foreach (var ids in new[] { new long[] { 5 }, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [200, 100, 50] })
        {
            var cpu = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = ([1, ids.Length], ids) })["logits"];
            var reference = interpreter.Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, ids.Length], ids) },
                (name, type) => RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), llama.Weights[name]))["logits"];
            Assert.Equal(reference.Shape, cpu.Shape);
            Assert.True(CpuHarness.Difference(reference, HostTensor.FromFloats(cpu.Shape, cpu.Data)) < 1e-5);
        }
    }

    [Fact]
    public void GreedyDecodingMatchesTheInterpreter()
    {
        var model = llama.Loaded();
        var interpreter = new RefInterpreter(llama.Graph);
        long[] prompt = [3, 14, 15, 92, 65];
        var eos = GreedyDecoder.EosIds(llama.Graph);
        var cpu = GreedyDecoder.Generate(prompt, 8, eos, ids =>
            model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = ([1, ids.Length], ids) }, prompt.Length)["logits"].Data[^256..]);
        var reference = GreedyDecoder.Generate(prompt, 8, eos, ids =>
            interpreter.Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, ids.Length], ids) },
                (name, type) => RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), llama.Weights[name]), cachedPrefixLength: prompt.Length)["logits"].ToFloat32()[^256..]);
        Assert.Equal(reference, cpu);
    }

    [Fact]
    public void DescribesItsInputsOutputsAndWeights()
    {
        var model = CpuBackend.Instantiate(llama.Artifact);
        Assert.Equal("Llama", model.Name);
        Assert.False(model.WeightsLoaded);
        Assert.Equal("input_ids i64[batch,seq]", model.Inputs.Single().ToString());
        Assert.Equal("logits f32[batch,seq,256]", model.Outputs.Single().ToString());
        Assert.Equal(llama.Graph.Weights.Select(w => w.Attrs.Str("name")).Distinct(), model.Weights.Select(w => w.Name));
        Assert.Equal(llama.Graph.Weights.Sum(w => w.Type.Shape.Aggregate(1L, (a, d) => a * d.Size)), model.Weights.Sum(w => w.ElementCount));
    }

    [Fact]
    public void InputErrorsAreWordedLikeTheInterpreters()
    {
        var model = llama.Loaded();
        Assert.Contains("unknown input 'ids' (the model's inputs are: input_ids)",
            Throws(() => model.Run(new Dictionary<string, HostTensor> { ["ids"] = HostTensor.FromInts([1, 1], [1]) })).Message);
        Assert.Equal("missing input 'input_ids' (the model declares i64[batch,seq])",
            Throws(() => model.Run(new Dictionary<string, HostTensor>())).Message);
        Assert.Equal("input 'input_ids' has shape [3] but the model declares i64[batch,seq]",
            Throws(() => model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([3], [1, 2, 3]) })).Message);
        Assert.Equal("input 'input_ids' holds floats (f32[1,2]) but the model declares i64[batch,seq]",
            Throws(() => model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromFloats([1, 2], [1, 2]) })).Message);
        var outOfRange = Throws(() => model.Run(TinyLlamaFixture.Ids(1, 1, 256))).Message;
        Assert.StartsWith("embedding 'x' (llama.arch:", outOfRange);
        Assert.EndsWith("token id 256 is outside the table's 256 rows", outOfRange);
    }

    [Fact]
    public void WeightErrorsNameTheWeight()
    {
        var model = CpuBackend.Instantiate(llama.Artifact);
        Assert.Throws<InvalidOperationException>(() => model.Run(TinyLlamaFixture.Ids(1, 1)));
        Assert.Equal("weight 'model.norm.weight' was not provided",
            Throws(() => model.LoadWeights(n => n == "model.norm.weight" ? null! : llama.Weights[n])).Message);
        Assert.Equal("weight 'lm_head.weight' has 3 elements but the model declares f32[256,64]",
            Throws(() => model.LoadWeights(n => n == "lm_head.weight" ? [1, 2, 3] : llama.Weights[n])).Message);
        Assert.False(model.WeightsLoaded);
    }

    [Fact]
    public void LoadsWeightsFromAWeightStore()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mc-cpu-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafetensorsWriter.Write(path, llama.Graph.Weights.Select(w => TensorData.FromFloat32(w.Attrs.Str("name"),
                w.Type.Shape.Select(d => d.Size).ToArray(), llama.Weights[w.Attrs.Str("name")])).DistinctBy(t => t.Name).ToList());
            using var store = WeightStore.Open(path);
            var model = CpuBackend.Instantiate(llama.Artifact);
            model.LoadWeights(store);
            var ids = TinyLlamaFixture.Ids(1, 1, 2, 3);
            Assert.Equal(llama.Loaded().Run(ids)["logits"].Floats, model.Run(ids)["logits"].Floats);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ConcurrentRunsAgreeWithASequentialOne()
    {
        var model = llama.Loaded();
        var inputs = Enumerable.Range(0, 8).Select(i => TinyLlamaFixture.Ids(2, Enumerable.Range(0, 2 * (i + 2)).Select(v => (long)(v * 37 % 256)).ToArray())).ToArray();
        var sequential = inputs.Select(i => model.Run(i)["logits"].Floats!).ToArray();
        var parallel = new float[inputs.Length][];
        Parallel.For(0, inputs.Length, i => parallel[i] = model.Run(inputs[i])["logits"].Floats!);
        for (int i = 0; i < inputs.Length; i++) Assert.Equal(sequential[i], parallel[i]);
    }

    [Fact]
    public void OutputsAreFreshArraysAndInputsAreNotWritten()
    {
        var b = new GraphBuilder(new Graph("Views"));
        var x = b.Input("x", new TensorType(DType.F32, Dim.Sym("n")));
        var w = b.Weight("w", new TensorType(DType.F32, 3));
        b.Graph.SetOutput("same", x);
        b.Graph.SetOutput("again", x);
        b.Graph.SetOutput("weight", w);
        b.Graph.SetOutput("neg", b.Unary(OpKind.Neg, x));
        var model = CpuBackend.Instantiate(CpuBackend.Compile(b.Graph));
        float[] weight = [1, 2, 3], data = [4, 5];
        model.LoadWeights(_ => weight);
        var r = model.Run(new Dictionary<string, HostTensor> { ["x"] = HostTensor.FromFloats([2], data) });
        Assert.Equal([4f, 5], r["same"].Floats!);
        Assert.NotSame(data, r["same"].Floats);
        Assert.NotSame(r["same"].Floats, r["again"].Floats);
        Assert.NotSame(weight, r["weight"].Floats);
        Assert.Equal([-4f, -5], r["neg"].Floats!);
        Assert.Equal([4f, 5], data);
    }

    [Fact]
    public void DiskCacheHoldsTheAssemblyUnderTheSourceHash()
    {
        var dir = Directory.CreateTempSubdirectory("mc-cpu-cache-").FullName;
        try
        {
            var artifact = CpuBackend.Compile(llama.Graph, dir);
            Assert.Equal(CpuBackend.CacheKey(artifact.Generated.Source), artifact.Key);
            Assert.Equal(artifact.Assembly, File.ReadAllBytes(Path.Combine(dir, artifact.Key + ".dll")));
            Assert.True(CpuBackend.Compile(llama.Graph, dir).FromCache);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}

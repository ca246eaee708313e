using ModelCompiler.Backends;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Passes;

/// <summary>The fusion passes: what they make of a LLaMA layer, and proof on every oracle that they change no result.</summary>
public class FusionPassTests
{
    private static Graph Fused(string family, params string[] sets)
    {
        var graph = HuggingFaceImport.Load(OracleCheck.Folder(family), sets.ToDictionary(s => s.Split('=')[0], s => s.Split('=')[1])).Graph;
        new PassManager(PassManager.FusionPipeline).Run(graph);
        return graph;
    }

    [Fact]
    public void LlamaLayerBecomesFourGemms()
    {
        var g = Fused("llama", "n_layers=1");
        var ops = g.Nodes.Where(n => n.Op is OpKind.Linear or OpKind.FusedLinear).ToList();
        // q/k/v (norm fused), o_proj (+ residual), gate/up (norm, SwiGLU gate), down (+ residual), head (final norm).
        Assert.Equal(5, ops.Count);
        Assert.DoesNotContain(g.Nodes, n => n.Op is OpKind.RmsNorm or OpKind.Silu or OpKind.Mul or OpKind.Add);
        var qkv = ops[0];
        Assert.Equal("rms_norm", qkv.Attrs.Str("prologue"));
        Assert.Equal(128, qkv.Type[-1].Size);                                    // q 64 + k 32 + v 32
        var gateUp = ops.Single(n => n.Attrs.Bool("gate", false));
        Assert.Equal("silu", gateUp.Attrs.Str("activation"));
        Assert.Equal(160, gateUp.Type[-1].Size);
        Assert.Equal(2, ops.Count(n => n.Attrs.Bool("residual", false)));
    }

    [Fact]
    public void PostLayerNormIsNotFusedIntoItsLinears()
    {
        // BERT's post-LN output feeds both the next layer's q/k/v and the residual: fusing would normalise twice.
        var g = Fused("bert");
        Assert.Contains(g.Nodes, n => n.Op == OpKind.LayerNorm);
    }

    public static TheoryData<string> Families() => ImportHfTests.Families();

    /// <summary>Fused and unfused graphs give the same logits (F64: only the weights' concatenation differs).</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void FusionPreservesEveryOracle(string family)
    {
        var folder = OracleCheck.Folder(family);
        var before = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        var after = Fused(family);
        Assert.True(after.Nodes.Any(n => n.Op == OpKind.FusedLinear), $"{family}: nothing fused");

        using var store = WeightStore.Open(folder);
        var load = WeightBinding.Loader(store);
        var weights = new Dictionary<string, RefTensor>();
        RefTensor Weight(string name, TensorType type) => weights.TryGetValue(name, out var t) ? t : weights[name] = load(name, type);
        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var feeds = before.Inputs.ToDictionary(i => i.Attrs.Str("name"), i => RefTensor.FromInts(reference.Get(i.Attrs.Str("name")).Shape, reference.ReadInt64(i.Attrs.Str("name"))));
        var x = new RefInterpreter(before, Precision.F64).Run(feeds, Weight)["logits"].F!;
        var y = new RefInterpreter(after, Precision.F64).Run(feeds, Weight)["logits"].F!;
        double maxRef = x.Max(Math.Abs);
        Assert.True(x.Zip(y).Max(p => Math.Abs(p.First - p.Second)) / maxRef <= 1e-12);
    }
}

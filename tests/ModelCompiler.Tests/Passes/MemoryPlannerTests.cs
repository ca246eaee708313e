using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;

namespace ModelCompiler.Tests.Passes;

public class MemoryPlannerTests
{
    private static readonly Dictionary<string, long> Sizes = new() { ["batch"] = 2, ["seq"] = 12, ["dec_seq"] = 7 };

    /// <summary>No two tensors that are alive at the same time share a byte, on every model of the zoo.</summary>
    [Theory]
    [MemberData(nameof(ImportHfTests.Families), MemberType = typeof(ImportHfTests))]
    public void LiveTensorsNeverOverlap(string family)
    {
        var graph = HuggingFaceImport.Load(OracleCheck.Folder(family), new Dictionary<string, string>()).Graph;
        new PassManager(PassManager.CleanupPipeline).Run(graph);
        var plan = MemoryPlanner.Compute(graph, Sizes);
        foreach (var a in plan.Buffers)
            foreach (var b in plan.Buffers)
            {
                if (a == b || a.LastUse < b.FirstUse || b.LastUse < a.FirstUse) continue;
                Assert.True(a.Offset + a.Bytes <= b.Offset || b.Offset + b.Bytes <= a.Offset,
                    $"{family}: %{a.Node.Id} [{a.Offset}, +{a.Bytes}) and %{b.Node.Id} [{b.Offset}, +{b.Bytes}) overlap while both alive");
                Assert.Equal(0, a.Offset % MemoryPlanner.Alignment);
            }
        Assert.True(plan.ArenaBytes < plan.TotalBytes, $"{family}: reuse should make the arena ({plan.ArenaBytes}) smaller than all buffers together ({plan.TotalBytes})");
    }

    [Fact]
    public void AChainReusesTwoBuffers()
    {
        // x -> relu -> exp -> tanh -> sigmoid -> y: each intermediate dies when the next is computed.
        var g = new Graph("chain");
        var b = new GraphBuilder(g);
        var x = b.Input("x", new TensorType(DType.F32, 16));
        var t = x;
        foreach (var op in new[] { OpKind.Relu, OpKind.Exp, OpKind.Tanh }) t = b.Unary(op, t);
        g.SetOutput("y", b.Unary(OpKind.Sigmoid, t));
        var plan = MemoryPlanner.Compute(g, new Dictionary<string, long>());
        Assert.Equal(3, plan.Buffers.Count);                 // relu, exp, tanh (the output is the caller's)
        Assert.Equal(2 * 64, plan.ArenaBytes);               // two 64-byte slots alternate
    }

    [Fact]
    public void AReshapeIsAViewThatKeepsItsInputAlive()
    {
        var g = new Graph("view");
        var b = new GraphBuilder(g);
        var x = b.Input("x", new TensorType(DType.F32, 4, 4));
        var e = b.Unary(OpKind.Exp, x);                         // buffer A
        var r = b.Reshape(e, 16);                               // a view of A
        var n = b.Unary(OpKind.Neg, x);                         // B: computed while A is still needed through r
        g.SetOutput("y", b.Binary(OpKind.Add, r, b.Reshape(n, 16)));
        var plan = MemoryPlanner.Compute(g, new Dictionary<string, long>());
        Assert.Same(plan.ByNode[e], plan.ByNode[r]);
        Assert.NotEqual(plan.ByNode[e].Offset, plan.ByNode[n].Offset);
    }

    /// <summary>Attention is one op that never holds seq x seq scores, so activations grow linearly with the prompt.</summary>
    [Fact]
    public void PrefillArenaGrowsLinearlyWithLength()
    {
        var graph = HuggingFaceImport.Load(OracleCheck.Folder("llama"), new Dictionary<string, string>()).Graph;
        new PassManager(PassManager.CleanupPipeline).Run(graph);
        long At(long seq) => MemoryPlanner.Compute(graph, new Dictionary<string, long> { ["batch"] = 1, ["seq"] = seq }).ArenaBytes;
        double ratio = (double)At(8192) / At(4096);
        Assert.True(ratio <= 2.2, $"arena grows {ratio:F2}x from 4096 to 8192 tokens");
    }
}

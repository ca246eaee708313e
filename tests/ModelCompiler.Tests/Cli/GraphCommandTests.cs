using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Cli;

public class GraphCommandTests
{
    [Fact]
    public void DotShowsOpsWeightsAndOutputs()
    {
        var path = CliRunner.TempFile("g.dot");
        var r = CliRunner.Run("graph", CliRunner.Oracle("gpt2"), "--set", "n_layers=1", "-o", path);
        Assert.True(r.ExitCode == 0, r.Err);
        var dot = File.ReadAllText(path);
        File.Delete(path);
        Assert.StartsWith("digraph \"GPT2\" {", dot);
        Assert.Contains("label=\"transformer.wte.weight\\nf32[256,64]\"", dot);
        Assert.Contains("label=\"logits\", shape=doubleoctagon", dot);
        Assert.Equal(3, CountTransposes(dot));                 // c_attn.weight transposed once per q/k/v view
    }

    [Fact]
    public void AfterCseTheDuplicatedTransposesAreGone()
    {
        var path = CliRunner.TempFile("g.dot");
        var r = CliRunner.Run("graph", CliRunner.Oracle("gpt2"), "--set", "n_layers=1", "--after", "common-subexpression-elimination", "-o", path);
        Assert.True(r.ExitCode == 0, r.Err);
        var dot = File.ReadAllText(path);
        File.Delete(path);
        Assert.Equal(1, CountTransposes(dot));   // c_attn's three views share one transpose (c_proj's are different weights)
    }

    /// <summary>Transposes of c_attn.weight: three views before CSE, one after.</summary>
    private static int CountTransposes(string dot)
    {
        var attn = dot.Split('\n').First(l => l.Contains("c_attn.weight")).Trim().Split(' ')[0];
        var transposes = dot.Split('\n').Where(l => l.Contains("label=\"transpose")).Select(l => l.Trim().Split(' ')[0]).ToHashSet();
        return dot.Split('\n').Count(l => l.Trim().StartsWith(attn + " -> ", StringComparison.Ordinal) && transposes.Contains(l.Trim().Split(' ')[2].TrimEnd(';')));
    }

    [Fact]
    public void LabelsAreEscaped()
    {
        var g = new Graph("quote\"d");
        var b = new GraphBuilder(g);
        var x = b.Input("a\"b\\c\nd", new TensorType(DType.F32, 2));
        g.SetOutput("o\"ut", b.Unary(OpKind.Relu, x));
        var dot = DotExporter.ToDot(g);
        Assert.Contains("digraph \"quote\\\"d\"", dot);
        Assert.Contains("label=\"input a\\\"b\\\\c\\nd\\nf32[2]\"", dot);
        Assert.Contains("label=\"o\\\"ut\"", dot);
    }

    [Fact]
    public void UnknownExtensionIsAOneLineError()
    {
        var r = CliRunner.Run("graph", CliRunner.Oracle("gpt2"), "-o", "model.png");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("expected a .dot or .svg", r.Err);
    }
}

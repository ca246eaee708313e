using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Passes;

public sealed class DeadCodeEliminationTests
{
    private static TensorType F(params Dim[] shape) => new(DType.F32, shape);

    /// <summary>x and an unused input u; a dead exp, a dead weight and a dead chain; y = neg(x) * w.</summary>
    private static Graph WithDeadNodes()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", F(Dim.Sym("batch"), 4));
        b.Input("unused", F(2));
        b.Unary(OpKind.Exp, x);
        b.Weight("dead.weight", F(4));
        var w = b.Weight("w", F(4));
        var dead = b.Unary(OpKind.Relu, x);
        b.Binary(OpKind.Add, dead, dead);
        b.CurrentName = "y";
        b.Graph.SetOutput("y", b.Binary(OpKind.Mul, b.Unary(OpKind.Neg, x), w));
        return b.Graph;
    }

    [Fact]
    public void RemovesWhatNoOutputUsesAndKeepsInputs()
    {
        var g = WithDeadNodes();
        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4]
              %1 = input "unused" : f32[2]
              %2 = exp %0 : f32[batch,4]
              %3 = weight "dead.weight" : f32[4]
              %4 = weight "w" : f32[4]
              %5 = relu %0 : f32[batch,4]
              %6 = add %5, %5 : f32[batch,4]
              %7 = neg %0 : f32[batch,4]  // y
              %8 = mul %7, %4 : f32[batch,4]  // y
              output "y" = %8
            }

            """, Printer.Print(g));

        Assert.True(new DeadCodeElimination().Run(g));

        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4]
              %1 = input "unused" : f32[2]
              %2 = weight "w" : f32[4]
              %3 = neg %0 : f32[batch,4]  // y
              %4 = mul %3, %2 : f32[batch,4]  // y
              output "y" = %4
            }

            """, Printer.Print(g));
        Assert.Empty(Verifier.Check(g));
        Assert.False(new DeadCodeElimination().Run(g));   // nothing left to remove
    }

    [Fact]
    public void KeepsEverythingThatSomeOutputUses()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", F(4));
        var h = b.Unary(OpKind.Relu, x);
        b.Graph.SetOutput("h", h);
        b.Graph.SetOutput("y", b.Unary(OpKind.Exp, h));
        var before = Printer.Print(b.Graph);
        Assert.False(new DeadCodeElimination().Run(b.Graph));
        Assert.Equal(before, Printer.Print(b.Graph));
    }

    // ---------------------------------------------------------------- the pass manager

    [Fact]
    public void PrintIrAfterWritesTheIrAfterThePass()
    {
        var g = WithDeadNodes();
        var log = new StringWriter();
        var reports = new PassManager(["dead-code-elimination"], new PassManager.Options { PrintIrAfter = new HashSet<string> { "dead-code-elimination" } })
            .Run(g, log);
        var report = Assert.Single(reports);
        Assert.True(report.Changed);
        Assert.False(report.Skipped);
        Assert.Equal("// IR after dead-code-elimination\n" + Printer.Print(g), log.ToString().ReplaceLineEndings("\n"));

        log = new StringWriter();
        new PassManager(["dead-code-elimination"], new PassManager.Options { PrintIrAfter = new HashSet<string> { "all" }, TimePasses = true }).Run(g, log);
        var text = log.ToString().ReplaceLineEndings("\n");
        Assert.StartsWith("// IR after dead-code-elimination (unchanged)\n", text);
        Assert.Contains("// pass timings\n//   dead-code-elimination", text);
    }

    [Fact]
    public void ADisabledPassDoesNotRun()
    {
        var g = WithDeadNodes();
        var before = Printer.Print(g);
        var log = new StringWriter();
        var report = Assert.Single(new PassManager(["dead-code-elimination"],
            new PassManager.Options { Disabled = new HashSet<string> { "dead-code-elimination" }, PrintIrAfter = new HashSet<string> { "all" } }).Run(g, log));
        Assert.True(report.Skipped);
        Assert.False(report.Changed);
        Assert.Equal(before, Printer.Print(g));
        Assert.Equal("", log.ToString());
    }

    [Theory]
    [InlineData("pipeline")]
    [InlineData("disabled")]
    [InlineData("print-ir-after")]
    public void UnknownPassNamesAreUserErrors(string where)
    {
        var bogus = new HashSet<string> { "dead-code-elimnation" };
        var e = Assert.Throws<McException>(() => where switch
        {
            "pipeline" => new PassManager(["dead-code-elimnation"]),
            "disabled" => new PassManager(["dead-code-elimination"], new PassManager.Options { Disabled = bogus }),
            _ => new PassManager(["dead-code-elimination"], new PassManager.Options { PrintIrAfter = bogus }),
        });
        Assert.Equal($"unknown pass 'dead-code-elimnation' (known: {string.Join(", ", PassManager.Registry.Select(p => p.Name))})", e.Message);
        Assert.Contains("dead-code-elimination", e.Message);
    }

    [Fact]
    public void TheManagerVerifiesBeforeAndAfterPasses()
    {
        var g = WithDeadNodes();
        g.Reorder(g.Nodes.Reverse().ToList());
        var e = Assert.Throws<InvalidOperationException>(() => new PassManager(["dead-code-elimination"]).Run(g));
        Assert.StartsWith("IR verification failed after construction", e.Message);
    }
}

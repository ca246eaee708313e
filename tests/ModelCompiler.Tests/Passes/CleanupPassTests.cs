using ModelCompiler.Backends;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Passes;

/// <summary>Before/after IR of canonicalize, constant-folding and common-subexpression-elimination, and proof that they change no result.</summary>
public class CleanupPassTests
{
    private static string Print(Graph g) =>
        Printer.Print(g, new Printer.Options(ShowNames: false, ShowHyperparameters: false));

    private static (Graph Graph, GraphBuilder Builder, Node X) NewGraph()
    {
        var g = new Graph("t");
        var b = new GraphBuilder(g);
        return (g, b, b.Input("x", new TensorType(DType.F32, Dim.Sym("batch"), 4, 6)));
    }

    private static void Run(IPass pass, Graph g)
    {
        Verifier.Verify(g);
        pass.Run(g);
        Verifier.Verify(g, pass.Name);
    }

    [Fact]
    public void CanonicalizeRemovesNoOpsAndComposesTransposes()
    {
        var (g, b, x) = NewGraph();
        var same = b.Reshape(x, Dim.Sym("batch"), 4, 6);                          // no-op reshape
        var t1 = b.Transpose(same, 0, 2, 1);                                      // [batch,6,4]
        var t2 = b.Transpose(t1, 0, 2, 1);                                        // back: identity overall
        var whole = b.Slice(t2, 2, 0, 6);                                         // the whole axis
        var one = b.Binary(OpKind.Mul, whole, b.Const(1.0));                      // x * 1
        g.SetOutput("y", b.Unary(OpKind.Relu, one));
        Run(new Canonicalize(), g);
        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4,6]
              %1 = relu %0 : f32[batch,4,6]
              output "y" = %1
            }

            """.Replace("\r", ""), Print(g));
    }

    [Fact]
    public void CanonicalizeMergesReshapeChainsAndKeepsRealTransposes()
    {
        var (g, b, x) = NewGraph();
        var r = b.Reshape(b.Reshape(x, Dim.Sym("batch"), 24), Dim.Sym("batch"), 2, 12);
        g.SetOutput("y", b.Transpose(b.Transpose(r, 0, 2, 1), 1, 0, 2));
        Run(new Canonicalize(), g);
        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4,6]
              %1 = reshape %0 : f32[batch,2,12]
              %2 = transpose %1 {perm=[2,0,1]} : f32[12,batch,2]
              output "y" = %2
            }

            """.Replace("\r", ""), Print(g));
    }

    [Fact]
    public void ConstantFoldingEvaluatesScalarArithmetic()
    {
        var (g, b, x) = NewGraph();
        var scale = b.Binary(OpKind.Mul, b.Const(2.0), b.Unary(OpKind.Rsqrt, b.Const(16.0)));   // 2 * 1/4
        g.SetOutput("y", b.Binary(OpKind.Mul, x, scale));
        Run(new ConstantFolding(), g);
        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4,6]
              %1 = const 0.5 : f32[]
              %2 = mul %0, %1 : f32[batch,4,6]
              output "y" = %2
            }

            """.Replace("\r", ""), Print(g));
    }

    [Fact]
    public void CseMergesDuplicatesIncludingCommutedOperands()
    {
        var (g, b, x) = NewGraph();
        var w = b.Weight("w", new TensorType(DType.F32, 6, 4));
        var a1 = b.Transpose(w, 1, 0);
        var a2 = b.Transpose(w, 1, 0);                                             // duplicate
        var e1 = b.Binary(OpKind.Add, b.Unary(OpKind.Exp, x), x);
        var e2 = b.Binary(OpKind.Add, x, b.Unary(OpKind.Exp, x));                  // same sum, operands swapped
        g.SetOutput("y", b.Binary(OpKind.Mul, b.Linear(e1, a1), b.Linear(e2, a2)));
        Run(new CommonSubexpressionElimination(), g);
        Assert.Equal("""
            graph t {
              %0 = input "x" : f32[batch,4,6]
              %1 = weight "w" : f32[6,4]
              %2 = transpose %1 {perm=[1,0]} : f32[4,6]
              %3 = exp %0 : f32[batch,4,6]
              %4 = add %3, %0 : f32[batch,4,6]
              %5 = linear %4, %2 : f32[batch,4,4]
              %6 = mul %5, %5 : f32[batch,4,4]
              output "y" = %6
            }

            """.Replace("\r", ""), Print(g));
    }

    [Fact]
    public void CseDoesNotMergeDifferentAttributesOrInputs()
    {
        var (g, b, x) = NewGraph();
        var s1 = b.Slice(x, 2, 0, 3);
        var s2 = b.Slice(x, 2, 3, 6);
        g.SetOutput("y", b.Binary(OpKind.Sub, s1, s2));
        Assert.False(new CommonSubexpressionElimination().Run(g));
    }

    public static TheoryData<string> Families() => ImportHfTests.Families();

    /// <summary>The cleanup pipeline changes no result: every oracle's logits are bit-identical before and after (F64).</summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void CleanupPipelinePreservesEveryOracle(string family)
    {
        var folder = OracleCheck.Folder(family);
        var before = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        var after = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        new PassManager(PassManager.CleanupPipeline).Run(after);
        Assert.True(after.Nodes.Count <= before.Nodes.Count);

        using var store = WeightStore.Open(folder);
        var load = WeightBinding.Loader(store);
        var weights = new Dictionary<string, RefTensor>();
        RefTensor Weight(string name, TensorType type) => weights.TryGetValue(name, out var t) ? t : weights[name] = load(name, type);
        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var feeds = before.Inputs.ToDictionary(i => i.Attrs.Str("name"), i => RefTensor.FromInts(reference.Get(i.Attrs.Str("name")).Shape, reference.ReadInt64(i.Attrs.Str("name"))));
        var x = new RefInterpreter(before, Precision.F64).Run(feeds, Weight)["logits"].F!;
        var y = new RefInterpreter(after, Precision.F64).Run(feeds, Weight)["logits"].F!;
        Assert.Equal(x, y);
    }
}

using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// The generated C# itself: a golden snapshot of examples/llama.arch at a tiny size (accept an intended change with
/// <c>MC_UPDATE_GOLDEN=1 dotnet test tests/ModelCompiler.Tests --filter CpuCodegenTests</c>), determinism, and
/// names from the DSL or checkpoint that try to become code.
/// </summary>
public sealed class CpuCodegenTests
{
    private static readonly string[] TinyLlama = ["n_layers=1", "dim=64", "n_heads=4", "n_kv_heads=2", "ffn_dim=160", "vocab=256"];

    private static Graph LoadLlama()
    {
        var graph = ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", "llama.arch"), null,
            TinyLlama.Select(s => s.Split('=', 2)).ToDictionary(p => p[0], p => p[1])).Graph;
        new PassManager(CpuBackend.Pipeline).Run(graph);
        return graph;
    }

    private static string GoldenDir([CallerFilePath] string thisFile = "")
    {
        var source = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "Data", "golden"));
        return Directory.Exists(source) ? source : Path.Combine(AppContext.BaseDirectory, "Data", "golden");
    }

    [Fact]
    public void LlamaSourceMatchesGolden()
    {
        var source = CSharpEmitter.Emit(LoadLlama()).Source;
        var actual = Encoding.UTF8.GetBytes(source);
        var golden = Path.Combine(GoldenDir(), "llama.cpu.cs.golden");
        var actualPath = golden + ".actual";
        if (Environment.GetEnvironmentVariable("MC_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllBytes(golden, actual);
            File.Delete(actualPath);
            return;
        }
        var expected = File.Exists(golden) ? File.ReadAllBytes(golden) : null;
        if (expected is not null && expected.AsSpan().SequenceEqual(actual))
        {
            File.Delete(actualPath);
            return;
        }
        File.WriteAllBytes(actualPath, actual);
        Assert.Fail($"""
            The generated C# of examples/llama.arch ({string.Join(" ", TinyLlama)}) differs from {golden}{(expected is null ? ", which does not exist." : ".")}
            The actual output is in {actualPath}; compare with: diff {golden} {actualPath}
            If the change is intended, accept it: MC_UPDATE_GOLDEN=1 dotnet test tests/ModelCompiler.Tests --filter CpuCodegenTests
            """);
    }

    [Fact]
    public void ShapesEpsilonsAndAttributesAreLiterals()
    {
        var source = CSharpEmitter.Emit(LoadLlama()).Source;
        // q/k/v concatenated (p15, packed once at load) with the attention norm as the GEMM's prologue.
        Assert.Contains("FusedLinearKernel.Forward(t2, s0 * s1, k15, LinearPrologue.RmsNorm, w3, null, offset: 0.0, eps: 1E-05, null, null, gate: false, null, t17);", source);
        Assert.Contains("k15 = PackedWeight.Pack(p15, 128, 64, WeightLoading.StoredFormat(store, [", source);
        // SwiGLU: gate and up in one GEMM, silu-gated epilogue.
        Assert.Contains("LinearPrologue.RmsNorm, w8, null, offset: 0.0, eps: 1E-05, null, UnaryOp.Silu, gate: true, null, t29);", source);
        Assert.Contains("theta: 10000.0, rotaryDim: 16", source);
        Assert.Contains("scale: 0.25, mask: AttentionMask.Causal", source);
        Assert.Contains("int s0 = bind.Symbol(\"batch\");", source);
        Assert.Contains("int s1 = bind.Symbol(\"seq\");", source);
        Assert.Single(source.Split('\n'), l => l.Contains("bind.Symbol(\"seq\")"));   // bound once
    }

    [Fact]
    public void EmittingIsDeterministic()
    {
        var a = CSharpEmitter.Emit(LoadLlama()).Source;
        var b = CSharpEmitter.Emit(LoadLlama()).Source;
        Assert.Equal(a, b);
        var graph = LoadLlama();
        Assert.Equal(CSharpEmitter.Emit(graph).Source, CSharpEmitter.Emit(graph).Source);
        // Roslyn in deterministic mode: the same source gives the same assembly bytes.
        Assert.Equal(RoslynCompiler.Compile(a, "Determinism"), RoslynCompiler.Compile(b, "Determinism"));
    }

    public static TheoryData<string> HostileNames() => new()
    {
        "a\"b",
        "x */ y /* z",
        "n\n#line 1 \"evil.cs\"\nclass Injected {}",
        "\\u0022); System.Environment.Exit(3); //",
        "tab\tcr\rnul\0end",
        "caf\u00e9 \u2028 \u2029 \u0085 \U0001F600",
        "\\",
        "\"; } } class Evil { static void M() { System.Environment.Exit(4); } } //",
    };

    /// <summary>A model whose input, weight and output names (and model name) try to break out of their literals.</summary>
    private static Graph Hostile(string name, string modelName)
    {
        var b = new GraphBuilder(new Graph(modelName));
        var x = b.Input("in:" + name, new TensorType(DType.F32, Dim.Sym("n" + name), 4));
        var w = b.Weight("w:" + name, new TensorType(DType.F32, 4));
        b.CurrentName = "node:" + name;
        b.Graph.SetOutput("out:" + name, b.Binary(OpKind.Mul, x, w));
        return b.Graph;
    }

    [Theory]
    [MemberData(nameof(HostileNames))]
    public void HostileNamesStayData(string name)
    {
        var graph = Hostile(name, "class");
        var generated = CSharpEmitter.Emit(graph);
        Assert.Equal("GeneratedModel", generated.ClassName);

        // Structure: one class, no directives but #nullable, and each name intact inside a string literal.
        var tree = CSharpSyntaxTree.ParseText(generated.Source);
        Assert.Empty(tree.GetDiagnostics());
        var root = tree.GetCompilationUnitRoot();
        Assert.Equal(["GeneratedModel"], root.DescendantNodes().OfType<TypeDeclarationSyntax>().Select(c => c.Identifier.Text));
        Assert.All(root.DescendantTrivia(descendIntoTrivia: true).Where(t => t.IsDirective), t => Assert.True(t.IsKind(SyntaxKind.NullableDirectiveTrivia), t.ToFullString()));
        var literals = root.DescendantTokens().Where(t => t.IsKind(SyntaxKind.StringLiteralToken)).Select(t => t.ValueText).ToHashSet();
        foreach (var expected in new[] { "in:" + name, "w:" + name, "out:" + name, "n" + name, "class" })
            Assert.Contains(expected, literals);

        // Behaviour: it compiles, runs, and the names come back as data.
        var model = CpuBackend.Instantiate(CpuBackend.Compile(graph));
        Assert.Equal("class", model.Name);
        Assert.Equal("w:" + name, model.Weights.Single().Name);
        Assert.Equal("n" + name, model.Inputs.Single().Shape[0].Symbol);
        model.LoadWeights(n => n == "w:" + name ? [1, 2, 3, 4] : throw new KeyNotFoundException(n));
        var result = model.Run(new Dictionary<string, HostTensor> { ["in:" + name] = HostTensor.FromFloats([2, 4], [1, 1, 1, 1, 2, 2, 2, 2]) });
        Assert.Equal(["out:" + name], result.Keys);
        Assert.Equal([1f, 2, 3, 4, 2, 4, 6, 8], result["out:" + name].Floats!);
    }

    [Theory]
    [InlineData("Llama", "LlamaModel")]
    [InlineData("Llama_2", "Llama_2Model")]
    [InlineData("class", "GeneratedModel")]       // a keyword
    [InlineData("var", "GeneratedModel")]         // a contextual keyword
    [InlineData("2fast", "GeneratedModel")]
    [InlineData("my-model", "GeneratedModel")]
    [InlineData("caf\u00e9", "GeneratedModel")]
    [InlineData("", "GeneratedModel")]
    public void ClassNameComesFromTheModelNameOnlyWhenSafe(string modelName, string className) =>
        Assert.Equal(className, CSharpEmitter.Emit(Hostile("x", modelName)).ClassName);

    [Theory]
    [InlineData("plain", "\"plain\"")]
    [InlineData("a\"b\\c", "\"a\\\"b\\\\c\"")]
    [InlineData("line\nnext\r\u2028", "\"line\\u000anext\\u000d\\u2028\"")]
    [InlineData("\u00e9\U0001F600\0", "\"\\u00e9\\ud83d\\ude00\\u0000\"")]
    public void LiteralEscapesEverythingOutsidePrintableAscii(string value, string literal)
    {
        Assert.Equal(literal, CSharpText.Literal(value));
        var token = SyntaxFactory.ParseExpression(literal);
        Assert.Equal(value, ((LiteralExpressionSyntax)token).Token.ValueText);
    }

    [Fact]
    public void LiteralRoundTripsRandomStrings()
    {
        var rng = new Random(7);
        for (int i = 0; i < 200; i++)
        {
            var chars = Enumerable.Range(0, rng.Next(0, 40)).Select(_ => (char)rng.Next(0, 0x3000)).ToArray();
            var s = new string(chars);
            var literal = CSharpText.Literal(s);
            Assert.All(literal, c => Assert.InRange(c, ' ', '~'));
            Assert.Equal(s, ((LiteralExpressionSyntax)SyntaxFactory.ParseExpression(literal)).Token.ValueText);
        }
    }

    [Fact]
    public void FloatAndDoubleLiteralsRoundTrip()
    {
        foreach (var d in new[] { 1e-5, 0.25, 10000.0, 1.0 / 3, double.Epsilon, -0.0, 5e300 })
            Assert.Equal(d, double.Parse(CSharpText.Double(d), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("double.PositiveInfinity", CSharpText.Double(double.PositiveInfinity));
        Assert.Equal("float.NaN", CSharpText.Float(float.NaN));
        Assert.Equal("0.1f", CSharpText.Float(0.1f));
    }

    [Fact]
    public void SourceThatDoesNotCompileIsAnInternalErrorListingRoslynsDiagnostics()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            RoslynCompiler.Compile("class Broken { int M() { int y = \"s\"; return z; } }", "Broken"));
        Assert.Contains("does not compile: ", e.Message.Split('\n')[0]);
        Assert.Contains("(and 1 more)", e.Message.Split('\n')[0]);
        Assert.Contains("CS0029", e.Message);
        Assert.Contains("CS0103", e.Message);
    }
}

using System.Text;
using System.Text.Json.Nodes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;
using ModelCompiler.Tests.Runtime;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// Names from model files through the whole pipeline (`mc compile --emit cs`): a DSL file whose weight and output
/// names, and a config.json whose string value becomes a weight name, try to break out of the generated C#. The
/// generated source is parsed with Roslyn and compared token by token with the source of the same model under
/// plain names: every token but string literals (and comments) must be identical, so no hostile text can have
/// become an identifier, a directive, a using, an attribute or a call. (CpuCodegenTests covers the emitter alone.)
/// </summary>
public sealed class CodeInjectionTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> HostileNames() => new()
    {
        "a\"b",
        "x */ y /* z",
        "n\n#line 1 \"evil.cs\"\nclass Injected {}",
        "\\u0022); System.Environment.Exit(3); //",
        "\"; } } class Evil { static void M() { System.Environment.Exit(4); } } //",
        "[assembly: System.Reflection.AssemblyTitle(\"pwned\")]",
        "using System.IO; File.Delete(\"x\");",
        "@class",
        "\u2028#error line separator\u2029",
        "tab\there\rcr\u0085nel",
        "}}{{{{x}}",
        "\\",
    };

    /// <summary>The name as a DSL string literal: the DSL's escapes, braces doubled (they interpolate).</summary>
    private static string Dsl(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n").Replace("\t", "\\t").Replace("{", "{{").Replace("}", "}}") + "\"";

    /// <summary>
    /// A model whose weight and output are named <paramref name="name"/>, whose input and locals are C# keywords,
    /// and whose bias weight is named from config.json's "prefix".
    /// </summary>
    private (string Arch, string Config) Model(string tag, string name, string prefix)
    {
        var arch = Path.Combine(_dir.Path, tag + ".arch");
        File.WriteAllText(arch, $$"""
            model class
            hyper prefix: string = "p" from prefix
            input namespace: f32[n, 4]
            forward {
              weight w: [4] = {{Dsl(name)}}
              weight b: [4] = "{prefix}.bias"
              static = namespace * w
              output {{Dsl(name)}} = static + b
            }
            """);
        var config = Path.Combine(_dir.Path, tag + ".json");
        File.WriteAllText(config, new JsonObject { ["prefix"] = prefix }.ToJsonString());
        return (arch, config);
    }

    private string CompileToSource(string tag, string name, string prefix)
    {
        var (arch, config) = Model(tag, name, prefix);
        var outDir = Path.Combine(_dir.Path, tag + "-out");
        var r = CliRunner.Run(["compile", arch, "--config", config, "-o", outDir, "--emit", "cs"]);
        Assert.True(r.ExitCode == 0, r.Err);
        return File.ReadAllText(Directory.GetFiles(outDir, "*.cs").Single());
    }

    /// <summary>Each token as (kind, text), string literals reduced to their kind.</summary>
    private static List<(SyntaxKind, string)> Shape(CompilationUnitSyntax root) =>
        root.DescendantTokens(descendIntoTrivia: true)
            .Select(t => (t.Kind(), t.IsKind(SyntaxKind.StringLiteralToken) ? "<string>" : t.Text))
            .ToList();

    private static List<string> Literals(CompilationUnitSyntax root) =>
        root.DescendantTokens().Where(t => t.IsKind(SyntaxKind.StringLiteralToken)).Select(t => t.ValueText).ToList();

    [Theory]
    [MemberData(nameof(HostileNames))]
    public void HostileNamesFromTheDslAndConfigCompileToTheSameCodeAsPlainOnes(string hostile)
    {
        var plainSource = CompileToSource("plain", "weight_name", "p");
        var hostileSource = CompileToSource("hostile", hostile, hostile);

        var plain = CSharpSyntaxTree.ParseText(plainSource).GetCompilationUnitRoot();
        var tree = CSharpSyntaxTree.ParseText(hostileSource);
        Assert.Empty(tree.GetDiagnostics());
        var root = tree.GetCompilationUnitRoot();

        // Token for token the same program: hostile text exists only inside string literals and comments.
        Assert.Equal(Shape(plain), Shape(root));
        Assert.Equal(plain.Usings.Select(u => u.ToString()), root.Usings.Select(u => u.ToString()));
        Assert.Equal(plain.DescendantNodes().OfType<AttributeSyntax>().Select(a => a.ToString()),
            root.DescendantNodes().OfType<AttributeSyntax>().Select(a => a.ToString()));
        Assert.Equal(plain.DescendantTrivia(descendIntoTrivia: true).Where(t => t.IsDirective).Select(t => t.ToFullString()),
            root.DescendantTrivia(descendIntoTrivia: true).Where(t => t.IsDirective).Select(t => t.ToFullString()));
        // Comments end where the emitter ends them: one line each.
        Assert.All(root.DescendantTrivia().Where(t => t.IsKind(SyntaxKind.SingleLineCommentTrivia)), c => Assert.DoesNotContain('\n', c.ToFullString()));
        Assert.Empty(root.DescendantTrivia().Where(t => t.IsKind(SyntaxKind.MultiLineCommentTrivia)));

        // The literals carry the names exactly, as data.
        var literals = Literals(root);
        Assert.Contains(hostile, literals);
        Assert.Contains(hostile + ".bias", literals);
        Assert.Equal(Literals(plain).Select(l => l.Replace("weight_name", "\0").Replace("p.bias", "\u0001")),
            literals.Select(l => l == hostile ? "\0" : l == hostile + ".bias" ? "\u0001" : l));
    }

    [Fact]
    public void HostileNamesRunAsData()
    {
        const string hostile = "\"; } } class Evil { static void M() { System.Environment.Exit(4); } } //\n#line 1";
        var (arch, config) = Model("run", hostile, hostile);
        var loaded = ModelFrontend.Load(arch, config, new Dictionary<string, string>());
        var model = CpuBackend.Instantiate(CpuBackend.Compile(loaded.Graph));
        Assert.Equal(["class"], new[] { model.Name });
        Assert.Equal(new[] { hostile, hostile + ".bias" }.Order(StringComparer.Ordinal), model.Weights.Select(w => w.Name).Order(StringComparer.Ordinal));
        model.LoadWeights(n => n == hostile ? [1, 2, 3, 4] : n == hostile + ".bias" ? [10, 20, 30, 40] : throw new KeyNotFoundException(n));
        var result = model.Run(new Dictionary<string, HostTensor> { ["namespace"] = HostTensor.FromFloats([1, 4], [1, 1, 1, 1]) });
        Assert.Equal([hostile], result.Keys);
        Assert.Equal([11f, 22, 33, 44], result[hostile].Floats!);
    }

    [Fact]
    public void NamesThatAManglerWouldMergeStayDistinct()
    {
        // "a.b", "a_b", "a-b", "a b" and "A.b" are one identifier to a naive mangler; here each stays its own weight.
        string[] names = ["a.b", "a_b", "a-b", "a b", "A.b", "a.b "];
        var arch = Path.Combine(_dir.Path, "collide.arch");
        var sb = new StringBuilder("model Collide\ninput x: f32[n, 2]\nforward {\n  y = x\n");
        for (int i = 0; i < names.Length; i++) sb.Append($"  weight w{i}: [2] = {Dsl(names[i])}\n  y = y + w{i}\n");
        sb.Append("  output \"y\" = y\n  output \"y \" = y + y\n}\n");
        File.WriteAllText(arch, sb.ToString());
        var model = CpuBackend.Instantiate(CpuBackend.Compile(ModelFrontend.Load(arch, null, new Dictionary<string, string>()).Graph));
        Assert.Equal(names.Order(StringComparer.Ordinal), model.Weights.Select(w => w.Name).Order(StringComparer.Ordinal));
        // Weight i holds 10^i: the sum shows each name was bound to its own array.
        model.LoadWeights(n => Enumerable.Repeat((float)Math.Pow(10, Array.IndexOf(names, n)), 2).ToArray());
        var result = model.Run(new Dictionary<string, HostTensor> { ["x"] = HostTensor.FromFloats([1, 2], [0, 0]) });
        Assert.Equal([111111f, 111111f], result["y"].Floats!);
        Assert.Equal([222222f, 222222f], result["y "].Floats!);
    }

    [Theory]
    [InlineData("evil\n#line 1 \"x.cs\"")]
    [InlineData("tab\tcr\rls\u2028end")]
    public void HostileConfigKeysGiveOneLineErrors(string key)
    {
        var (arch, _) = Model("keys", "w", "p");
        var config = Path.Combine(_dir.Path, "keys.json");
        File.WriteAllText(config, new JsonObject { [key] = 1 }.ToJsonString());
        var r = CliRunner.Run(["compile", arch, "--config", config, "-o", Path.Combine(_dir.Path, "keys-out")]);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Err.TrimEnd('\n').Split('\n'));
        Assert.Contains("keys.json", r.Err);
        Assert.DoesNotContain('\r', r.Err);
        Assert.DoesNotContain('\u2028', r.Err);
    }
}

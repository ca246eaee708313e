using System.Runtime.CompilerServices;
using System.Text;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.IR;

/// <summary>
/// The printed IR of the example models, compared byte for byte with golden files under
/// Data/golden. After an intended change, accept the new output with
/// <c>MC_UPDATE_GOLDEN=1 dotnet test tests/ModelCompiler.Tests --filter PrinterTests</c>.
/// </summary>
public sealed class PrinterTests
{
    public static TheoryData<string, string[]> Models => new()
    {
        { "llama", ["n_layers=1", "dim=64", "n_heads=4", "n_kv_heads=2", "ffn_dim=160", "vocab=256"] },
        { "gpt2", ["n_layers=1", "dim=64", "n_heads=4", "vocab=256", "max_positions=64"] },
    };

    /// <summary>The golden folder in the source tree (so updates land in git), else the copy next to the test binary.</summary>
    private static string GoldenDir([CallerFilePath] string thisFile = "")
    {
        var source = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "Data", "golden"));
        return Directory.Exists(source) ? source : Path.Combine(AppContext.BaseDirectory, "Data", "golden");
    }

    private static Graph Load(string model, string[] sets) =>
        ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", model + ".arch"), null,
            sets.Select(s => s.Split('=', 2)).ToDictionary(p => p[0], p => p[1])).Graph;

    [Theory]
    [MemberData(nameof(Models))]
    public void ExampleMatchesGolden(string model, string[] sets)
    {
        var actual = Encoding.UTF8.GetBytes(Printer.Print(Load(model, sets)));
        var golden = Path.Combine(GoldenDir(), model + ".ir");
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
            File.Delete(actualPath);   // a stale one from an earlier failure
            return;
        }
        File.WriteAllBytes(actualPath, actual);
        Assert.Fail($"""
            The printed IR of examples/{model}.arch ({string.Join(" ", sets)}) differs from {golden}{(expected is null ? ", which does not exist." : $".\n{FirstDifference(expected, actual)}")}
            The actual output is in {actualPath}; compare with: diff {golden} {actualPath}
            If the change is intended, accept it: MC_UPDATE_GOLDEN=1 dotnet test tests/ModelCompiler.Tests --filter PrinterTests
            """);
    }

    private static string FirstDifference(byte[] expected, byte[] actual)
    {
        var e = Encoding.UTF8.GetString(expected).Split('\n');
        var a = Encoding.UTF8.GetString(actual).Split('\n');
        for (int i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            var el = i < e.Length ? e[i] : "<end of file>";
            var al = i < a.Length ? a[i] : "<end of file>";
            if (el != al) return $"First difference, line {i + 1}:\n  actual: {al}\n  golden: {el}";
        }
        return "the bytes differ (line endings or encoding)";
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void PrintingIsDeterministic(string model, string[] sets)
    {
        var g = Load(model, sets);
        var options = new Printer.Options(ShowLocations: true);
        Assert.Equal(Printer.Print(g), Printer.Print(g));
        Assert.Equal(Printer.Print(g, options), Printer.Print(g, options));
        Assert.Equal(Printer.Print(g, options), Printer.Print(Load(model, sets), options));   // elaborating again gives the same bytes
    }

    [Fact]
    public void OptionsControlHyperparametersNamesAndLocations()
    {
        var bag = new DiagnosticBag();
        var source = ArchLoader.LoadText("m.arch", """
            hyper eps: float = 1e-5
            input x: f32[batch, 4]
            forward {
              weight w: [4] = "café"
              y = rms_norm(x, w, eps: eps) * 0.5
              output "out\"1" = y
            }
            """, bag)!;
        var g = Elaborator.Elaborate(source, HyperBinding.Resolve(source, null, null, new Dictionary<string, string>()), bag)!;
        Assert.Equal("""
            graph m {
              hyper eps = 1e-05
              %0 = input "x" : f32[batch,4]
              %1 = weight "caf\u00e9" : f32[4]
              %2 = rms_norm %0, %1 {eps=1e-05, offset=0.0} : f32[batch,4]  // y
              %3 = const 0.5 : f32[]  // y
              %4 = mul %2, %3 : f32[batch,4]  // y
              output "out\"1" = %4
            }

            """, Printer.Print(g));
        Assert.Equal("""
            graph m {
              %0 = input "x" : f32[batch,4]  // m.arch:2:1
              %1 = weight "caf\u00e9" : f32[4]  // m.arch:4:3
              %2 = rms_norm %0, %1 {eps=1e-05, offset=0.0} : f32[batch,4]  // m.arch:5:7
              %3 = const 0.5 : f32[]  // m.arch:5:7
              %4 = mul %2, %3 : f32[batch,4]  // m.arch:5:7
              output "out\"1" = %4
            }

            """, Printer.Print(g, new Printer.Options(ShowNames: false, ShowLocations: true, ShowHyperparameters: false)));
    }

    [Fact]
    public void IdsAreRenumberedDenselyInPrintOrder()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", new TensorType(DType.F32, 2));
        var dead = b.Unary(OpKind.Exp, x);
        var y = b.Unary(OpKind.Neg, x);
        b.Graph.SetOutput("y", y);
        b.Graph.RetainOnly(new HashSet<Node> { x, y });
        Assert.Equal("graph t {\n  %0 = input \"x\" : f32[2]\n  %1 = neg %0 : f32[2]\n  output \"y\" = %1\n}\n", Printer.Print(b.Graph));
        Assert.Equal(2, y.Id);   // the node keeps its id; only the printed number changes
    }
}

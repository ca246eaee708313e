using CsCheck;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Runtime;
using static ModelCompiler.Tests.Reliability.HostileMutations;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// The DSL reader's contract under random mutation of real model files (examples/*.arch): parse, check and elaborate,
/// or fail with the documented user-error type whose first line names the file (rendered diagnostics may follow).
/// Hyperparameters are pinned small with sets, so a mutated default cannot make a huge graph.
/// </summary>
public sealed class DslPropertyTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Seeds = ["llama.arch", "gpt2.arch", "mistral.arch", "bert.arch"];

    private static readonly Dictionary<string, string> Small = new()
    {
        ["n_layers"] = "1", ["dim"] = "32", ["n_heads"] = "2", ["ffn_dim"] = "48", ["vocab"] = "64",
    };

    [Fact]
    public void ArchEditsAreElaboratedOrRejectedNamingTheFile()
    {
        var seeds = Seeds.Select(f => Path.Combine(AppContext.BaseDirectory, "examples", f)).Where(File.Exists).Select(File.ReadAllBytes).ToArray();
        Assert.True(seeds.Length >= 2, "the examples the test mutates are missing");
        // Beside a copy of the built-in library, as a model folder holds it (the examples import "std/...").
        var std = Path.Combine(AppContext.BaseDirectory, "examples", "std");
        var stdCopy = Directory.CreateDirectory(_dir.File("std")).FullName;
        foreach (var file in Directory.GetFiles(std)) File.Copy(file, Path.Combine(stdCopy, Path.GetFileName(file)));
        var path = _dir.File("model.arch");
        int accepted = 0, total = 0;
        Gen.Select(Gen.Int[0, seeds.Length - 1], ByteEdits).Sample((seed, edits) =>
        {
            File.WriteAllBytes(path, Apply(seeds[seed], edits));
            total++;
            if (AcceptedOrRejectedCleanly<McException>(() => Load(path), "model.arch", diagnosticsMayFollow: true)) accepted++;
        }, iter: 400, threads: 1, print: p => $"{p.Item1}: {string.Join(", ", p.Item2)}");
        Assert.InRange(accepted, 1, total - 1);   // some edits (in comments, numbers) still elaborate; most do not
    }

    /// <summary>The property test's first find: an import path with a NUL made System.IO throw ArgumentException.</summary>
    [Theory]
    [InlineData("std/\0transformer.arch")]
    [InlineData("std/trans\u0001former.arch")]
    public void ImportPathWithAControlCharacterIsADiagnostic(string importPath)
    {
        var path = _dir.File("hostile.arch");
        File.WriteAllText(path, $"import \"{importPath}\"\n\nmodel M\n");
        var e = Assert.ThrowsAny<McException>(() => ModelFrontend.Load(path, null, new Dictionary<string, string>()));
        Assert.Contains("hostile.arch", e.Message.Split('\n')[0]);
        Assert.Contains("no file name may contain", e.Message);
    }

    private static void Load(string path)
    {
        // Only the hyperparameters the (mutated) file still declares are pinned: an unknown one is the user's error.
        try { ModelFrontend.Load(path, null, Small); }
        catch (McException e) when (e.Message.Contains("unknown hyperparameter", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("no hyperparameter", StringComparison.OrdinalIgnoreCase))
        {
            ModelFrontend.Load(path, null, new Dictionary<string, string>());
        }
    }
}

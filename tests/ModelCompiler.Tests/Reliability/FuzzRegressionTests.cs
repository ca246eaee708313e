using ModelCompiler.Fuzz;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// Every input that crashed a fuzz target (fuzz/run.sh, docs/reliability.md) is kept under Data/fuzz/&lt;target&gt;/
/// and replayed through the harness's own code: it must now be accepted or rejected with McException.
/// </summary>
public sealed class FuzzRegressionTests
{
    private static string Root => Path.Combine(AppContext.BaseDirectory, "Data", "fuzz");

    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        foreach (var dir in Directory.GetDirectories(Root).Order(StringComparer.Ordinal))
            foreach (var file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                data.Add(Path.GetFileName(dir), Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void CrashInputIsNowAcceptedOrRejectedCleanly(string target, string file)
    {
        var input = File.ReadAllBytes(Path.Combine(Root, target, file));
        var error = Record.Exception(() => FuzzTargets.All[target](input));
        if (error is not null) Assert.IsAssignableFrom<McException>(error);
    }

    /// <summary>The seeds of the newest targets go all the way through their harness (none is rejected at the first check).</summary>
    [Theory]
    [InlineData("gguf", 4)]
    [InlineData("quantized-folder", 3)]
    public void SeedsAreAcceptedByTheirHarness(string target, int count)
    {
        var seeds = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "fuzz-seeds"))
            .Where(f => target == "gguf" ? f.EndsWith(".gguf", StringComparison.Ordinal) : f.EndsWith(".json", StringComparison.Ordinal)).ToList();
        Assert.Equal(count, seeds.Count);
        foreach (var seed in seeds) FuzzTargets.All[target](File.ReadAllBytes(seed));
    }

    [Fact]
    public void EveryTargetDirectoryNamesAHarness() =>
        Assert.All(Directory.GetDirectories(Root), d => Assert.Contains(Path.GetFileName(d), FuzzTargets.All.Keys));
}

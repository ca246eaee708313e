using Xunit.Abstractions;
using ModelCompiler.Tests.Oracles;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// Every oracle folder (tests/oracles, made by Hugging Face transformers) through <c>mc eval &lt;folder&gt; --target cpu</c>,
/// exactly as a user would run it: the model compiled to C#, loaded in-process, and held to the interpreter's contract
/// (logits within 1e-4 of the reference relative to the largest |value|, greedy tokens exactly).
/// </summary>
public sealed class CpuOracleTests(ITestOutputHelper output)
{
    public static TheoryData<string> Families() => ImportHfTests.Families();

    [Theory]
    [MemberData(nameof(Families))]
    public void CompiledModelMatchesHuggingFace(string family)
    {
        double relative = OracleCheck.Run(family, OracleCheck.Folder(family), weights: null, "--target", "cpu");
        output.WriteLine($"{family}: relative logits error {relative:E3} (cpu)");
    }

    /// <summary>The .arch route too (the DSL file with the folder's config and weights), for the LLaMA oracle.</summary>
    [Fact]
    public void ArchFileWithWeightsFolderMatches() =>
        OracleCheck.Run("llama", OracleCheck.Example("llama.arch"), OracleCheck.Folder("llama"), "--target", "cpu");
}

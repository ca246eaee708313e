using System.Text.Json;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Generation;

/// <summary>
/// examples/pystories (a LLaMA trained for real, shipped fp32) against what PyTorch and Hugging Face computed
/// (Data/pystories: oracle.json and reference.safetensors from shared/models/pystories), through the CLI.
/// </summary>
public class PystoriesTests
{
    public static string Model => CliRunner.Example("pystories");

    public static string DataFile(string name) => Path.Combine(AppContext.BaseDirectory, "Data", "pystories", name);

    public static string EvalText => Path.Combine(AppContext.BaseDirectory, "Data", "tokenizers", "pystories_eval.txt");

    public static JsonElement Oracle { get; } = JsonDocument.Parse(File.ReadAllText(DataFile("oracle.json"))).RootElement;

    public static TheoryData<int> Prompts() => new(Enumerable.Range(0, Oracle.GetProperty("generations").GetArrayLength()));

    public static JsonElement Generation(int k) => Oracle.GetProperty("generations")[k];

    [Theory]
    [InlineData("cpu")]
    [InlineData("interpreter")]
    public void LogitsMatchTheReferenceWithin1e4(string target)
    {
        var output = CliRunner.TempFile("logits.safetensors");
        try
        {
            var result = CliRunner.Run("eval", Model, "--inputs", DataFile("reference.safetensors"), "--out", output, "--target", target);
            Assert.True(result.ExitCode == 0, result.Err);
            using var expectedFile = SafetensorsFile.Open(DataFile("reference.safetensors"));
            using var actualFile = SafetensorsFile.Open(output);
            var expected = expectedFile.ReadFloat32("logits");
            var actual = actualFile.ReadFloat32("logits");
            Assert.Equal(expectedFile.Get("logits").Shape, actualFile.Get("logits").Shape);
            double scale = expected.Max(Math.Abs);
            double worst = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / scale;
            Assert.True(worst <= 1e-4, $"max |diff| / max |ref| = {worst:E2}");
        }
        finally { File.Delete(output); }
    }

    [Theory]
    [MemberData(nameof(Prompts))]
    public void GreedyRunPrintsTheOracleText(int k)
    {
        var generation = Generation(k);
        var result = CliRunner.Run("run", Model, "--prompt", generation.GetProperty("prompt").GetString()!, "--max-tokens", "48", "--temperature", "0");
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.Equal(generation.GetProperty("greedy_text").GetString(), result.Out);
        Assert.Matches(@"prompt: \d+ tokens in [\d.]+ s \([\d.]+ tokens/s\)", result.Err);
        Assert.Matches(@"generated: 48 tokens in [\d.]+ s \([\d.]+ tokens/s\); stopped by --max-tokens", result.Err);
    }

    [Fact]
    public void GreedyRunOnTheInterpreterPrintsTheOracleText()
    {
        // Fewer tokens than the oracle (the interpreter is slow): its text starts with what is printed.
        var generation = Generation(3);
        var result = CliRunner.Run("run", Model, "--prompt", generation.GetProperty("prompt").GetString()!, "--max-tokens", "12", "--target", "interpreter");
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.StartsWith(result.Out, generation.GetProperty("greedy_text").GetString()!);
        Assert.True(result.Out.Length > generation.GetProperty("prompt").GetString()!.Length + 12, result.Out);
    }

    [Fact]
    public void PerplexityOfTheEvalTextIsTheOracles()
    {
        var result = CliRunner.Run("perplexity", Model, "--text", EvalText, "--json");
        Assert.True(result.ExitCode == 0, result.Err);
        using var json = JsonDocument.Parse(result.Out);
        Assert.Equal(["perplexity", "tokens"], json.RootElement.EnumerateObject().Select(p => p.Name));
        double expected = Oracle.GetProperty("eval_perplexity").GetDouble();
        double actual = json.RootElement.GetProperty("perplexity").GetDouble();
        Assert.True(Math.Abs(actual - expected) <= 1e-3 * expected, $"perplexity {actual}, oracle {expected}");
        Assert.Equal(Oracle.GetProperty("eval_tokens").GetInt64(), json.RootElement.GetProperty("tokens").GetInt64());
    }
}

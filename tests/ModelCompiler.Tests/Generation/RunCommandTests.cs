using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Generation;

/// <summary>`mc run` and `mc perplexity` contracts on examples/pystories: sampling options, stop strings, EOS lists,
/// and one-line errors (exit 1).</summary>
public class RunCommandTests
{
    private static string Prompt(int k) => PystoriesTests.Generation(k).GetProperty("prompt").GetString()!;

    private static string GreedyText(int k) => PystoriesTests.Generation(k).GetProperty("greedy_text").GetString()!;

    private static void AssertOneLineError(CliRunner.Result result, string contains)
    {
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("", result.Out);
        var lines = result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, result.Err);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(contains, lines[0]);
    }

    [Fact]
    public void TopKOneAndATinyTopPAreGreedyWhateverTheTemperature()
    {
        foreach (var option in new[] { new[] { "--top-k", "1" }, ["--top-p", "1e-9"] })
        {
            var result = CliRunner.Run(["run", PystoriesTests.Model, "--prompt", Prompt(2), "--max-tokens", "48", "--temperature", "3", "--seed", "5", .. option]);
            Assert.True(result.ExitCode == 0, result.Err);
            Assert.Equal(GreedyText(2), result.Out);
        }
    }

    [Fact]
    public void SampledTextIsReproducibleFromItsSeed()
    {
        string Sample(string seed)
        {
            var result = CliRunner.Run("run", PystoriesTests.Model, "--prompt", Prompt(0), "--max-tokens", "32", "--temperature", "1.0", "--top-p", "0.95", "--seed", seed);
            Assert.True(result.ExitCode == 0, result.Err);
            Assert.StartsWith(Prompt(0), result.Out);
            Assert.Contains($"seed {seed}", result.Err);
            return result.Out;
        }
        var first = Sample("42");
        Assert.Equal(first, Sample("42"));
        Assert.NotEqual(first, Sample("43"));
        Assert.False(GreedyText(0).StartsWith(first, StringComparison.Ordinal), "the sampled text is the greedy one");
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("self.update")]
    public void AStopStringEndsTheTextBeforeIt(string stop)
    {
        var greedy = GreedyText(2);
        int at = greedy.IndexOf(stop, Prompt(2).Length, StringComparison.Ordinal);
        Assert.True(at > Prompt(2).Length);
        var result = CliRunner.Run("run", PystoriesTests.Model, "--prompt", Prompt(2), "--max-tokens", "48", "--stop", "never-seen", "--stop", stop);
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.Equal(greedy[..at], result.Out);
        Assert.Contains("stopped by a stop string", result.Err);
    }

    [Fact]
    public void AnyIdOfAnEosListStopsGeneration()
    {
        // The oracle's 5th greedy token after prompt 3, made an EOS id next to 0: generation stops after 4 tokens.
        using var reference = SafetensorsFile.Open(PystoriesTests.DataFile("reference.safetensors"));
        var ids = reference.ReadInt64("prompt.3.greedy_ids");
        int promptLength = PystoriesTests.Generation(3).GetProperty("prompt_ids").GetArrayLength();
        long fifth = ids[promptLength + 4];
        Assert.DoesNotContain(fifth, ids[promptLength..(promptLength + 4)]);
        var folder = Directory.CreateTempSubdirectory("mc-eos-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(PystoriesTests.Model)) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            File.WriteAllText(Path.Combine(folder, "generation_config.json"), $"{{\"eos_token_id\": [0, {fifth}]}}");
            var result = CliRunner.Run("run", folder, "--prompt", Prompt(3), "--max-tokens", "48");
            Assert.True(result.ExitCode == 0, result.Err);
            var tokenizer = TokenizerLoader.Load(folder);
            Assert.Equal(tokenizer.Decode(ids[..(promptLength + 4)].Select(i => (int)i)), result.Out);
            Assert.Contains("generated: 4 tokens", result.Err);
            Assert.Contains("stopped by EOS", result.Err);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public void PromptFileIsReadExactly()
    {
        var file = CliRunner.TempFile("prompt.txt");
        File.WriteAllText(file, Prompt(1));
        try
        {
            var result = CliRunner.Run("run", PystoriesTests.Model, "--prompt-file", file, "--max-tokens", "48", "--temperature", "0");
            Assert.True(result.ExitCode == 0, result.Err);
            Assert.Equal(GreedyText(1), result.Out);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void APromptLongerThanTheContextIsAOneLineError()
    {
        var result = CliRunner.Run("run", PystoriesTests.Model, "--prompt-file", PystoriesTests.EvalText, "--max-tokens", "4");
        AssertOneLineError(result, "longer than the model's context of 512");
    }

    [Fact]
    public void AMalformedOrMissingTokenizerIsAOneLineError()
    {
        var bad = CliRunner.TempFile("tokenizer.json");
        File.WriteAllText(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": ");
        try
        {
            AssertOneLineError(CliRunner.Run("run", PystoriesTests.Model, "--prompt", "x", "--tokenizer", bad), bad);
            AssertOneLineError(CliRunner.Run("run", PystoriesTests.Model, "--prompt", "x", "--tokenizer", bad + ".missing"), ".missing");
            AssertOneLineError(CliRunner.Run("perplexity", PystoriesTests.Model, "--text", PystoriesTests.EvalText, "--tokenizer", bad), bad);
        }
        finally { File.Delete(bad); }
    }

    [Fact]
    public void AWeightFolderWithoutTokenizerIsAOneLineError()
    {
        var folder = Directory.CreateTempSubdirectory("mc-notok-").FullName;
        try
        {
            foreach (var name in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(PystoriesTests.Model, name), Path.Combine(folder, name));
            AssertOneLineError(CliRunner.Run("run", CliRunner.Example("llama.arch"), "--weights", folder, "--prompt", "def f():"), "no tokenizer.json or tokenizer.model");
            AssertOneLineError(CliRunner.Run("run", folder, "--prompt", "def f():"), "--tokenizer");
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Theory]
    [InlineData("--top-p", "0")]
    [InlineData("--temperature", "-1")]
    [InlineData("--max-tokens", "-3")]
    public void BadSamplingOptionsAreOneLineErrors(string option, string value) =>
        AssertOneLineError(CliRunner.Run("run", PystoriesTests.Model, "--prompt", "x", option, value), option);

    [Fact]
    public void ThePromptComesFromExactlyOneOption()
    {
        AssertOneLineError(CliRunner.Run("run", PystoriesTests.Model), "--prompt");
        AssertOneLineError(CliRunner.Run("run", PystoriesTests.Model, "--prompt", "x", "--prompt-file", PystoriesTests.EvalText), "--prompt");
    }

    [Fact]
    public void SkippedWindowsAreNotScored()
    {
        var result = CliRunner.Run("perplexity", PystoriesTests.Model, "--text", PystoriesTests.EvalText, "--skip-windows", "405", "--json");
        Assert.True(result.ExitCode == 0, result.Err);
        using var json = System.Text.Json.JsonDocument.Parse(result.Out);
        Assert.Equal(6 * 256, json.RootElement.GetProperty("tokens").GetInt64());
        AssertOneLineError(CliRunner.Run("perplexity", PystoriesTests.Model, "--text", PystoriesTests.EvalText, "--skip-windows", "411"), "only 411 full windows");
        AssertOneLineError(CliRunner.Run("perplexity", PystoriesTests.Model, "--text", PystoriesTests.EvalText, "--window", "1024"), "longer than the model's context");
    }
}

using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Generation;

/// <summary>
/// <c>mc run --streaming-window W --streaming-sinks K</c> (StreamingLLM) through the CLI, on a copy of examples/pystories
/// whose config declares a context of 64 tokens: without the mode generation stops at the end of the context; with it,
/// 4× the context is generated while the pool holds at most the sinks' and window's blocks plus one.
/// </summary>
public sealed class StreamingRunTests : IDisposable
{
    private const int Context = 64;
    private readonly string _folder = Directory.CreateTempSubdirectory("mc-streaming-").FullName;

    public StreamingRunTests()
    {
        foreach (var file in Directory.GetFiles(PystoriesTests.Model)) File.Copy(file, Path.Combine(_folder, Path.GetFileName(file)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_folder, "config.json")))!;
        config["max_position_embeddings"] = Context;
        File.WriteAllText(Path.Combine(_folder, "config.json"), config.ToJsonString());
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static string Prompt => PystoriesTests.Generation(0).GetProperty("prompt").GetString()!;

    /// <summary>Without the mode the context ends generation; the paged cache is sized by the context, not by a huge --max-tokens.</summary>
    [Fact]
    public void WithoutTheModeGenerationStopsAtTheContext()
    {
        var result = CliRunner.Run("run", _folder, "--prompt", Prompt, "--max-tokens", $"{int.MaxValue}", "--temperature", "0");
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.Contains("stopped by the end of the context", result.Err);
    }

    [Fact]
    public void GeneratesFourTimesTheContextWithBoundedBlocks()
    {
        const int sinks = 4, window = 28, blockSize = 16;
        var result = CliRunner.Run("run", _folder, "--prompt", Prompt, "--max-tokens", $"{4 * Context}", "--temperature", "0.8", "--seed", "7",
            "--streaming-window", $"{window}", "--streaming-sinks", $"{sinks}");
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.StartsWith(Prompt, result.Out);
        Assert.Contains($"generated: {4 * Context} tokens", result.Err);
        Assert.Contains("stopped by --max-tokens", result.Err);
        Assert.Contains($"StreamingLLM ({sinks} sinks + a window of {window})", result.Err);
        int peak = int.Parse(Regex.Match(result.Err, @"at most (\d+) in use").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(peak, 1, (sinks + blockSize - 1) / blockSize + (window + blockSize - 1) / blockSize + 1);
    }

    /// <summary>A prompt longer than the context is an error normally (RunCommandTests) but fine here: the cache keeps only sinks + window of it.</summary>
    [Fact]
    public void APromptLongerThanTheContextIsTakenInStreamingMode()
    {
        var prompt = string.Concat(Enumerable.Repeat(PystoriesTests.Generation(1).GetProperty("prompt").GetString()!, 12));
        var normal = CliRunner.Run("run", _folder, "--prompt", prompt, "--max-tokens", "8");
        Assert.Equal(1, normal.ExitCode);
        Assert.Contains("longer than the model's context of 64", normal.Err);
        var result = CliRunner.Run("run", _folder, "--prompt", prompt, "--max-tokens", "8", "--temperature", "0", "--streaming-window", "28");
        Assert.True(result.ExitCode == 0, result.Err);
        Assert.True(int.Parse(Regex.Match(result.Err, @"prompt: (\d+) tokens").Groups[1].Value, CultureInfo.InvariantCulture) > Context);
        Assert.Contains("generated: 8 tokens", result.Err);
        Assert.StartsWith(prompt, result.Out);
    }

    [Theory]
    [InlineData("61", "4", "exceed the model's context of 64")]
    [InlineData("0", "4", "--streaming-window 0")]
    [InlineData("16", "-1", "--streaming-sinks -1")]
    public void BadStreamingOptionsAreOneLineErrors(string window, string sinks, string message)
    {
        var result = CliRunner.Run("run", _folder, "--prompt", Prompt, "--streaming-window", window, "--streaming-sinks", sinks);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("", result.Out);
        Assert.Single(result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(message, result.Err);
    }

    [Fact]
    public void StreamingNeedsThePagedCache()
    {
        var result = CliRunner.Run("run", _folder, "--prompt", Prompt, "--streaming-window", "16", "--target", "interpreter");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--streaming-window needs the paged KV cache", result.Err);
    }
}

using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Generation;

/// <summary>
/// <c>mc run --n K</c> on examples/pystories: the prompt is prefilled once and its KV blocks are shared by the K samples
/// (pool accounting on stderr), greedy samples equal a single greedy run, and each sample is reproducible from the seed
/// printed for it.
/// </summary>
public class ParallelSamplesTests
{
    private static string Prompt(int k) => PystoriesTests.Generation(k).GetProperty("prompt").GetString()!;

    /// <summary>The documented line before each sample (docs/generation.md).</summary>
    private static string Header(int index, int count) => $"=== sample {index + 1} of {count} ===";

    /// <summary>Stdout of <c>--n K</c> split into its samples (header lines checked, each sample's trailing newline removed).</summary>
    private static string[] Samples(string stdout, int count)
    {
        var samples = new string[count];
        int at = 0;
        for (int i = 0; i < count; i++)
        {
            var header = Header(i, count) + "\n";
            Assert.True(string.CompareOrdinal(stdout, at, header, 0, header.Length) == 0, $"no '{header.Trim()}' at {at}: {stdout}");
            at += header.Length;
            int end = i + 1 < count ? stdout.IndexOf("\n" + Header(i + 1, count) + "\n", at, StringComparison.Ordinal) : stdout.Length - 1;
            Assert.True(end >= at, stdout);
            samples[i] = stdout[at..end];
            at = end + 1;
        }
        Assert.Equal(stdout.Length, at);
        Assert.EndsWith("\n", stdout);
        return samples;
    }

    private static CliRunner.Result Run(params string[] args)
    {
        var result = CliRunner.Run(["run", PystoriesTests.Model, .. args]);
        Assert.True(result.ExitCode == 0, result.Err);
        return result;
    }

    private static int Stat(string stderr, string pattern) =>
        int.Parse(Regex.Match(stderr, pattern).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>
    /// Four greedy samples of a prompt of several blocks: after the prefill the pool holds the prompt's blocks once, and at
    /// the peak the full prompt blocks are still held once while each sample owns its copy of the partly filled block and
    /// its new blocks; four separate sequences would hold four times the prompt.
    /// </summary>
    [Fact]
    public void PromptBlocksAreCountedOnceForFourSamples()
    {
        var prompt = string.Concat(Enumerable.Range(0, 4).Select(Prompt)) + Prompt(0) + Prompt(1);
        const int samples = 4, newTokens = 8, blockSize = 16;
        var result = Run("--prompt", prompt, "--max-tokens", $"{newTokens}", "--temperature", "0", "--n", $"{samples}");
        int promptTokens = Stat(result.Err, @"prompt: (\d+) tokens");
        Assert.True(promptTokens > 2 * blockSize, $"the prompt is {promptTokens} tokens; the test needs several blocks");
        Assert.Equal(samples, Regex.Matches(result.Err, @"sample \d: 8 tokens; stopped by --max-tokens").Count);
        int afterPrompt = Stat(result.Err, @"(\d+) after the prompt \(shared by 4 samples\)");
        int peak = Stat(result.Err, @"at most (\d+) in use");
        Assert.Equal((promptTokens + blockSize - 1) / blockSize, afterPrompt);
        // Each sample feeds newTokens - 1 tokens (its last is not fed back).
        int fullPromptBlocks = promptTokens / blockSize, perSample = (promptTokens + newTokens - 1 + blockSize - 1) / blockSize;
        Assert.Equal(fullPromptBlocks + samples * (perSample - fullPromptBlocks), peak);
        Assert.True(peak < samples * perSample);
    }

    /// <summary>Greedy samples are all the single greedy run's text (the oracle's greedy_text): forks and copy on write change no logit.</summary>
    [Fact]
    public void GreedySamplesEqualTheSingleRun()
    {
        var single = Run("--prompt", Prompt(2), "--max-tokens", "48", "--temperature", "0").Out;
        Assert.Equal(PystoriesTests.Generation(2).GetProperty("greedy_text").GetString(), single);
        var samples = Samples(Run("--prompt", Prompt(2), "--max-tokens", "48", "--temperature", "0", "--n", "2").Out, 2);
        Assert.All(samples, s => Assert.Equal(single, s));
    }

    /// <summary>Sample 1 uses --seed itself and sample i the seed printed for it: each is the text of a single run with that seed.</summary>
    [Fact]
    public void EverySampleIsReproducibleFromItsPrintedSeed()
    {
        string[] sampling = ["--prompt", Prompt(0), "--max-tokens", "24", "--temperature", "1.0", "--top-p", "0.95"];
        var result = Run([.. sampling, "--seed", "42", "--n", "3"]);
        var samples = Samples(result.Out, 3);
        var seeds = Regex.Matches(result.Err, @"sample (\d): \d+ tokens; stopped by [^;]+; seed (\d+)").Select(m => m.Groups[2].Value).ToArray();
        Assert.Equal(3, seeds.Length);
        Assert.Equal("42", seeds[0]);
        Assert.Equal(3, seeds.Distinct().Count());
        for (int i = 0; i < 3; i++) Assert.Equal(Run([.. sampling, "--seed", seeds[i]]).Out, samples[i]);
        Assert.True(samples.Distinct().Count() > 1, "three sampled texts are all the same");
    }

    [Theory]
    [InlineData("--n", "0", "--n 0")]
    [InlineData("--streaming-sinks", "4", "--streaming-sinks needs --streaming-window")]
    public void BadSampleOptionsAreOneLineErrors(string option, string value, string message)
    {
        var result = CliRunner.Run("run", PystoriesTests.Model, "--prompt", "x", option, value);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("", result.Out);
        Assert.Single(result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(message, result.Err);
    }

    [Fact]
    public void SamplesNeedThePagedCache()
    {
        var result = CliRunner.Run("run", PystoriesTests.Model, "--prompt", "x", "--n", "2", "--cache", "contiguous");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--n 2 needs the paged KV cache", result.Err);
    }
}

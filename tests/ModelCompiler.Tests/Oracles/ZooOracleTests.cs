using ModelCompiler.Cli;
using ModelCompiler.Runtime;
using Xunit.Abstractions;

namespace ModelCompiler.Tests.Oracles;

/// <summary>
/// Each Hugging Face family written in the DSL, run through <c>mc eval</c> exactly as a user would, against the
/// oracle's reference outputs (tests/oracles/&lt;family&gt;, made by transformers on tiny random-weight models):
/// logits to a relative error of 1e-4 and, where the oracle has them, the greedy tokens exactly.
/// </summary>
public sealed class ZooOracleTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    [Theory]
    [InlineData("mistral_swa", "mistral.arch")]
    [InlineData("mixtral_moe", "mixtral.arch")]
    [InlineData("bloom", "bloom.arch")]
    [InlineData("bert", "bert.arch")]
    [InlineData("t5", "t5.arch")]
    // Variants generated with the same recipe for the options the shared oracles leave untested.
    [InlineData("bloom_alibi6", "bloom.arch")]      // 6 heads: ALiBi slopes for a head count that is not a power of two
    [InlineData("bloom_postres", "bloom.arch")]     // apply_residual_connection_post_layernorm
    [InlineData("t5_geglu", "t5.arch")]             // gated-gelu MLP (wi_0/wi_1), decoder output not scaled
    public void MatchesHuggingFace(string family, string arch)
    {
        var folder = Path.Combine(AppContext.BaseDirectory, "oracles", family);
        var reference = Path.Combine(folder, "reference.safetensors");
        var model = Path.Combine(AppContext.BaseDirectory, "examples", arch);

        using var refFile = SafetensorsFile.Open(reference);
        var args = new List<string> { "eval", model, "--weights", folder, "--inputs", reference };
        long[]? expectedGreedy = refFile.Contains("greedy_ids") ? refFile.ReadInt64("greedy_ids") : null;
        if (expectedGreedy is not null)
        {
            // Decoder-only: row 0 of input_ids extended; encoder-decoder: the decoder start token extended.
            long prefix = refFile.Contains("decoder_input_ids") ? 1 : refFile.Get("input_ids").Shape[1];
            args.AddRange(["--generate", (expectedGreedy.Length - prefix).ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        var outPath = Path.Combine(Path.GetTempPath(), $"mc-zoo-{family}-{Guid.NewGuid():N}.safetensors");
        args.AddRange(["--out", outPath]);
        try
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = McApp.Run(args.ToArray(), stdout, stderr);
            Assert.True(code == 0, $"mc {string.Join(" ", args)} exited with {code}: {stderr}");

            using var result = SafetensorsFile.Open(outPath);
            Assert.Equal(refFile.Get("logits").Shape, result.Get("logits").Shape);
            var expected = refFile.ReadFloat32("logits");
            var actual = result.ReadFloat32("logits");
            double maxRef = expected.Max(x => Math.Abs((double)x));
            double maxDiff = expected.Zip(actual, (e, a) => Math.Abs((double)e - a)).Max();
            double relative = maxDiff / maxRef;
            output.WriteLine($"{family}: relative logits error {relative:E3}");
            Assert.True(relative <= Tolerance, $"{family}: max|logits - ref| / max|ref| = {relative:E3} > {Tolerance:E0}");

            if (expectedGreedy is not null)
                Assert.Equal(expectedGreedy, result.ReadInt64("greedy_ids"));
        }
        finally
        {
            File.Delete(outPath);
        }
    }
}
